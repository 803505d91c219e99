//go:build race

package percpu

import "sync/atomic"

// RLock locks m for reading; see rwmutex_norace.go. Under the race
// detector its loads of the writer word are atomic (plain ones would be
// reported), which takes RLock over the inlining budget: no matter, the
// detector's calls cost far more.
func (m *RWMutex) RLock() {
	if added := atomic.LoadUintptr(&m.writer) == slowBit; !added || atomic.AddInt32(&m.slowReaders, 1) <= rwMaxReaders {
		rlock(m, added)
	}
}

// RUnlock undoes one RLock; see rwmutex_norace.go (and RLock above).
func (m *RWMutex) RUnlock() {
	if atomic.LoadUintptr(&m.writer) != slowBit || atomic.AddInt32(&m.slowReaders, -1) < rwMaxReaders {
		runlock(m)
	}
}
