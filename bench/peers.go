// Package bench compares the per-CPU structures of
// github.com/gorseq/rseq/percpu with what Go programs use today. It is a
// separate module so that the library's users do not inherit its
// dependencies. Run it with
//
//	go test -run='^$' -bench=. -count=6 ./...
//
// or with `rseq bench`, which prints a table of medians and ratios.
//
// Benchmark names are Benchmark<Structure>/<case>/<implementation>: the
// case is "single" (one goroutine) or "parallel" (b.RunParallel, GOMAXPROCS
// goroutines on one shared structure), and the implementation "rseq" is
// the percpu one that the others are compared with.
//
// The standard library's peers (atomic, sync.Mutex, sync.RWMutex,
// sync.Pool) and the empty assembly calls are in
// github.com/gorseq/rseq/internal/benchpeers, which `rseq bench` also runs
// without the source tree. This file holds the peers that are not
// libraries: a counter and a value sharded per P with runtime.procPin (what
// sync.Pool does inside), and a channel-based pool.
package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
	_ "unsafe" // for go:linkname
)

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// PinCounter is an int64 counter sharded per P: Add pins the goroutine to
// its P and adds atomically to that P's padded shard (atomically, because
// Load reads the shards from other Ps).
type PinCounter struct {
	shards []pinShard
}

type pinShard struct {
	v atomic.Int64
	_ [120]byte
}

// NewPinCounter returns a PinCounter with one shard per P.
func NewPinCounter() *PinCounter {
	return &PinCounter{shards: make([]pinShard, runtime.GOMAXPROCS(0))}
}

// Add adds n to the calling P's shard.
func (c *PinCounter) Add(n int64) {
	p := procPin()
	c.shards[p%len(c.shards)].v.Add(n)
	procUnpin()
}

// Load sums the shards.
func (c *PinCounter) Load() int64 {
	var t int64
	for i := range c.shards {
		t += c.shards[i].v.Load()
	}
	return t
}

// PinValue is a T sharded per P, each shard under its own mutex (taken
// uncontended by the P's goroutine, and by readers).
type PinValue[T any] struct {
	shards []pinValueShard[T]
}

type pinValueShard[T any] struct {
	mu sync.Mutex
	v  T
	_  [128]byte
}

// NewPinValue returns a PinValue with one shard per P.
func NewPinValue[T any]() *PinValue[T] {
	return &PinValue[T]{shards: make([]pinValueShard[T], runtime.GOMAXPROCS(0))}
}

// Update calls f with the calling P's shard, under its lock.
func (v *PinValue[T]) Update(f func(*T)) {
	p := procPin()
	s := &v.shards[p%len(v.shards)]
	procUnpin() // the shard's mutex protects it from here on
	s.mu.Lock()
	f(&s.v)
	s.mu.Unlock()
}

// Range calls f with every shard under its lock.
func (v *PinValue[T]) Range(f func(*T)) {
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		f(&s.v)
		s.mu.Unlock()
	}
}

// ChanPool is a pool of objects in a buffered channel.
type ChanPool[T any] struct {
	c   chan *T
	new func() *T
}

// NewChanPool returns a ChanPool holding up to size free objects.
func NewChanPool[T any](size int, newFn func() *T) *ChanPool[T] {
	return &ChanPool[T]{c: make(chan *T, size), new: newFn}
}

// Get takes a free object or makes one.
func (p *ChanPool[T]) Get() *T {
	select {
	case x := <-p.c:
		return x
	default:
		return p.new()
	}
}

// Put keeps x if there is room.
func (p *ChanPool[T]) Put(x *T) {
	select {
	case p.c <- x:
	default:
	}
}
