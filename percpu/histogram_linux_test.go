//go:build linux

package percpu

import (
	"errors"
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// onEveryCPU runs f on a thread pinned to each CPU the process may use
// (once more, unpinned, where pinning failed), for benchmarks (onEachCPU
// is the tests' own, with their *testing.T).
func onEveryCPU(f func()) {
	if testenv.OnEveryCPU(func(int) { f() }) != nil {
		f()
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
