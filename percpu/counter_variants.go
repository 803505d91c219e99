package percpu

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// Uint64Counter is Counter for uint64 values: the same shards and the same
// single restartable section per Add, with unsigned wrap-around arithmetic.
// Make it with NewUint64Counter. It implements expvar.Var.
type Uint64Counter struct {
	c *Counter
}

// NewUint64Counter returns a Uint64Counter at zero.
func NewUint64Counter() *Uint64Counter { return &Uint64Counter{c: NewCounter()} }

// Add adds n, wrapping around at 2^64.
func (u *Uint64Counter) Add(n uint64) { u.c.Add(int64(n)) }

// Load returns the sum of the adds since the last Swap, modulo 2^64.
func (u *Uint64Counter) Load() uint64 { return uint64(u.counter().Load()) }

// Swap sets the counter to v and returns its previous value, with Counter's
// consistency.
func (u *Uint64Counter) Swap(v uint64) uint64 { return uint64(u.counter().Swap(int64(v))) }

// counter returns the Counter behind u, or panics for the zero
// Uint64Counter (whose Add panics with a nil dereference, to stay inlinable).
func (u *Uint64Counter) counter() *Counter {
	if u.c == nil {
		zeroUse("Uint64Counter", "NewUint64Counter")
	}
	return u.c
}

// String returns the value in decimal (expvar.Var).
func (u *Uint64Counter) String() string { return strconv.FormatUint(u.Load(), 10) }

// Float64Counter is a float64 sum sharded per CPU, for accumulating
// durations, sizes or weights. Each shard holds the bits of a float64; Add
// is one restartable section (rseq.AddFloat64CPU) that reads the calling
// CPU's shard, adds and stores the sum: no atomic instruction, no retry
// loop. Make it with NewFloat64Counter. It implements
// expvar.Var. Memory: 128 * rseq.Slots() bytes.
//
// Consistency: as Counter's, except that floating-point addition is not
// associative: Load adds the shards in slot order, so its result can differ
// in the last bits from adding the same values in the order they happened.
// Integer-valued adds are exact while the magnitudes stay below 2^53.
type Float64Counter struct {
	base unsafe.Pointer // shard i is the float64 bits at base + i*line
	mem  []uint64       // keeps the shards alive
	adj  atomic.Uint64  // bits of the float64 that Swap subtracted
	mu   sync.Mutex     // serializes Swap
}

// NewFloat64Counter returns a Float64Counter at zero.
func NewFloat64Counter() *Float64Counter {
	f := &Float64Counter{}
	f.mem, f.base = words(rseq.Slots(), line)
	return f
}

// Add adds x to the calling CPU's shard.
func (f *Float64Counter) Add(x float64) {
	if f.base == nil {
		panic(errZeroFloat64Counter)
	}
	rseq.AddFloat64CPU(f.base, x)
}

// errZeroFloat64Counter is what the zero Float64Counter's Add panics with.
var errZeroFloat64Counter = errors.New("percpu: Float64Counter used without NewFloat64Counter: the zero Float64Counter has no shards")

// check panics for the zero Float64Counter, whose shard addresses would be
// small numbers rather than memory.
func (f *Float64Counter) check() {
	if f.base == nil {
		zeroUse("Float64Counter", "NewFloat64Counter")
	}
}

func (f *Float64Counter) sum() float64 {
	f.check()
	var t float64
	for i := 0; i < rseq.Slots(); i++ {
		t += math.Float64frombits(uint64(atomic.LoadUintptr(word(f.base, i, line))))
	}
	return t
}

// Load returns the sum of the shards minus what Swap took out.
func (f *Float64Counter) Load() float64 {
	for {
		a := f.adj.Load()
		t := f.sum()
		if f.adj.Load() == a {
			return t - math.Float64frombits(a)
		}
	}
}

// Swap sets the counter to v and returns its previous value; adds running
// meanwhile are counted once, in the result or in the new value.
func (f *Float64Counter) Swap(v float64) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := math.Float64frombits(f.adj.Load())
	t := f.sum()
	f.adj.Store(math.Float64bits(t - v))
	return t - a
}

// String returns the value formatted like expvar.Float (expvar.Var).
func (f *Float64Counter) String() string { return strconv.FormatFloat(f.Load(), 'g', -1, 64) }
