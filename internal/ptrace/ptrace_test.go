//go:build linux

package ptrace

import (
	"encoding/binary"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestGetRseqConfig(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	time.Sleep(100 * time.Millisecond) // past exec and the loader's registration

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := Seize(pid, 0); err != nil {
		t.Fatal(err)
	}
	if err := Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() || int(ws>>16) != unix.PTRACE_EVENT_STOP {
		t.Fatalf("wait: %v, status %#x", err, uint32(ws))
	}
	cfg, err := GetRseqConfig(pid)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pointer == 0 || cfg.Size != 32 || cfg.Signature != 0x53053053 {
		t.Errorf("config %+v, want glibc's registration (size 32, signature 0x53053053)", cfg)
	}
	mem, err := OpenMem(pid, false)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var area [32]byte
	if err := mem.Read(cfg.Pointer, area[:]); err != nil {
		t.Fatal(err)
	}
	if cpu := binary.LittleEndian.Uint32(area[OffCPUID:]); int(cpu) >= runtime.NumCPU() {
		t.Errorf("cpu_id %d with %d CPUs", cpu, runtime.NumCPU())
	}
	if tids, err := Threads(pid); err != nil || len(tids) != 1 || tids[0] != pid {
		t.Errorf("threads %v, %v", tids, err)
	}
	if n := ThreadName(pid, pid); n != "sleep" {
		t.Errorf("name %q", n)
	}
	if st := ThreadState(pid, pid); st != 't' {
		t.Errorf("state %c while stopped, want t", st)
	}
	if err := Detach(pid, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if st := ThreadState(pid, pid); st != 'S' {
		t.Errorf("state %c after detach, want S", st)
	}
}

func TestExplain(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	err := Explain(cmd.Process.Pid, Seize(cmd.Process.Pid, 0))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("gone process: %v", err)
	}
	// This process's own thread group cannot be traced by itself.
	err = Explain(os.Getpid(), Seize(os.Getpid(), 0))
	if err == nil || !strings.Contains(err.Error(), "no permission to trace") {
		t.Errorf("self: %v", err)
	}
}

func TestCaughtSignals(t *testing.T) {
	// The Go runtime handles SIGURG (preemption) in every program.
	if CaughtSignals(os.Getpid())&(1<<(unix.SIGURG-1)) == 0 {
		t.Error("SIGURG not among this process's caught signals")
	}
}

// TestStat reads this process's own stat fields, and those of a process
// that is gone.
func TestStat(t *testing.T) {
	pid := os.Getpid()
	if got := ParentPID(pid); got != os.Getppid() {
		t.Errorf("ParentPID = %d, want %d", got, os.Getppid())
	}
	if st := ThreadState(pid, pid); st != 'R' && st != 'S' {
		t.Errorf("ThreadState of this process = %q", st)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	if st := ThreadState(pid, tid); st != 'R' {
		t.Errorf("ThreadState of the running thread = %q, want R", st)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if c := LastCPU(tid); c < 0 || !set.IsSet(c) {
		t.Errorf("LastCPU = %d, not a CPU this thread may run on", c)
	}
	// A process that has exited and been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid
	if ParentPID(gone) != -1 || ThreadState(gone, gone) != 0 || LastCPU(gone) != -1 {
		t.Errorf("process %d is gone, yet ParentPID %d, ThreadState %q, LastCPU %d",
			gone, ParentPID(gone), ThreadState(gone, gone), LastCPU(gone))
	}
}

// TestLeaderFirst: the thread group leader comes first even when the ids
// wrapped around pid_max after it started (its id is then the largest).
func TestLeaderFirst(t *testing.T) {
	for _, c := range []struct {
		pid       int
		tids, out []int
	}{
		{32623, []int{383, 32623, 302, 32700}, []int{32623, 302, 383, 32700}},
		{100, []int{103, 101, 100}, []int{100, 101, 103}},
		{7, []int{9, 8}, []int{8, 9}}, // the leader gone
	} {
		got := append([]int(nil), c.tids...)
		leaderFirst(c.pid, got)
		if !slices.Equal(got, c.out) {
			t.Errorf("leaderFirst(%d, %v) = %v, want %v", c.pid, c.tids, got, c.out)
		}
	}
}
