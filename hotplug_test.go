//go:build linux

package rseq_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/testenv"
	"github.com/gorseq/rseq/percpu"
	"golang.org/x/sys/unix"
)

// TestCPUComesOnline brings CPUs online while per-CPU structures are in use
// by a process that cannot read sysfs: every CPU number and slot stays
// below the bound the package chose at start-up (PossibleCPUs), and the
// counts stay exact. The bound must come from what the kernel guarantees
// (nr_cpu_ids), not from the CPUs online or allowed at start-up, which grow.
//
// It needs root, a CPU that is possible but offline, and a kernel that can
// bring it online: the CI guest boots with maxcpus=1 on 3 CPUs and sets
// GORSEQ_QEMU_HOTPLUG=1 (.ci/qemu-matrix.sh). Elsewhere it skips.
//
// Three processes: this test (with sysfs) starts a helper in a new mount
// namespace, which unmounts /sys there and starts the worker; the worker
// reports READY, this test brings the offline CPUs online and says GO, and
// the worker widens its affinity to them and checks.
func TestCPUComesOnline(t *testing.T) {
	switch os.Getenv("GORSEQ_HOTPLUG_ROLE") {
	case "unmount":
		hotplugUnmountSys()
		return
	case "worker":
		hotplugWorker(t)
		return
	}
	expect := os.Getenv("GORSEQ_QEMU_HOTPLUG") == "1"
	skip := func(why string) {
		t.Helper()
		if expect {
			t.Fatalf("GORSEQ_QEMU_HOTPLUG=1, but %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		skip("needs root to bring CPUs online and unmount /sys")
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/offline")
	offline := strings.TrimSpace(string(b))
	if err != nil || offline == "" {
		skip(fmt.Sprintf("no offline CPU to bring online (offline: %q, %v)", offline, err))
	}
	cpus, err := parseList(offline)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCPUComesOnline$", "-test.v")
	cmd.Env = append(os.Environ(), "GORSEQ_HOTPLUG_ROLE=unmount")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "READY" {
			ready = true
			break
		}
	}
	if ready {
		for _, c := range cpus {
			if err := os.WriteFile(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/online", c), []byte("1"), 0); err != nil {
				t.Errorf("bringing CPU %d online: %v", c, err)
			}
		}
		fmt.Fprintln(stdin, "GO")
	}
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	t.Logf("worker:\n%s%s", out.String(), stderr.String())
	if !ready || err != nil || !strings.Contains(out.String(), "--- PASS: TestCPUComesOnline") {
		t.Fatalf("the worker failed (ready %v): %v", ready, err)
	}
}

// hotplugUnmountSys runs in a new mount namespace: it detaches /sys there
// and becomes the worker, which then starts without sysfs.
func hotplugUnmountSys() {
	die := func(what string, err error) {
		fmt.Printf("helper: %s: %v\n", what, err)
		os.Exit(2)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		die("making mounts private", err)
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		die("unmounting /sys", err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GORSEQ_HOTPLUG_ROLE=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GORSEQ_HOTPLUG_ROLE=worker")
	die("exec", syscall.Exec(os.Args[0], []string{os.Args[0], "-test.run=^TestCPUComesOnline$", "-test.v"}, env))
}

func hotplugWorker(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu/possible"); err == nil {
		t.Fatal("the worker can read sysfs: the helper did not unmount it")
	}
	if !rseq.Features().Operations {
		t.Fatalf("no sections: %s", rseq.Features().OperationsReason)
	}
	bound := rseq.PossibleCPUs()
	start := rseq.CPU()
	t.Logf("without sysfs: PossibleCPUs %d, Slots %d, running on CPU %d", bound, rseq.Slots(), start)

	c := percpu.NewCounter()
	arr := make([]struct {
		n int64
		_ [120]byte
	}, rseq.Slots())
	var stop atomic.Bool
	var adds, maxCPU, badSlot atomic.Int64
	add := func() {
		c.Add(1)
		slot := rseq.Add(unsafe.Pointer(&arr[0]), unsafe.Sizeof(arr[0]), rseq.ByCPU, 1)
		adds.Add(1)
		if slot >= rseq.SharedSlot() {
			badSlot.Store(int64(slot) + 1)
		}
		if cpu := int64(rseq.CPU()); cpu > maxCPU.Load() {
			maxCPU.Store(cpu)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				add()
			}
		}()
	}
	// Keep asking for every CPU the kernel may have, so that threads move
	// to the new ones as soon as they come online.
	var all unix.CPUSet
	for i := 0; i < 1024; i++ {
		all.Set(i)
	}
	widen := func() {
		tids, _ := os.ReadDir("/proc/self/task")
		for _, d := range tids {
			if tid, err := strconv.Atoi(d.Name()); err == nil {
				unix.SchedSetaffinity(tid, &all)
			}
		}
	}
	widen()
	fmt.Println("READY")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "GO" {
		t.Fatalf("no GO from the parent: %q", line)
	}
	// Until threads have run on a new CPU for a while (bringing a CPU up
	// under TCG on a busy host can take seconds), or 30 s.
	deadline := time.Now().Add(30 * time.Second)
	var seen time.Time
	var pinErr error
	for time.Now().Before(deadline) {
		widen()
		// The goroutines above reach a new CPU only if the load balancer
		// moves their thread there (GOMAXPROCS was 1 at start): also pin
		// this thread to every CPU the kernel lets it use now, the new
		// ones among them as soon as they are up.
		pinErr = testenv.OnEveryCPU(func(int) {
			for i := 0; i < 1000; i++ {
				add()
			}
		})
		time.Sleep(10 * time.Millisecond)
		if seen.IsZero() && maxCPU.Load() > int64(start) {
			seen = time.Now()
		}
		if !seen.IsZero() && time.Since(seen) > time.Second {
			break
		}
	}
	stop.Store(true)
	wg.Wait()

	if m := maxCPU.Load(); m <= int64(start) {
		t.Errorf("no thread ran on a CPU brought online (highest CPU seen %d; pinning to each CPU allowed: %v)", m, pinErr)
	} else if m >= int64(bound) {
		t.Errorf("CPU %d seen, at or above PossibleCPUs %d: sections index past their arrays", m, bound)
	}
	if s := badSlot.Load(); s != 0 {
		t.Errorf("Add used slot %d, the shared slot or beyond", s-1)
	}
	var sum int64
	for i := range arr {
		sum += arr[i].n
	}
	if n := adds.Load(); sum != n || c.Load() != n {
		t.Errorf("%d adds: the array holds %d, the Counter %d", n, sum, c.Load())
	}
	t.Logf("%d adds, highest CPU %d, PossibleCPUs %d", adds.Load(), maxCPU.Load(), bound)
}

// parseList parses a kernel CPU list such as "1-2,4".
func parseList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		z, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a > z {
			return nil, fmt.Errorf("bad CPU list %q", s)
		}
		for c := a; c <= z; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
