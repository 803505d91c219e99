package benchpeers

import (
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq/percpu"
)

// Guarded is what the RWMutex benchmarks' locks guard: one value on its
// own cache lines.
type Guarded struct {
	X int64
	_ [120]byte
}

// ReadSink keeps the benchmarks' reads from being optimized away.
var ReadSink atomic.Int64

// Every100 is the write frequency of the RWMutexWrite1pct group: operation
// i of each goroutine writes when IsWrite(i, Every100).
const Every100 = 100

// IsWrite reports whether operation i is a write, with one write in every
// `every` operations (none if every is 0).
func IsWrite(i, every int) bool { return every > 0 && i%every == every-1 }

// CheckWrites fails the benchmark if write-locked increments were lost.
func CheckWrites(b *testing.B, got, want int64) {
	if got != want {
		b.Fatalf("value %d after %d write-locked increments", got, want)
	}
}

// RWMutex compares percpu.RWMutex with sync.RWMutex: read-locked reads of
// a shared value, with a write-locked increment in every `every`th
// operation of each goroutine (none if every is 0). The loops are written
// out per mutex type on purpose: a generic or interface version would call
// both mutexes through a dictionary or an interface, not inlined, and
// measure the call instead of the lock.
func RWMutex(every int) []Case {
	cases := []Case{
		{"single/rseq", func(b *testing.B) {
			var m percpu.RWMutex
			var v Guarded
			var s, writes int64
			for i := 0; b.Loop(); i++ {
				if IsWrite(i, every) {
					m.Lock()
					v.X++
					m.Unlock()
					writes++
				} else {
					m.RLock()
					s += v.X
					m.RUnlock()
				}
			}
			ReadSink.Add(s)
			CheckWrites(b, v.X, writes)
		}},
		{"parallel/rseq", func(b *testing.B) {
			var m percpu.RWMutex
			var v Guarded
			var writes atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				var s int64
				for i := 0; pb.Next(); i++ {
					if IsWrite(i, every) {
						m.Lock()
						v.X++
						m.Unlock()
						writes.Add(1)
					} else {
						m.RLock()
						s += v.X
						m.RUnlock()
					}
				}
				ReadSink.Add(s)
			})
			CheckWrites(b, v.X, writes.Load())
		}},
		{"single/sync", func(b *testing.B) {
			var m sync.RWMutex
			var v Guarded
			var s, writes int64
			for i := 0; b.Loop(); i++ {
				if IsWrite(i, every) {
					m.Lock()
					v.X++
					m.Unlock()
					writes++
				} else {
					m.RLock()
					s += v.X
					m.RUnlock()
				}
			}
			ReadSink.Add(s)
			CheckWrites(b, v.X, writes)
		}},
		{"parallel/sync", func(b *testing.B) {
			var m sync.RWMutex
			var v Guarded
			var writes atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				var s int64
				for i := 0; pb.Next(); i++ {
					if IsWrite(i, every) {
						m.Lock()
						v.X++
						m.Unlock()
						writes.Add(1)
					} else {
						m.RLock()
						s += v.X
						m.RUnlock()
					}
				}
				ReadSink.Add(s)
			})
			CheckWrites(b, v.X, writes.Load())
		}},
	}
	if every == 0 {
		cases = append(cases, rwFloor()...)
	}
	return cases
}

// rwFloor is the read-only RWMutex's floor: the empty assembly calls of
// RLock's section (rseq.IncCPUIfZero) and of RUnlock's on amd64
// (rseq.AddCPU; arm64's RUnlock makes a Slot call and a store-release
// section instead), in the same loop.
func rwFloor() []Case {
	var slots [2][128]byte
	base := unsafe.Pointer(&slots[0])
	var guard uintptr
	return []Case{
		{"single/asmcall", func(b *testing.B) {
			for b.Loop() {
				if asmFloorIncCPU(base, &guard) {
					asmFloorAddCPU(base, -1)
				}
			}
		}},
		{"parallel/asmcall", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if asmFloorIncCPU(base, &guard) {
						asmFloorAddCPU(base, -1)
					}
				}
			})
		}},
	}
}
