package percpu

import (
	"expvar"
	"math"
	"testing"
)

var (
	_ expvar.Var = (*Uint64Counter)(nil)
	_ expvar.Var = (*Float64Counter)(nil)
)

func TestUint64CounterWrapsAndCounts(t *testing.T) {
	u := NewUint64Counter()
	u.Add(math.MaxUint64) // -1 as int64
	u.Add(3)
	if got := u.Load(); got != 2 {
		t.Fatalf("MaxUint64 + 3 = %d, want 2 (wrap-around)", got)
	}
	var counts []int
	underFire(t, []string{"addCPU"}, func() {
		counts = until(8, func(g, i int) bool {
			u.Add(5)
			return true
		})
	})
	want := 2 + 5*uint64(total(counts))
	if got := u.Load(); got != want {
		t.Fatalf("Load = %d after %d adds, want %d", got, total(counts), want)
	}
	if old := u.Swap(7); old != want || u.Load() != 7 || u.String() != "7" {
		t.Fatalf("Swap(7) = %d, then Load %d, String %q", old, u.Load(), u.String())
	}
}

func TestFloat64CounterExactForIntegers(t *testing.T) {
	f := NewFloat64Counter()
	var counts []int
	underFire(t, []string{"addFloat64CPU"}, func() {
		counts = until(8, func(g, i int) bool {
			f.Add(0.5 + float64(i&1)) // 0.5 and 1.5 are exact in binary
			return true
		})
	})
	var want float64
	for _, n := range counts {
		want += float64(n/2)*2 + float64(n%2)*0.5
	}
	if got := f.Load(); got != want {
		t.Fatalf("Load = %v after %d adds, want %v (lost or doubled adds)", got, total(counts), want)
	}
	if old := f.Swap(1.25); old != want || f.Load() != 1.25 || f.String() != "1.25" {
		t.Fatalf("Swap(1.25) = %v, then Load %v, String %q", old, f.Load(), f.String())
	}
}
