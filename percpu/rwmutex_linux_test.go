//go:build linux

package percpu

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

// TestRWMutexMovesBetweenCPUs: a reader that takes the lock on one CPU and
// releases it on another leaves the counts +1 and -1, which sum to no
// reader: a writer gets in.
func TestRWMutexMovesBetweenCPUs(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	var cpus []int
	for c := 0; c < len(orig)*64; c++ {
		if orig.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	pin := func(c int) {
		var one unix.CPUSet
		one.Set(c)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			t.Fatal(err)
		}
	}
	for _, locked := range []bool{false, true} {
		forceLocked.Store(locked)
		var m RWMutex
		a, b := cpus[0], cpus[1]
		pin(a)
		m.RLock()
		pin(b)
		m.RUnlock()
		st := m.st.Load()
		ca, cb := int(atomic.LoadUintptr(st.count(a))), int(atomic.LoadUintptr(st.count(b)))
		// Where this thread runs sections (or the whole process runs the
		// fallback) the counts are the CPUs'; a thread on the fallback
		// beside sections uses the shared slot for both.
		if rseq.AreaAddress() != 0 || !rseq.Features().Operations {
			if ca != 1 || cb != -1 {
				t.Errorf("locked mode %v: counts of CPU %d and %d are %d and %d, want 1 and -1", locked, a, b, ca, cb)
			}
		}
		if n := st.readers(); n != 0 {
			t.Errorf("locked mode %v: readers' sum %d after RLock on CPU %d and RUnlock on %d", locked, n, a, b)
		}
		if !m.TryLock() {
			t.Errorf("locked mode %v: TryLock failed after the reader left from another CPU", locked)
		} else {
			m.Unlock()
		}
	}
	forceLocked.Store(false)
}

// TestRWMutexFenceFails: if membarrier starts failing after the mutex was
// set up, Lock gives the mutex back and panics, TryLock fails, and readers
// go on.
func TestRWMutexFenceFails(t *testing.T) {
	var m RWMutex
	m.Lock()
	st := m.st.Load()
	m.Unlock()
	if !st.fenced || !st.ops {
		t.Skip("the fence is used only where sections run and it works")
	}
	saved := fenceAllCPUs
	fenceAllCPUs = func() error { return errors.New("fence refused (test)") }
	defer func() { fenceAllCPUs = saved }()
	func() {
		defer func() {
			r := recover()
			if s, _ := r.(string); !strings.Contains(s, "fence refused") {
				t.Errorf("Lock with a failing fence: recovered %v, want a panic naming the error", r)
			}
		}()
		m.Lock()
	}()
	if m.TryLock() {
		t.Error("TryLock succeeded with a failing fence")
	}
	m.RLock()
	if m.TryLock() {
		t.Error("TryLock succeeded with a reader")
	}
	m.RUnlock()
	fenceAllCPUs = saved
	m.Lock()
	if n := st.readers(); n != 0 {
		t.Errorf("readers' sum %d with the write lock held", n)
	}
	m.Unlock()
}

// pinThread pins the calling (locked) thread to cpu and returns the undo.
func pinThread(t *testing.T, cpu int) func() {
	t.Helper()
	var orig, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	return func() { unix.SchedSetaffinity(0, &orig) }
}

// TestRWMutexWriterSliceGranted: a writer that holds the lock for about a
// microsecond at a time, on a CPU it shares with a busy thread, is granted
// time-slice extensions while it holds it (the kernel wanted to switch to
// the busy thread), and Unlock gives the CPU back (rseq_slice_yield), as
// rseq.SliceStats counts. It needs a kernel with the extension (the CI
// guest amd64/7.3-slice, where GORSEQ_EXPECT_SLICE_EXTENSION=true makes a
// skip a failure).
func TestRWMutexWriterSliceGranted(t *testing.T) {
	if ok, err := rseq.SliceAvailable(); !ok {
		if os.Getenv("GORSEQ_EXPECT_SLICE_EXTENSION") == "true" {
			t.Fatalf("GORSEQ_EXPECT_SLICE_EXTENSION=true, but SliceAvailable() = false, %v", err)
		}
		t.Skipf("no time-slice extension here (%v)", err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpu = c
		}
	}
	// About 1 µs of work under the write lock: well inside the grant
	// (5 µs by default).
	// (Timed over at least 20 ms: the clock may move in jiffies.)
	acc := 0
	n := 1
	for iters := 1 << 16; ; iters *= 2 {
		start := time.Now()
		work(iters, &acc)
		if d := time.Since(start); d >= 20*time.Millisecond || iters >= 1<<30 {
			n = max(int(float64(iters)*float64(time.Microsecond)/max(float64(d), 1)), 1)
			break
		}
	}

	limit := 10 * time.Second
	if testing.Short() && os.Getenv("GORSEQ_QEMU") == "" {
		limit = 3 * time.Second
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the busy thread, on the same CPU
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer pinThread(t, cpu)()
		x := 0
		for !stop.Load() {
			work(100, &x)
		}
	}()
	var m RWMutex
	var d guarded
	before := rseq.SliceStats()
	locks, requested := 0, 0
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer pinThread(t, cpu)()
		deadline := time.Now().Add(limit)
		for {
			if locks%256 == 0 {
				if time.Now().After(deadline) || rseq.SliceStats().Granted-before.Granted >= 20 {
					break
				}
			}
			locks++
			m.Lock()
			if m.st.Load().slice.Requested() {
				requested++
			}
			d.a++
			work(n, &acc)
			d.b++
			m.Unlock()
		}
	}()
	stop.Store(true)
	wg.Wait()
	after := rseq.SliceStats()
	granted, yielded := after.Granted-before.Granted, after.Yielded-before.Yielded
	t.Logf("CPU %d: %d write locks of ~1 µs (%d with the extension requested): %d granted, %d yielded within the grant", cpu, locks, requested, granted, yielded)
	if requested != locks {
		t.Errorf("%d of %d write locks requested an extension", requested, locks)
	}
	if d.a != d.b || d.a != int64(locks) {
		t.Errorf("guarded %+v after %d write locks", d, locks)
	}
	if granted == 0 {
		t.Fatalf("no extension was granted to a writer in %d write locks within %v, with a busy thread on its CPU", locks, limit)
	}
	if yielded == 0 {
		t.Errorf("Unlock yielded within none of the %d grants", granted)
	}
}
