//go:build !race

package percpu

import "sync/atomic"

// RLock locks m for reading. It waits while a writer holds the lock or has
// announced itself (Lock), and must not be used for recursive read locking.
//
// RLock is inlined where it is called, as sync.RWMutex's is. In slow mode,
// while no writer is there, the read lock is one atomic addition to
// slowReaders, with no call; else RLock makes one call (rlock), in fast
// mode to one restartable section.
//
// Its cost is at the inliner's limit (79 of 80 with Go 1.26;
// TestRWMutexInlined checks that it is inlined), hence the plain load of
// the writer word: a hint, which tells whether to take the slow read lock,
// and which the count then confirms or not (see slowReaders). Under the
// race detector (rwmutex_race.go) the load is atomic.
func (m *RWMutex) RLock() {
	if added := m.writer == slowBit; !added || atomic.AddInt32(&m.slowReaders, 1) <= rwMaxReaders {
		rlock(m, added)
	}
}

// RUnlock undoes one RLock (or successful TryRLock), on whichever CPU the
// calling thread runs now.
//
// Which lock the reader holds is told by the writer word's slowBit: it is
// set only by an Unlock that found no reader counted (a fast-mode writer's,
// after it waited for them all), and cleared only under the slow write
// lock, which waits for every slow-mode reader. So it cannot change between
// a reader's RLock and its RUnlock, and a plain load reads it right. Like
// RLock, RUnlock is inlined: in slow mode, unless a writer waits, it is one
// atomic addition; else it makes one call (runlock).
func (m *RWMutex) RUnlock() {
	if m.writer != slowBit || atomic.AddInt32(&m.slowReaders, -1) < rwMaxReaders {
		runlock(m)
	}
}
