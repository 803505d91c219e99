package bench

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorseq/rseq/percpu"
)

// The RWMutex benchmarks: read-locked reads of a shared value, with no
// writes (BenchmarkRWMutexRead) or one write-locked update in every 100
// operations (BenchmarkRWMutexWrite1pct), in one goroutine ("single") and
// in GOMAXPROCS goroutines ("parallel"). The peers are sync.RWMutex
// ("sync") and a sync.RWMutex per P ("sharded", ShardedRWMutex).

// guardedValue is what the locks guard.
type guardedValue struct {
	x int64
	_ [120]byte
}

// readSink keeps the reads from being optimized away.
var readSink atomic.Int64

func BenchmarkRWMutexRead(b *testing.B) {
	benchRWMutex(b, 0)
}

func BenchmarkRWMutexWrite1pct(b *testing.B) {
	benchRWMutex(b, 100)
}

// benchRWMutex runs the three implementations; every 'every'th operation
// of each goroutine is a write (none if 0).
func benchRWMutex(b *testing.B, every int) {
	isWrite := func(i int) bool { return every > 0 && i%every == every-1 }
	b.Run("single/rseq", func(b *testing.B) {
		var m percpu.RWMutex
		var v guardedValue
		var s int64
		writes := 0
		for i := 0; b.Loop(); i++ {
			if isWrite(i) {
				m.Lock()
				v.x++
				m.Unlock()
				writes++
			} else {
				m.RLock()
				s += v.x
				m.RUnlock()
			}
		}
		readSink.Add(s)
		checkWrites(b, v.x, int64(writes))
	})
	b.Run("parallel/rseq", func(b *testing.B) {
		var m percpu.RWMutex
		var v guardedValue
		var writes atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var s int64
			for i := 0; pb.Next(); i++ {
				if isWrite(i) {
					m.Lock()
					v.x++
					m.Unlock()
					writes.Add(1)
				} else {
					m.RLock()
					s += v.x
					m.RUnlock()
				}
			}
			readSink.Add(s)
		})
		checkWrites(b, v.x, writes.Load())
	})
	b.Run("single/sync", func(b *testing.B) {
		var m sync.RWMutex
		var v guardedValue
		var s int64
		writes := 0
		for i := 0; b.Loop(); i++ {
			if isWrite(i) {
				m.Lock()
				v.x++
				m.Unlock()
				writes++
			} else {
				m.RLock()
				s += v.x
				m.RUnlock()
			}
		}
		readSink.Add(s)
		checkWrites(b, v.x, int64(writes))
	})
	b.Run("parallel/sync", func(b *testing.B) {
		var m sync.RWMutex
		var v guardedValue
		var writes atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var s int64
			for i := 0; pb.Next(); i++ {
				if isWrite(i) {
					m.Lock()
					v.x++
					m.Unlock()
					writes.Add(1)
				} else {
					m.RLock()
					s += v.x
					m.RUnlock()
				}
			}
			readSink.Add(s)
		})
		checkWrites(b, v.x, writes.Load())
	})
	b.Run("single/sharded", func(b *testing.B) {
		m := NewShardedRWMutex()
		var v guardedValue
		var s int64
		writes := 0
		for i := 0; b.Loop(); i++ {
			if isWrite(i) {
				m.Lock()
				v.x++
				m.Unlock()
				writes++
			} else {
				l := m.RLock()
				s += v.x
				l.RUnlock()
			}
		}
		readSink.Add(s)
		checkWrites(b, v.x, int64(writes))
	})
	b.Run("parallel/sharded", func(b *testing.B) {
		m := NewShardedRWMutex()
		var v guardedValue
		var writes atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var s int64
			for i := 0; pb.Next(); i++ {
				if isWrite(i) {
					m.Lock()
					v.x++
					m.Unlock()
					writes.Add(1)
				} else {
					l := m.RLock()
					s += v.x
					l.RUnlock()
				}
			}
			readSink.Add(s)
		})
		checkWrites(b, v.x, writes.Load())
	})
}

// checkWrites fails the benchmark if write-locked updates were lost.
func checkWrites(b *testing.B, got, want int64) {
	if got != want {
		b.Fatalf("value %d after %d write-locked increments", got, want)
	}
}
