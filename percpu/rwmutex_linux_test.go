//go:build linux

package percpu

import (
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

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
