//go:build linux

package percpu

import (
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// onEveryCPU runs f on a thread pinned to each CPU the process may use, for
// benchmarks (onEachCPU is the tests' own, with their *testing.T).
func onEveryCPU(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if unix.SchedGetaffinity(0, &orig) != nil {
		f()
		return
	}
	defer unix.SchedSetaffinity(0, &orig)
	for c := 0; c < len(orig)*64; c++ {
		if !orig.IsSet(c) {
			continue
		}
		var one unix.CPUSet
		one.Set(c)
		if unix.SchedSetaffinity(0, &one) == nil {
			f()
		}
	}
}

// TestHistogramFenceFailure: when fences start failing after the Histogram
// was made, Snapshot returns the error, loses nothing, and the Histogram
// keeps working; once fences work again the snapshot is complete.
func TestHistogramFenceFailure(t *testing.T) {
	h, err := NewHistogram(histBounds)
	if err != nil {
		t.Fatal(err)
	}
	if !h.fenced {
		t.Skip("locked mode (no sections or no membarrier): no fence to fail")
	}
	n := 0
	onEachCPU(t, func(cpu int) {
		for i := 0; i < 3; i++ {
			h.Observe(histValue(cpu, i))
			n++
		}
	})
	t.Run("failing", func(t *testing.T) {
		failFences(t)
		s, err := h.Snapshot()
		if !errors.Is(err, errNoFence) {
			t.Fatalf("Snapshot: %v, want the fence's error", err)
		}
		if err := checkHistSnapshot(s); err != nil {
			t.Errorf("partial snapshot: %v", err)
		}
		onEachCPU(t, func(cpu int) {
			h.Observe(histValue(cpu, 99))
			n++
		})
	})
	s, err := h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != uint64(n) {
		t.Errorf("count %d after %d observations", s.Count, n)
	}
	if err := checkHistSnapshot(s); err != nil {
		t.Error(err)
	}
}
