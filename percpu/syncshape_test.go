package percpu

import "testing"

// syncCounter is the method set of the sync.Counter proposed in
// golang/go#80645 (as far as the proposal's text shows it: Add, and Value
// summing the shards), instantiated for int64.
type syncCounter interface {
	Add(delta int64)
	Value() int64
}

var _ syncCounter = (*Counter)(nil)

func TestCounterValueIsLoad(t *testing.T) {
	c := NewCounter()
	var s syncCounter = c
	s.Add(40)
	c.Inc()
	c.Inc()
	if s.Value() != 42 || c.Load() != 42 {
		t.Fatalf("Value %d, Load %d, want 42", s.Value(), c.Load())
	}
	c.Swap(5)
	if s.Value() != 5 {
		t.Fatalf("Value after Swap(5) = %d", s.Value())
	}
}
