package bench

import (
	"sync/atomic"
	"testing"

	"github.com/gorseq/rseq/internal/benchpeers"
)

// The RWMutex benchmarks: read-locked reads of a shared value, with no
// writes (BenchmarkRWMutexRead) or a write-locked update in every 100
// operations of each goroutine (BenchmarkRWMutexWrite1pct), in one
// goroutine ("single") and in GOMAXPROCS goroutines ("parallel"): rseq
// and sync.RWMutex from benchpeers, then a sync.RWMutex per P ("sharded",
// ShardedRWMutex), which only this module has.

func BenchmarkRWMutexRead(b *testing.B) {
	benchRWMutex(b, 0)
}

func BenchmarkRWMutexWrite1pct(b *testing.B) {
	benchRWMutex(b, benchpeers.Every100)
}

func benchRWMutex(b *testing.B, every int) {
	runCases(b, benchpeers.RWMutex(every))
	b.Run("single/sharded", func(b *testing.B) {
		m := NewShardedRWMutex()
		var v benchpeers.Guarded
		var s, writes int64
		for i := 0; b.Loop(); i++ {
			if benchpeers.IsWrite(i, every) {
				m.Lock()
				v.X++
				m.Unlock()
				writes++
			} else {
				l := m.RLock()
				s += v.X
				l.RUnlock()
			}
		}
		benchpeers.ReadSink.Add(s)
		benchpeers.CheckWrites(b, v.X, writes)
	})
	b.Run("parallel/sharded", func(b *testing.B) {
		m := NewShardedRWMutex()
		var v benchpeers.Guarded
		var writes atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			var s int64
			for i := 0; pb.Next(); i++ {
				if benchpeers.IsWrite(i, every) {
					m.Lock()
					v.X++
					m.Unlock()
					writes.Add(1)
				} else {
					l := m.RLock()
					s += v.X
					l.RUnlock()
				}
			}
			benchpeers.ReadSink.Add(s)
		})
		benchpeers.CheckWrites(b, v.X, writes.Load())
	})
}
