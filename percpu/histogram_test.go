package percpu

import (
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// histValue is the observation of goroutine g's i-th call in the exactness
// test: an integer from 1 to 16, so that bucket k (bounds 1..15, then +Inf)
// holds only the value k+1 and a snapshot's sum is determined by its
// bucket counts.
func histValue(g, i int) float64 { return float64(1 + (i*7+g)%16) }

var histBounds = []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// checkHistSnapshot checks that s is internally consistent for the values
// of histValue: Count is the sum of the bucket counts and Sum the sum of
// the values those counts stand for.
func checkHistSnapshot(s HistogramSnapshot) error {
	var n uint64
	var sum float64
	for k, c := range s.Counts {
		n += c
		sum += float64(c) * float64(k+1)
	}
	switch {
	case n != s.Count:
		return errorf("count %d, but the buckets hold %d: %v", s.Count, n, s.Counts)
	case sum != s.Sum:
		return errorf("sum %v, but the buckets stand for %v (count %d): %v", s.Sum, sum, s.Count, s.Counts)
	}
	return nil
}

func testHistogramExact(t *testing.T) {
	h, err := NewHistogram(histBounds)
	if err != nil {
		t.Fatal(err)
	}
	const G = 6
	var counts []int
	var snapshots atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	underFire(t, []string{"cmpStoreCPU"}, func() {
		go func() {
			// A reader that snapshots all the time and checks every
			// snapshot, and that snapshots never go back.
			defer close(done)
			var prev HistogramSnapshot
			var s HistogramSnapshot
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := h.SnapshotInto(&s); err != nil {
					t.Error(err)
					return
				}
				if err := checkHistSnapshot(s); err != nil {
					t.Errorf("snapshot %d under fire: %v", snapshots.Load(), err)
					return
				}
				for k := range prev.Counts {
					if s.Counts[k] < prev.Counts[k] {
						t.Errorf("bucket %d went back from %d to %d", k, prev.Counts[k], s.Counts[k])
						return
					}
				}
				prev.Counts = append(prev.Counts[:0], s.Counts...)
				snapshots.Add(1)
			}
		}()
		counts = until(G, func(g, i int) bool {
			h.Observe(histValue(g, i))
			return true
		})
		// The snapshots must overlap observations. Where the reader has
		// not finished one yet (a loaded qemu guest can give it no turn
		// for the whole burn), one more observer goes on until it has.
		extra := 0
		for deadline := time.Now().Add(time.Minute); snapshots.Load() < 2 && time.Now().Before(deadline); extra++ {
			h.Observe(histValue(G, extra))
		}
		counts = append(counts, extra)
		close(stop)
		<-done
	})
	want := make([]uint64, len(histBounds)+1)
	var wantSum float64
	for g, n := range counts {
		for i := 0; i < n; i++ {
			v := histValue(g, i)
			want[int(v)-1]++
			wantSum += v
		}
	}
	s, err := h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d observations (%d after the burn, waiting for the reader), %d snapshots under fire", total(counts), counts[G], snapshots.Load())
	if s.Count != uint64(total(counts)) {
		t.Errorf("count %d after %d observations (lost or doubled)", s.Count, total(counts))
	}
	for k := range want {
		if s.Counts[k] != want[k] {
			t.Errorf("bucket %d (le %v): %d, want %d", k, bucketName(histBounds, k), s.Counts[k], want[k])
		}
	}
	if s.Sum != wantSum {
		t.Errorf("sum %v, want %v", s.Sum, wantSum)
	}
	if n := snapshots.Load(); n < 2 {
		t.Errorf("%d snapshots taken under fire, want 2 at least", n)
	}
}

func bucketName(bounds []float64, k int) string {
	if k == len(bounds) {
		return "+Inf"
	}
	return strconv.FormatFloat(bounds[k], 'g', -1, 64)
}

// TestHistogramExact: observations from many goroutines under fire all end
// up in their buckets, count and sum, exactly; snapshots taken meanwhile are
// consistent every time.
func TestHistogramExact(t *testing.T) {
	testHistogramExact(t)
	withLocked(t, testHistogramExact)
}

func TestHistogramBuckets(t *testing.T) {
	h, err := NewHistogram([]float64{math.Inf(-1), -1, 0, 0.5, 10, math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Bounds(); len(got) != 5 {
		t.Fatalf("Bounds = %v: the +Inf bound should be dropped", got)
	}
	for _, c := range []struct {
		v      float64
		bucket int
	}{
		{math.Inf(-1), 0}, {-1e300, 1}, {-1, 1}, {-0.5, 2}, {0, 2}, {math.Copysign(0, -1), 2},
		{1e-300, 3}, {0.5, 3}, {0.5000001, 4}, {10, 4}, {10.000001, 5}, {math.Inf(1), 5}, {math.NaN(), 5},
	} {
		if got := h.bucket(c.v); got != c.bucket {
			t.Errorf("bucket(%v) = %d, want %d", c.v, got, c.bucket)
		}
	}
	// The binary search agrees with the linear one.
	many := make([]float64, 100)
	for i := range many {
		many[i] = float64(i*i) / 7
	}
	hm, err := NewHistogram(many)
	if err != nil {
		t.Fatal(err)
	}
	for v := -2.0; v < 1500; v += 0.37 {
		want := len(many)
		for i, b := range many {
			if v <= b {
				want = i
				break
			}
		}
		if got := hm.bucket(v); got != want {
			t.Fatalf("bucket(%v) = %d, want %d", v, got, want)
		}
	}
	for _, b := range many {
		if got := hm.bucket(b); many[got] != b {
			t.Fatalf("bucket(%v) is the one of bound %v", b, many[got])
		}
	}

	h.Observe(-1)
	h.Observe(3)
	h.Observe(3)
	h.Observe(100)
	s, err := h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != 4 || s.Sum != 105 || s.Counts[1] != 1 || s.Counts[4] != 2 || s.Counts[5] != 1 {
		t.Errorf("snapshot %+v", s)
	}
	if c := s.Cumulative(); c[len(c)-1] != s.Count || c[4] != 3 || c[0] != 0 {
		t.Errorf("cumulative %v", c)
	}
	h.Observe(math.NaN())
	if s, _ := h.Snapshot(); !math.IsNaN(s.Sum) || s.Count != 5 || s.Counts[5] != 2 {
		t.Errorf("after NaN: %+v", s)
	}
}

func TestHistogramNoBounds(t *testing.T) {
	h, err := NewHistogram(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Observe(1.5)
	h.Observe(-2)
	s, err := h.Snapshot()
	if err != nil || s.Count != 2 || s.Sum != -0.5 || len(s.Counts) != 1 || s.Counts[0] != 2 {
		t.Fatalf("snapshot %+v, %v", s, err)
	}
	if h, err := NewHistogram([]float64{math.Inf(1)}); err != nil || len(h.Bounds()) != 0 {
		t.Fatalf("[+Inf]: %v", err)
	}
}

func TestNewHistogramErrors(t *testing.T) {
	for _, b := range [][]float64{
		{1, 1},
		{2, 1},
		{math.NaN()},
		{1, math.Inf(1), 2},
		make([]float64, MaxHistogramBounds+1),
	} {
		if _, err := NewHistogram(b); err == nil {
			t.Errorf("NewHistogram(%v) did not fail", b[:min(len(b), 4)])
		}
	}
}

// TestHistogramZeroValue: the zero Histogram panics naming NewHistogram.
func TestHistogramZeroValue(t *testing.T) {
	for name, call := range map[string]func(){
		"Observe":      func() { var h Histogram; h.Observe(1) },
		"Snapshot":     func() { var h Histogram; h.Snapshot() },
		"SnapshotInto": func() { var h Histogram; h.SnapshotInto(&HistogramSnapshot{}) },
		"Bounds":       func() { var h Histogram; h.Bounds() },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, "NewHistogram") {
					t.Errorf("zero Histogram's %s panicked with %q, which does not name NewHistogram", name, msg)
				}
			}()
			call()
		})
	}
}

// TestHistogramMemory: shards are line-aligned, one 128-byte shard per
// slot up to 12 bounds, and the stated size for more.
func TestHistogramMemory(t *testing.T) {
	for _, c := range []struct{ bounds, stride int }{{0, 128}, {11, 128}, {12, 128}, {13, 256}, {16, 256}, {28, 256}, {29, 384}} {
		h, err := NewHistogram(linear(c.bounds))
		if err != nil {
			t.Fatal(err)
		}
		if int(h.stride) != c.stride {
			t.Errorf("%d bounds: shards of %d bytes, want %d", c.bounds, h.stride, c.stride)
		}
		if uintptr(h.base)%line != 0 {
			t.Errorf("shards at %p, not %d-aligned", h.base, line)
		}
		if len(h.mem)*8 > rseqSlots()*c.stride+line {
			t.Errorf("%d bounds: %d bytes, more than %d", c.bounds, len(h.mem)*8, rseqSlots()*c.stride+line)
		}
	}
}

func linear(n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = float64(i + 1)
	}
	return b
}

// TestHistogramSnapshotIntoReuses: SnapshotInto allocates nothing once the
// snapshot has room.
func TestHistogramSnapshotIntoReuses(t *testing.T) {
	h, _ := NewHistogram(histBounds)
	h.Observe(3)
	var s HistogramSnapshot
	if err := h.SnapshotInto(&s); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(20, func() { h.SnapshotInto(&s) }); a != 0 {
		t.Errorf("SnapshotInto allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() { h.Observe(2) }); a != 0 {
		t.Errorf("Observe allocates %v times", a)
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h, _ := NewHistogram(linear(16))
	v := 0.0
	for b.Loop() {
		v += 0.7
		if v > 18 {
			v = 0
		}
		h.Observe(v)
	}
}

func BenchmarkHistogramObserveParallel(b *testing.B) {
	h, _ := NewHistogram(linear(16))
	b.RunParallel(func(pb *testing.PB) {
		v := 0.0
		for pb.Next() {
			v += 0.7
			if v > 18 {
				v = 0
			}
			h.Observe(v)
		}
	})
}

// BenchmarkHistogramSnapshot: a snapshot of a 16-bucket histogram with
// observations on every CPU the process may use (reported as "shards"):
// one fence per CPU.
func BenchmarkHistogramSnapshot(b *testing.B) {
	h, _ := NewHistogram(linear(15))
	onEveryCPU(func() {
		for i := 0; i < 100; i++ {
			h.Observe(float64(i % 17))
		}
	})
	var s HistogramSnapshot
	for b.Loop() {
		if err := h.SnapshotInto(&s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(usedShards(h)), "shards")
}

func usedShards(h *Histogram) int {
	n := 0
	for slot := 0; slot < rseqSlots(); slot++ {
		if *h.shardWord(slot, histCount) != 0 {
			n++
		}
	}
	return n
}
