package percpu

import (
	"expvar"
	"fmt"
	"sync/atomic"
	"testing"
)

var _ expvar.Var = (*Counter)(nil)

var expvarRuns atomic.Int64

func TestCounterExact(t *testing.T) {
	c := NewCounter()
	const G = 8
	var counts []int
	var loads atomic.Int64
	done := make(chan struct{})
	underFire(t, []string{"addCPU"}, func() {
		go func() {
			defer close(done)
			for loads.Load() >= 0 {
				v := c.Load()
				if v < 0 {
					t.Errorf("Load = %d < 0", v)
					return
				}
				if loads.Add(1) > 1<<40 {
					return
				}
			}
		}()
		counts = until(G, func(g, i int) bool {
			c.Add(int64(1 + 2*(i&1)))
			return true
		})
		loads.Store(-1 << 62)
		<-done
	})
	var want int64
	for _, n := range counts {
		want += int64(n/2*4 + n%2)
	}
	if got := c.Load(); got != want {
		t.Fatalf("Load = %d after %d adds, want %d (lost or doubled adds)", got, total(counts), want)
	}
	t.Logf("%d adds", total(counts))
	if got := c.String(); got != itoa(want) {
		t.Errorf("String = %q, want %q", got, itoa(want))
	}
}

func itoa(v int64) string {
	var i expvar.Int
	i.Set(v)
	return i.String()
}

func TestCounterSwapExact(t *testing.T) {
	c := NewCounter()
	const G = 4
	var counts []int
	var taken atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	underFire(t, []string{"addCPU"}, func() {
		go func() {
			defer close(done)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if k%2 == 0 {
					taken.Add(c.Reset())
				} else {
					// Swap in 1000 and count it as taken back later.
					taken.Add(c.Swap(1000) - 1000)
				}
			}
		}()
		counts = until(G, func(g, i int) bool {
			c.Add(1)
			return true
		})
		close(stop)
		<-done
	})
	if got, want := taken.Load()+c.Load(), int64(total(counts)); got != want {
		t.Fatalf("swapped out + left = %d, want %d", got, want)
	}
}

func TestCounterZeroAndWrap(t *testing.T) {
	c := NewCounter()
	if c.Load() != 0 || c.String() != "0" {
		t.Fatalf("new Counter reads %d %q", c.Load(), c.String())
	}
	c.Add(-5)
	if c.Load() != -5 {
		t.Fatalf("Load = %d, want -5", c.Load())
	}
	c.Add(1<<63 - 1)
	c.Add(10) // wraps like int64 arithmetic
	max := int64(1<<63 - 1)
	if got, want := c.Load(), -5+max+10; got != want {
		t.Fatalf("Load = %d, want %d", got, want)
	}
	if old, want := c.Swap(7), -5+max+10; old != want || c.Load() != 7 {
		t.Fatalf("Swap(7) returned %d, then Load = %d; want %d and 7", old, c.Load(), want)
	}
	c.Inc()
	if c.Reset() != 8 || c.Load() != 0 {
		t.Fatalf("Reset did not return 8 and zero the counter")
	}
}

func TestCounterExpvar(t *testing.T) {
	c := NewCounter()
	name := fmt.Sprintf("percpu_test_counter_%d", expvarRuns.Add(1))
	expvar.Publish(name, c)
	c.Add(42)
	if got := expvar.Get(name).String(); got != "42" {
		t.Fatalf("expvar shows %q, want 42", got)
	}
}

func TestCounterMemory(t *testing.T) {
	c := NewCounter()
	c.Add(1)
	s := c.s
	if uintptr(s.base)%line != 0 {
		t.Errorf("shards at %p, not %d-aligned", s.base, line)
	}
	if len(s.mem)*8 > (rseqSlots()+1)*line {
		t.Errorf("counter uses %d bytes, more than %d", len(s.mem)*8, (rseqSlots()+1)*line)
	}
}
