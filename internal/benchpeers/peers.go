// Package benchpeers holds the benchmarks that compare the percpu
// structures with their standard-library peers (sync/atomic, sync.Mutex,
// sync.RWMutex, sync.Pool; percpu.RWMutex with sync.RWMutex) and with empty assembly functions of the
// sections' call shapes, the floor under any Go call into a section.
//
// `rseq bench` runs them with testing.Benchmark, so an installed binary
// needs neither the source tree nor a Go toolchain; the bench module's
// tests run the same cases, next to its third-party peers.
//
// Case names are CASE/IMPLEMENTATION within a structure's group: the case
// is "single" (one goroutine) or "parallel" (b.RunParallel), and the
// implementation "rseq" is the one the others are compared with.
package benchpeers

import (
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq/percpu"
)

// Case is one benchmark.
type Case struct {
	Name string // "single/rseq"
	F    func(b *testing.B)
}

// Group is the cases of one structure.
type Group struct {
	Name  string // "Counter"
	Cases []Case
}

// Groups returns every group, in the order the bench module runs them.
func Groups() []Group {
	return []Group{{"Counter", Counter()}, {"Pool", Pool()}, {"Value", Value()},
		{"RWMutexRead", RWMutex(0)}, {"RWMutexWrite1pct", RWMutex(Every100)}}
}

// The benchmark loops call each implementation's concrete methods, with no
// interface, generic or closure call in the loop, so that what the compiler
// can inline is inlined as it would be in a real program.

// Counter compares percpu.Counter with atomic.Int64 and the empty
// assembly calls of Counter.Add's shape (rseq.AddCPU's: base and n, no
// result) and of rseq.Add's (four arguments and a result: "asmcall-add").
// "asmcall-addmem" is a call of Counter.Add's shape that adds n to the word at
// base, with no section: the least a counter's add through a call costs,
// the chain of a load, an add and a store at the same address each time
// included.
func Counter() []Case {
	var slots [2][128]byte
	base := unsafe.Pointer(&slots[0])
	return []Case{
		{"single/rseq", func(b *testing.B) {
			c := percpu.NewCounter()
			for b.Loop() {
				c.Add(1)
			}
			checkCount(b, c.Load())
		}},
		{"parallel/rseq", func(b *testing.B) {
			c := percpu.NewCounter()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Add(1)
				}
			})
			checkCount(b, c.Load())
		}},
		{"single/atomic", func(b *testing.B) {
			var c atomic.Int64
			for b.Loop() {
				c.Add(1)
			}
			checkCount(b, c.Load())
		}},
		{"parallel/atomic", func(b *testing.B) {
			var c atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Add(1)
				}
			})
			checkCount(b, c.Load())
		}},
		{"single/asmcall", func(b *testing.B) {
			for b.Loop() {
				asmFloorAddCPU(base, 1)
			}
		}},
		{"parallel/asmcall", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					asmFloorAddCPU(base, 1)
				}
			})
		}},
		{"single/asmcall-addmem", func(b *testing.B) {
			var word int64
			for b.Loop() {
				asmFloorAddMem(unsafe.Pointer(&word), 1)
			}
			checkCount(b, word)
		}},
		{"single/asmcall-add", func(b *testing.B) {
			for b.Loop() {
				asmFloor(base, 128, 4, 1)
			}
		}},
	}
}

// checkCount fails the benchmark if a counter lost or invented adds.
func checkCount(b *testing.B, got int64) {
	if got != int64(b.N) {
		b.Fatalf("counter reads %d after %d adds", got, b.N)
	}
}

// Object is what the Pool benchmarks pool.
type Object struct {
	Buf [64]byte
}

// NewObject makes an Object.
func NewObject() *Object { return new(Object) }

// Pool compares percpu.Pool with sync.Pool and the empty assembly calls of
// the shapes of Get's section and of Put's in its common case (TakeHandle,
// RestoreHandle): the least a Get+Put of two sections can cost. (A Put
// whose object's handle was reused takes ClaimHandle and PutHandle.)
func Pool() []Case {
	var array [64]byte // where a *rseq.HandleArray would point
	ha := unsafe.Pointer(&array)
	floorGetPut := func() {
		v := asmFloorTake(ha)
		asmFloorRestore(ha, v)
	}
	return []Case{
		{"single/rseq", func(b *testing.B) {
			p, err := percpu.NewPool(64, 256, NewObject)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				o := p.Get()
				o.Buf[0]++
				p.Put(o)
			}
		}},
		{"parallel/rseq", func(b *testing.B) {
			p, err := percpu.NewPool(64, 256, NewObject)
			if err != nil {
				b.Fatal(err)
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					o := p.Get()
					o.Buf[0]++
					p.Put(o)
				}
			})
		}},
		{"single/syncpool", func(b *testing.B) {
			p := &sync.Pool{New: func() any { return NewObject() }}
			for b.Loop() {
				o := p.Get().(*Object)
				o.Buf[0]++
				p.Put(o)
			}
		}},
		{"parallel/syncpool", func(b *testing.B) {
			p := &sync.Pool{New: func() any { return NewObject() }}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					o := p.Get().(*Object)
					o.Buf[0]++
					p.Put(o)
				}
			})
		}},
		{"single/asmcall", func(b *testing.B) {
			for b.Loop() {
				floorGetPut()
			}
		}},
		{"parallel/asmcall", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					floorGetPut()
				}
			})
		}},
	}
}

// Stats is the T of the Value benchmarks: a few counters updated together,
// as a histogram or an accumulator would be.
type Stats struct {
	N, Sum, Max int64
}

// Observe records v.
func (s *Stats) Observe(v int64) {
	s.N++
	s.Sum += v
	if v > s.Max {
		s.Max = v
	}
}

// MutexValue is a single T under a sync.Mutex.
type MutexValue[T any] struct {
	mu sync.Mutex
	v  T
}

// Update calls f with the value under the mutex.
func (v *MutexValue[T]) Update(f func(*T)) {
	v.mu.Lock()
	f(&v.v)
	v.mu.Unlock()
}

// RWMutexValue is a single T under a sync.RWMutex: Update takes the write
// lock, Read the read lock.
type RWMutexValue[T any] struct {
	mu sync.RWMutex
	v  T
}

// Update calls f with the value under the write lock.
func (v *RWMutexValue[T]) Update(f func(*T)) {
	v.mu.Lock()
	f(&v.v)
	v.mu.Unlock()
}

// Read calls f with the value under the read lock.
func (v *RWMutexValue[T]) Read(f func(*T)) {
	v.mu.RLock()
	f(&v.v)
	v.mu.RUnlock()
}

// Value compares percpu.Value's Update with one value under a sync.Mutex
// and under a sync.RWMutex (write lock).
func Value() []Case {
	return append([]Case{
		{"single/rseq", func(b *testing.B) {
			v := percpu.NewValue[Stats](nil)
			var i int64
			for b.Loop() {
				i++
				v.Update(func(s *Stats) { s.Observe(i) })
			}
		}},
		{"parallel/rseq", func(b *testing.B) {
			v := percpu.NewValue[Stats](nil)
			b.RunParallel(func(pb *testing.PB) {
				var i int64
				for pb.Next() {
					i++
					v.Update(func(s *Stats) { s.Observe(i) })
				}
			})
		}},
		{"single/mutex", func(b *testing.B) {
			var v MutexValue[Stats]
			var i int64
			for b.Loop() {
				i++
				v.Update(func(s *Stats) { s.Observe(i) })
			}
		}},
		{"parallel/mutex", func(b *testing.B) {
			var v MutexValue[Stats]
			b.RunParallel(func(pb *testing.PB) {
				var i int64
				for pb.Next() {
					i++
					v.Update(func(s *Stats) { s.Observe(i) })
				}
			})
		}},
		{"single/rwmutex", func(b *testing.B) {
			var v RWMutexValue[Stats]
			var i int64
			for b.Loop() {
				i++
				v.Update(func(s *Stats) { s.Observe(i) })
			}
		}},
		{"parallel/rwmutex", func(b *testing.B) {
			var v RWMutexValue[Stats]
			b.RunParallel(func(pb *testing.PB) {
				var i int64
				for pb.Next() {
					i++
					v.Update(func(s *Stats) { s.Observe(i) })
				}
			})
		}},
	}, LockFloor()...)
}

// LockFloor is the floor of the structures whose operation takes the
// calling CPU's lock with one rseq.CompareAndStoreCPU call (Value.Update,
// Histogram.Observe): an empty assembly call of that shape (four
// arguments, two results), on one goroutine and on GOMAXPROCS.
func LockFloor() []Case {
	base := unsafe.Pointer(&make([]uintptr, 2)[0])
	return []Case{
		{"single/asmcall", func(b *testing.B) {
			for b.Loop() {
				asmFloorLockCPU(base, 128, 0, 1)
			}
		}},
		{"parallel/asmcall", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					asmFloorLockCPU(base, 128, 0, 1)
				}
			})
		}},
	}
}
