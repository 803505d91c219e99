package bench

import (
	"runtime"
	"sync"
)

// ShardedRWMutex is the reader/writer lock Go programs build today when
// sync.RWMutex's shared reader count becomes the bottleneck: one
// sync.RWMutex per P, padded to its own cache lines. A reader read-locks
// the shard of the P it runs on (procPin, as sync.Pool finds its P) and
// must unlock that same shard; a writer locks every shard in order.
type ShardedRWMutex struct {
	shards []rwShard
}

type rwShard struct {
	sync.RWMutex
	_ [128 - 24]byte
}

// NewShardedRWMutex returns a ShardedRWMutex with one shard per P.
func NewShardedRWMutex() *ShardedRWMutex {
	return &ShardedRWMutex{shards: make([]rwShard, runtime.GOMAXPROCS(0))}
}

// RLock read-locks the calling P's shard and returns it, for RUnlock.
func (m *ShardedRWMutex) RLock() *sync.RWMutex {
	p := procPin()
	s := &m.shards[p%len(m.shards)].RWMutex
	procUnpin()
	s.RLock()
	return s
}

// Lock locks every shard.
func (m *ShardedRWMutex) Lock() {
	for i := range m.shards {
		m.shards[i].Lock()
	}
}

// Unlock unlocks every shard.
func (m *ShardedRWMutex) Unlock() {
	for i := range m.shards {
		m.shards[i].Unlock()
	}
}
