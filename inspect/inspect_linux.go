//go:build linux

package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gorseq/rseq/internal/ptrace"
	"golang.org/x/sys/unix"
)

// Inspect reports every thread of process pid. sym, if not nil, names the
// sections threads are in. The error names the cause when the process cannot
// be traced, when the kernel lacks PTRACE_GET_RSEQ_CONFIGURATION (Linux
// 5.13+) or when the process exits mid-way (errors.Is(err, ErrExited)).
func Inspect(pid int, sym Symbolizer) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("invalid process id %d", pid)
	}
	if pid == os.Getpid() {
		return nil, fmt.Errorf("process %d is this process: a process cannot trace its own threads", pid)
	}
	p := &Process{PID: pid}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
		p.Command = strings.TrimSpace(string(b))
	} else {
		return nil, fmt.Errorf("process %d: %w (no such process)", pid, ErrExited)
	}
	mem, err := ptrace.OpenMem(pid, false)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("process %d: %w", pid, ErrExited)
		}
		// Opening /proc/PID/mem needs the same permission as tracing; let
		// PTRACE_SEIZE below name the cause.
		mem = nil
	}
	if mem != nil {
		defer mem.Close()
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	done := map[int]bool{}
	attached := 0
	for round := 0; ; round++ {
		tids, err := ptrace.Threads(pid)
		if err != nil {
			if attached > 0 || len(done) > 0 {
				return nil, fmt.Errorf("process %d: %w while it was being inspected", pid, ErrExited)
			}
			return nil, fmt.Errorf("process %d: %w", pid, ErrExited)
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			done[tid] = true
			fresh++
			t, err := inspectThread(pid, tid, mem, sym)
			switch {
			case err == nil:
				attached++
				p.Threads = append(p.Threads, *t)
			case errors.Is(err, errVanished):
				p.Vanished++
			case errors.Is(err, unix.EPERM):
				return nil, ptrace.Explain(pid, err)
			case errors.Is(err, ptrace.ErrNoRseqConfig):
				return nil, err
			default:
				p.Notes = append(p.Notes, fmt.Sprintf("thread %d: %v", tid, err))
			}
		}
		if fresh == 0 {
			break
		}
		if round == 50 {
			p.Notes = append(p.Notes, "threads kept appearing; stopped looking after 50 rounds")
			break
		}
	}
	if len(p.Threads) == 0 {
		return nil, fmt.Errorf("process %d: %w while it was being inspected", pid, ErrExited)
	}
	return p, nil
}

var errVanished = errors.New("thread exited")

// inspectThread attaches to one thread, reads it and detaches.
func inspectThread(pid, tid int, mem *ptrace.Mem, sym Symbolizer) (*Thread, error) {
	if st := ptrace.ThreadState(pid, tid); st == 0 || st == 'Z' || st == 'X' {
		// A zombie thread group leader never reports a stop.
		return nil, errVanished
	}
	t := &Thread{TID: tid, Name: ptrace.ThreadName(pid, tid)}
	if err := ptrace.Seize(tid, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, errVanished
		}
		if errors.Is(err, unix.EPERM) && exiting(pid, tid) {
			// The kernel refuses to attach to an exiting task.
			return nil, errVanished
		}
		return nil, err
	}
	// When the caller is the parent of the process, the exit of its
	// leader is the parent's to collect: observe it, never reap it.
	keepExit := tid == pid && ptrace.ParentPID(pid) == os.Getpid()
	if err := ptrace.Interrupt(tid); err != nil {
		// The thread is attached but cannot be stopped: it is exiting.
		waitGone(tid, keepExit)
		return nil, errVanished
	}
	sig, err := waitStop(tid, keepExit)
	if err != nil {
		return nil, err
	}
	switch {
	case sig < 0:
		t.Stop = "group-stop"
	case sig == 0:
		t.Stop = "interrupt"
	default:
		t.Stop = "signal " + strconv.Itoa(sig)
	}
	readErr := readThread(pid, t, mem, sym)
	deliver := 0
	if sig > 0 {
		deliver = sig
	}
	if err := ptrace.Detach(tid, deliver); err != nil {
		// ESRCH: the thread is no longer stopped (SIGKILL woke it) and
		// dies attached; reap it so that its parent can.
		waitGone(tid, keepExit)
		if errors.Is(err, unix.ESRCH) {
			return nil, errVanished
		}
		return nil, fmt.Errorf("detaching: %w", err)
	}
	if readErr != nil {
		return nil, readErr
	}
	return t, nil
}

// exiting reports whether thread tid of pid turns out to be exiting: it
// becomes a zombie or disappears within 20 ms.
func exiting(pid, tid int) bool {
	for i := 0; i < 20; i++ {
		if st := ptrace.ThreadState(pid, tid); st == 0 || st == 'Z' || st == 'X' {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// waitStop waits for the stop PTRACE_INTERRUPT asked for. It returns 0 for an
// interrupt stop, -1 for a group-stop and the signal number for a
// signal-delivery-stop (to be delivered again on detach), or errVanished if
// the thread exited. With keepExit the thread's exit is left unreaped.
func waitStop(tid int, keepExit bool) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	sleep := 20 * time.Microsecond
	for {
		ws, ev, err := waitThread(tid, keepExit)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, errVanished
		}
		switch ev {
		case evExit:
			return 0, errVanished
		case evStop:
			if int(ws>>16) == unix.PTRACE_EVENT_STOP {
				switch ws.StopSignal() {
				case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
					return -1, nil
				}
				return 0, nil
			}
			return int(ws.StopSignal()), nil
		}
		if st := ptrace.ThreadState(tid, tid); st == 0 || st == 'Z' || st == 'X' {
			// Exiting. A zombie thread group leader reports its exit
			// only once the whole group is gone; as its tracer we must
			// reap that report, or its parent could not.
			waitGone(tid, keepExit)
			return 0, errVanished
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("thread did not stop within 10s of PTRACE_INTERRUPT (state %c)", ptrace.ThreadState(tid, tid))
		}
		time.Sleep(sleep)
		if sleep < time.Millisecond {
			sleep *= 2
		}
	}
}

// Events waitThread reports.
const (
	evNone = iota // nothing to report yet
	evStop        // a stop, consumed; ws says which
	evExit        // the thread exited (reaped unless keepExit)
)

// waitThread is a non-blocking wait for tid. Without keepExit it is
// wait4(tid, __WALL|WNOHANG), which reaps an exit. With keepExit an exit is
// only observed (waitid with WNOWAIT), so that the thread's parent can still
// collect its status; a stop is consumed either way.
func waitThread(tid int, keepExit bool) (unix.WaitStatus, int, error) {
	var ws unix.WaitStatus
	if keepExit {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, tid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if err != nil {
			return 0, evNone, err
		}
		// si_pid is the int32 at offset 16 of siginfo_t for SIGCHLD.
		raw := (*[32]byte)(unsafe.Pointer(&info))
		if int32(binary.NativeEndian.Uint32(raw[16:])) != int32(tid) {
			return 0, evNone, nil
		}
		switch info.Code {
		case cldExited, cldKilled, cldDumped:
			return 0, evExit, nil
		}
		// A stop: consume it below.
	}
	wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
	switch {
	case err != nil:
		return 0, evNone, err
	case wpid != tid:
		return 0, evNone, nil
	case ws.Exited() || ws.Signaled():
		return ws, evExit, nil
	case ws.Stopped():
		return ws, evStop, nil
	}
	return ws, evNone, nil
}

// si_code values of SIGCHLD for an exit (CLD_EXITED, CLD_KILLED,
// CLD_DUMPED).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// waitGone reaps the exit of a thread that is exiting while attached (for up
// to two seconds); with keepExit it only waits for the exit to be reported.
func waitGone(tid int, keepExit bool) {
	for i := 0; i < 2000; i++ {
		_, ev, err := waitThread(tid, keepExit)
		if err != nil && err != unix.EINTR || ev == evExit {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// readThread fills t from the stopped thread.
func readThread(pid int, t *Thread, mem *ptrace.Mem, sym Symbolizer) error {
	cfg, err := ptrace.GetRseqConfig(t.TID)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errVanished
		}
		return err
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(t.TID, &regs); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errVanished
		}
		return fmt.Errorf("reading registers: %w", err)
	}
	t.IP = regs.PC()
	if cfg.Pointer == 0 {
		return nil
	}
	t.Registered = true
	t.Area, t.Size, t.Signature = cfg.Pointer, cfg.Size, cfg.Signature
	if mem == nil {
		return fmt.Errorf("cannot read memory of process %d", pid)
	}
	var area [32]byte
	if err := mem.Read(cfg.Pointer, area[:]); err != nil {
		return fmt.Errorf("reading the rseq area: %w", err)
	}
	le := binary.LittleEndian
	t.CPUIDStart = le.Uint32(area[ptrace.OffCPUIDStart:])
	t.CPUID = int32(le.Uint32(area[ptrace.OffCPUID:]))
	t.RseqCS = le.Uint64(area[ptrace.OffRseqCS:])
	t.AreaFlags = le.Uint32(area[ptrace.OffFlags:])
	t.NodeID = le.Uint32(area[ptrace.OffNodeID:])
	t.MMCID = le.Uint32(area[ptrace.OffMMCID:])
	t.HasNodeCID = nodeCIDKnown()
	if t.RseqCS != 0 {
		var cs [32]byte
		s := &Section{Descriptor: t.RseqCS}
		if err := mem.Read(t.RseqCS, cs[:]); err == nil {
			s.Start = le.Uint64(cs[8:])
			s.PostCommit = le.Uint64(cs[16:])
			s.Abort = le.Uint64(cs[24:])
			t.InSection = t.IP >= s.Start && t.IP-s.Start < s.PostCommit
		}
		if sym != nil {
			addr := s.Start
			if addr == 0 {
				addr = t.IP
			}
			s.Object, s.Symbol, _ = sym(pid, addr)
		}
		t.Section = s
	}
	return nil
}

// nodeCIDKnown reports whether the kernel writes node_id and mm_cid
// (AT_RSEQ_FEATURE_SIZE, Linux 6.3+, says the area has more than 20 bytes of
// features).
func nodeCIDKnown() bool {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return false
	}
	for i := 0; i+16 <= len(b); i += 16 {
		tag := binary.LittleEndian.Uint64(b[i:])
		val := binary.LittleEndian.Uint64(b[i+8:])
		if tag == 27 { // AT_RSEQ_FEATURE_SIZE
			return val >= 28
		}
	}
	return false
}
