//go:build linux

package rseq_test

import (
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
)

// TestParamAddCPU is the per-CPU increment scenario for the specialised
// sections of per-CPU counters: AddCPU (int64) and AddFloat64CPU (float64,
// integer-valued so that the sum is exact), under fire, exact.
func TestParamAddCPU(t *testing.T) {
	if lineSize != rseq.CPUStride {
		t.Fatalf("lineSize %d, CPUStride %d", lineSize, rseq.CPUStride)
	}
	t.Run("int64", func(t *testing.T) {
		slots := make([]paddedInt, rseq.Slots())
		var want int64
		batches := scenario(t, []string{"addCPU"}, func(workers, n int) {
			parallel(workers, func(w int) {
				for i := range n {
					rseq.AddCPU(unsafe.Pointer(&slots[0]), int64(1+i&1))
				}
			})
			want += int64(workers * (n + n/2))
		})
		var got int64
		for i := range slots {
			got += atomic.LoadInt64(&slots[i].n)
		}
		if got != want {
			t.Fatalf("sum %d after %d batches, want %d (lost or doubled %d)", got, batches, want, want-got)
		}
	})
	t.Run("float64", func(t *testing.T) {
		slots := make([]paddedInt, rseq.Slots())
		var want float64
		batches := scenario(t, []string{"addFloat64CPU"}, func(workers, n int) {
			parallel(workers, func(w int) {
				for i := range n {
					rseq.AddFloat64CPU(unsafe.Pointer(&slots[0]), 0.5+float64(i&1))
				}
			})
			want += float64(workers * n) // 0.5 and 1.5 alternate
		})
		var got float64
		for i := range slots {
			got += math.Float64frombits(uint64(atomic.LoadInt64(&slots[i].n)))
		}
		if got != want {
			t.Fatalf("sum %v after %d batches, want %v", got, batches, want)
		}
	})
}

// TestParamIncCPUIfZero is the scenario for a per-CPU reader-writer lock's
// entry: IncCPUIfZero with the guard at 0 under fire is exact, and with the
// guard set it adds nothing and reports false.
func TestParamIncCPUIfZero(t *testing.T) {
	slots := make([]paddedInt, rseq.Slots())
	base := unsafe.Pointer(&slots[0])
	sum := func() int64 { return sumSlots(slots) }
	var guard uintptr
	var want int64
	var refused atomic.Int64
	batches := scenario(t, []string{"incCPUIfZero"}, func(workers, n int) {
		parallel(workers, func(w int) {
			for range n {
				if !rseq.IncCPUIfZero(base, &guard) {
					refused.Add(1)
				}
			}
		})
		want += int64(workers * n)
	})
	if refused.Load() != 0 {
		t.Fatalf("%d increments refused with the guard at 0", refused.Load())
	}
	if got := sum(); got != want {
		t.Fatalf("sum %d after %d batches, want %d (lost or doubled %d)", got, batches, want, want-got)
	}
	atomic.StoreUintptr(&guard, 1)
	parallel(workers(), func(w int) {
		for range 1000 {
			if rseq.IncCPUIfZero(base, &guard) {
				refused.Add(1)
			}
		}
	})
	if refused.Load() != 0 || sum() != want {
		t.Fatalf("with the guard set: %d increments made, sum %d, want %d", refused.Load(), sum(), want)
	}
}

// TestIncCPUIfZeroFence is the writer's side of the protocol: once the
// guard is set and every CPU fenced, no increment commits any more, while
// readers keep trying; the increments made are exactly those reported. The
// writer sets and clears the guard for up to 3 seconds (about 10,000 cycles
// a second on the host), stopping at the first late commit: a reader that
// checks the guard outside its section (the bug this test is for) commits
// after the fence when the fence's restart lands between its check and its
// commit, which took 50 to 5,600 cycles in ten runs.
func TestIncCPUIfZeroFence(t *testing.T) {
	if !rseq.Features().Operations {
		t.Skip("no sections: the fence does not apply (the fallback orders by locks)")
	}
	slots := make([]paddedInt, rseq.Slots())
	base := unsafe.Pointer(&slots[0])
	sum := func() int64 { return sumSlots(slots) }
	var guard uintptr
	var made atomic.Int64
	var stop atomic.Bool
	done := make(chan struct{})
	// One reader fewer than GOMAXPROCS, so that the writer runs without
	// waiting for a preemption: thousands of cycles a second, not tens.
	readers := max(1, runtime.GOMAXPROCS(0)-1)
	go func() {
		parallel(readers, func(w int) {
			var mine int64
			for !stop.Load() {
				if rseq.IncCPUIfZero(base, &guard) {
					mine++
				}
			}
			made.Add(mine)
		})
		close(done)
	}()
	defer func() {
		stop.Store(true)
		<-done
	}()
	// Spin, not sleep, between the steps: the more cycles, the more
	// fences land between a reader's check and its commit.
	spin := func(d time.Duration) {
		for t0 := time.Now(); time.Since(t0) < d; {
		}
	}
	cycles, late := 0, 0
	for start := time.Now(); time.Since(start) < 3*time.Second && late == 0; cycles++ {
		spin(20 * time.Microsecond)
		atomic.StoreUintptr(&guard, 1)
		if err := rseq.FenceAll(); err != nil {
			t.Fatalf("FenceAll: %v", err)
		}
		// Threads without an area increment under the shared slot's lock.
		rseq.CompareAndStoreRemote((*uintptr)(unsafe.Pointer(&slots[len(slots)-1].n)), 0, 0)
		before := sum()
		spin(20 * time.Microsecond)
		if after := sum(); after != before {
			late++
			t.Errorf("cycle %d: %d increments committed after the guard was set and every CPU fenced", cycles, after-before)
		}
		atomic.StoreUintptr(&guard, 0)
	}
	stop.Store(true)
	<-done
	if got := sum(); got != made.Load() {
		t.Fatalf("sum %d, but %d increments were reported", got, made.Load())
	}
	if made.Load() == 0 {
		t.Fatal("no increment at all: the test tested nothing")
	}
	t.Logf("%d guard cycles, %d increments, %d cycles with late commits", cycles, made.Load(), late)
}

// sumSlots adds up per-CPU int64 slots.
func sumSlots(slots []paddedInt) int64 {
	var s int64
	for i := range slots {
		s += atomic.LoadInt64(&slots[i].n)
	}
	return s
}

// cpuLockStride is the slot size of TestParamCompareAndStoreCPU's array:
// not a power of two, so that a section that shifts instead of multiplying
// by the stride lands on the wrong word.
const cpuLockStride = 3 * 64

// TestParamCompareAndStoreCPU is the per-CPU spinlock scenario for
// CompareAndStoreCPU, the lock of percpu.Histogram: each worker takes the
// calling CPU's lock word with its own id, checks that the slot it got
// back is the one it locked, adds 1 to the slot's count with a plain
// read-modify-write, and unlocks. Under fire the counts add up exactly
// only if no two workers ever held one slot's lock at once.
func TestParamCompareAndStoreCPU(t *testing.T) {
	slots := rseq.Slots()
	mem := make([]uintptr, slots*cpuLockStride/8)
	base := unsafe.Pointer(&mem[0])
	lock := func(s int) *uintptr { return &mem[s*cpuLockStride/8] }
	count := func(s int) *uintptr { return &mem[s*cpuLockStride/8+1] }
	var wrongSlot, outOfRange atomic.Int64
	var want int64
	batches := scenario(t, []string{"cmpStoreCPU"}, func(workers, n int) {
		parallel(workers, func(w int) {
			id := uintptr(w + 1)
			for range n {
				for spins := 0; ; spins++ {
					s, ok := rseq.CompareAndStoreCPU(base, cpuLockStride, 0, id)
					if s < 0 || s >= slots {
						outOfRange.Add(1)
						break
					}
					if ok {
						if atomic.LoadUintptr(lock(s)) != id {
							wrongSlot.Add(1)
						}
						*count(s)++ // plain: the per-CPU lock protects it
						atomic.StoreUintptr(lock(s), 0)
						break
					}
					if spins%64 == 63 {
						runtime.Gosched() // the holder was preempted on this CPU
					}
				}
			}
		})
		want += int64(workers * n)
	})
	if outOfRange.Load() != 0 || wrongSlot.Load() != 0 {
		t.Fatalf("%d slots out of [0, %d), %d locks taken on a slot other than the one returned", outOfRange.Load(), slots, wrongSlot.Load())
	}
	var got int64
	for s := range slots {
		got += int64(*count(s))
		if v := *lock(s); v != 0 {
			t.Errorf("slot %d left locked by %d", s, v)
		}
	}
	if got != want {
		t.Fatalf("lock-protected sum %d after %d batches, want %d (lost %d)", got, batches, want, want-got)
	}
}

// TestCompareAndStoreCPUSlot pins the thread to each CPU in turn: there the
// section must work on the slot ByCPU.Slot names, return it whether the
// compare succeeds or fails, and leave every other slot's word alone.
func TestCompareAndStoreCPUSlot(t *testing.T) {
	slots := rseq.Slots()
	mem := make([]uintptr, slots*cpuLockStride/8)
	base := unsafe.Pointer(&mem[0])
	word := func(s int) uintptr { return atomic.LoadUintptr(&mem[s*cpuLockStride/8]) }
	for _, cpu := range cpusAllowed(t) {
		unpin := pinToOneCPU(t, cpu)
		want := rseq.ByCPU.Slot()
		s1, ok1 := rseq.CompareAndStoreCPU(base, cpuLockStride, 7, 9) // the word is 0: fails
		s2, ok2 := rseq.CompareAndStoreCPU(base, cpuLockStride, 0, uintptr(cpu+100))
		s3, ok3 := rseq.CompareAndStoreCPU(base, cpuLockStride, 0, 1) // now held: fails
		unpin()
		if s1 != want || s2 != want || s3 != want {
			t.Fatalf("on CPU %d: slots %d, %d, %d, want ByCPU.Slot() %d", cpu, s1, s2, s3, want)
		}
		if ok1 || !ok2 || ok3 {
			t.Fatalf("on CPU %d: ok %v, %v, %v, want false, true, false", cpu, ok1, ok2, ok3)
		}
		for s := range slots {
			switch v := word(s); {
			case s == want && v != uintptr(cpu+100):
				t.Fatalf("on CPU %d: slot %d holds %d, want %d", cpu, s, v, cpu+100)
			case s != want && v != 0:
				t.Fatalf("on CPU %d: slot %d, not the CPU's, holds %d", cpu, s, v)
			}
		}
		atomic.StoreUintptr(&mem[want*cpuLockStride/8], 0)
	}
}
