package percpu

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// Counter is an int64 counter sharded per CPU: Add runs on the calling
// thread's CPU as one restartable section (no atomic instruction, no cache
// line shared with other CPUs), and Load sums the shards.
//
// Make Counters with NewCounter: the zero Counter has no shards, and its
// methods panic naming NewCounter (a zero value that works would keep Add
// from being inlined, which costs about a nanosecond per Add). A Counter takes 128 * rseq.Slots() bytes (128 bytes,
// two cache lines, per possible CPU plus one for the shared slot) and a
// small header.
//
// Consistency: every Add is counted exactly once. Load is not a snapshot:
// an Add that runs while Load sums may or may not be included, as if it
// happened after (or before) the Load. Swap and Reset hand out every Add
// exactly once: an Add is included either in the value a Swap returns or
// in what later Loads and Swaps see, never in both and never in neither.
// Arithmetic wraps around like int64 addition.
//
// Counter implements expvar.Var.
type Counter struct {
	// base is the shards' address, copied out of s so that Add loads it
	// straight from the Counter: one dependent load fewer on the hot path.
	base unsafe.Pointer
	s    *counterState
}

type counterState struct {
	base unsafe.Pointer // shard i is the int64 at base + i*line
	mem  []uint64       // keeps the shards alive
	// adj is subtracted from the sum of the shards: the shards are
	// written by restartable sections on their own CPUs, so nothing else
	// may store into them, and Swap moves this offset instead. Each
	// adjustment is a new object, so Load detects a concurrent Swap by
	// identity.
	adj atomic.Pointer[int64]
	mu  sync.Mutex // serializes Swap and Reset
}

// NewCounter returns a Counter at zero.
func NewCounter() *Counter {
	s := &counterState{}
	s.mem, s.base = words(rseq.Slots(), line)
	s.adj.Store(new(int64))
	return &Counter{base: s.base, s: s}
}

// Add adds n to the counter: one restartable section on the calling
// thread's CPU (a few nanoseconds, no atomic instruction), or the
// fallback's locked add where the thread cannot run sections. Add is small
// enough to be inlined into its caller.
func (c *Counter) Add(n int64) {
	if c.base == nil {
		panic(errZeroCounter)
	}
	rseq.AddCPU(c.base, n)
}

// errZeroCounter is what the zero Counter's Add panics with (a value, not a
// call, so that Add stays inlinable).
var errZeroCounter = errors.New("percpu: Counter used without NewCounter: the zero Counter has no shards")

// state returns the shards, or panics for the zero Counter.
func (c *Counter) state() *counterState {
	if c.s == nil {
		zeroUse("Counter", "NewCounter")
	}
	return c.s
}

// Inc adds 1 to the counter.
func (c *Counter) Inc() { c.Add(1) }

// sum adds up the shards.
func (s *counterState) sum() int64 {
	var t int64
	for i := 0; i < rseq.Slots(); i++ {
		t += atomic.LoadInt64((*int64)(unsafe.Add(s.base, uintptr(i)*line)))
	}
	return t
}

// Load returns the counter's value: the sum of its shards, minus what
// Swap and Reset took out. It reads every shard once (rseq.Slots() loads
// of separate cache lines).
func (c *Counter) Load() int64 {
	s := c.state()
	for {
		a := s.adj.Load()
		t := s.sum()
		if s.adj.Load() == a {
			return t - *a
		}
		// A Swap ran meanwhile: read again.
	}
}

// Value returns the counter's value; it is Load under the name that the
// proposed sync.Counter (golang/go#80645) gives its read, so that code
// written for one moves to the other with a rename of the type. Like the
// proposal's Value it is not a snapshot (see the type's consistency rules)
// but sees every Add the calling goroutine made before it. Add, Value and
// the zero-argument Inc are the shared shape; Swap, Reset and Load are this
// package's own.
//
// Without any dependency, a Counter is exported to Prometheus by
// client_golang's own function counter:
//
//	prometheus.NewCounterFunc(opts, func() float64 { return float64(c.Value()) })
func (c *Counter) Value() int64 { return c.Load() }

// Swap sets the counter to v and returns its previous value. Adds running
// at the same time are counted once, either in the result or in the new
// value (see the type's consistency rules).
func (c *Counter) Swap(v int64) (old int64) {
	s := c.state()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := *s.adj.Load()
	t := s.sum()
	// From now on the value is sum - (t - v): v plus whatever was added
	// after each shard was read.
	adj := t - v
	s.adj.Store(&adj)
	return t - a
}

// Reset sets the counter to zero and returns its previous value.
func (c *Counter) Reset() int64 { return c.Swap(0) }

// String returns the value in decimal, so that a Counter can be published
// with expvar.Publish.
func (c *Counter) String() string { return strconv.FormatInt(c.Load(), 10) }
