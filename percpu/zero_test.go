package percpu

import (
	"strings"
	"sync"
	"testing"
)

// TestZeroValues: the zero Pool and Value work; the other types' zero
// values panic at once, naming their constructor, on every method but
// Uint64Counter.Add (which panics with a nil dereference, to stay
// inlinable). None of them faults fatally or misreports a size.
func TestZeroValues(t *testing.T) {
	t.Run("Pool", func(t *testing.T) {
		made := 0
		p := Pool[int]{New: func() *int { made++; return new(int) }} // sync.Pool's idiom
		// On one CPU: Get reaches the calling CPU's list, which a
		// migration between Put and Get would change.
		onOneCPU(t, func() {
			x := p.Get()
			*x = 42
			p.Put(x)
			if y := p.Get(); y != x || *y != 42 {
				t.Errorf("Get after Put returned %p (%d), want %p", y, *y, x)
			}
		})
		if made != 1 {
			t.Errorf("New called %d times, want 1", made)
		}
		var q Pool[int] // no New at all
		if q.Len() != 0 || q.Get() == nil {
			t.Error("zero Pool without New: want Len 0 and new(T) from Get")
		}
		// Set up concurrently by its first users.
		var r Pool[int]
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 1000 {
					r.Put(r.Get())
				}
			}()
		}
		wg.Wait()
		if n := r.Len(); n < 1 || n > DefaultPoolPerCPU*rseqSlots()+DefaultPoolOverflow {
			t.Errorf("zero Pool holds %d objects after use", n)
		}
	})
	t.Run("Value", func(t *testing.T) {
		var v Value[int]
		v.Update(func(p *int) { *p += 3 })
		if got := mustMerge(t, &v, func(acc *int, p *int) { *acc += *p }); got != 3 {
			t.Errorf("zero Value: sum %d, want 3", got)
		}
	})
	for _, c := range []struct {
		name, ctor string
		call       func()
	}{
		{"Counter.Load", "NewCounter", func() { var c Counter; c.Load() }},
		{"Counter.Swap", "NewCounter", func() { var c Counter; c.Swap(1) }},
		{"Counter.String", "NewCounter", func() { var c Counter; _ = c.String() }},
		{"Uint64Counter.Load", "NewUint64Counter", func() { var c Uint64Counter; c.Load() }},
		{"Float64Counter.Add", "NewFloat64Counter", func() { var c Float64Counter; c.Add(1) }},
		{"Float64Counter.Load", "NewFloat64Counter", func() { var c Float64Counter; c.Load() }},
		{"Buffer.Push", "NewBuffer", func() { var b Buffer; b.Push(1) }},
		{"Buffer.Pop", "NewBuffer", func() { var b Buffer; b.Pop() }},
		{"Buffer.Drain", "NewBuffer", func() { var b Buffer; b.Drain(nil) }},
		{"Buffer.Len", "NewBuffer", func() { var b Buffer; b.Len() }},
		{"Log.Append", "NewLog", func() { var l Log; l.Append([]byte("x")) }},
		{"Log.Drain", "NewLog", func() { var l Log; l.Drain(func(int, []byte) {}) }},
		{"Counter.Add", "NewCounter", func() { var c Counter; c.Add(1) }},
		{"Uint64Counter.Add", "", func() { var c Uint64Counter; c.Add(1) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if err, ok := r.(error); ok {
					msg = err.Error()
				}
				switch {
				case r == nil:
					t.Errorf("the zero value's %s did not panic", c.name)
				case c.ctor != "" && !strings.Contains(msg, c.ctor):
					t.Errorf("the zero value's %s panicked with %q, which does not name %s", c.name, msg, c.ctor)
				}
			}()
			c.call()
		})
	}
}
