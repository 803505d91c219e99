//go:build !amd64

package percpu

import (
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// acquireAfterRLock orders the reader's critical section after RLock's
// load of the writer word: RLock's section loads it with a plain load
// (only the count is loaded with acquire), so load it again with an
// acquire load (LDAR on arm64), which the critical section's loads cannot
// pass. Whatever it reads, the read lock is held.
func acquireAfterRLock(w *uintptr) { atomic.LoadUintptr(w) }

// runlockSection decrements the count of the CPU the thread runs on, after
// the critical section, with a store-release commit
// (rseq.StoreThenCommitRelease; STLR on arm64): rseq.Add's plain store
// could become visible to a writer before the critical section's loads
// are done. Its speculative store goes to a word of the count's padding
// that means nothing.
func runlockSection(counts unsafe.Pointer) {
	for {
		slot := rseq.ByCPU.Slot()
		c := word(counts, slot, line)
		n := atomic.LoadUintptr(c)
		scratch := (*uintptr)(unsafe.Add(unsafe.Pointer(c), 8))
		if rseq.StoreThenCommitRelease(rseq.ByCPU, slot, c, n, scratch, 0, n-1) == rseq.Committed {
			return
		}
	}
}
