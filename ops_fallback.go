package rseq

import (
	"sync/atomic"
	"unsafe"
)

// The fallback of each operation has the signature of its section, so that
// the assembly can jump to it when the calling thread has no usable area.
// Each first gives a thread that is merely not registered yet the chance to
// register and run the section after all.

// retryWithSection registers the calling thread where the package registers
// its own areas and reports whether the section should be tried again.
func retryWithSection() bool {
	return opsMode == areaModeOwn && currentArea() == 0 && ensureArea() != 0
}

// fallbackSlot is the slot a thread without a usable area operates on.
func fallbackSlot(field uintptr) int {
	if opsMode != areaModeNone {
		return possibleCPUs
	}
	id := CPU()
	if field == offMMCID {
		id = ConcurrencyID()
	}
	if id >= possibleCPUs { // only where no bound was known (readPossibleCPUs)
		id = 0
	}
	return id
}

// mayUseSlot reports whether a thread without an area may update slot: any
// slot when no thread runs sections, only the shared slot otherwise.
func mayUseSlot(slot int) bool {
	return opsMode == areaModeNone || slot == possibleCPUs
}

func slotWord(base unsafe.Pointer, stride uintptr, slot int) unsafe.Pointer {
	return unsafe.Add(base, uintptr(slot)*stride)
}

// addrToPointer turns a word that holds an address (a list node) into a
// pointer; the package's rules make the caller keep that memory alive.
func addrToPointer(a uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a))
}

func addFallback(base unsafe.Pointer, stride, field uintptr, n int64) (slot int) {
	if retryWithSection() {
		return addSection(base, stride, field, n)
	}
	countFallback(secAdd)
	slot = fallbackSlot(field)
	p := slotWord(base, stride, slot)
	mu := fallbackLock(uintptr(p))
	mu.Lock()
	atomic.AddInt64((*int64)(p), n)
	mu.Unlock()
	return slot
}

func addIndirectFallback(base unsafe.Pointer, stride, field, off uintptr, n int64) (slot int) {
	if retryWithSection() {
		return addIndirectSection(base, stride, field, off, n)
	}
	countFallback(secAddIndirect)
	slot = fallbackSlot(field)
	p := slotWord(base, stride, slot)
	mu := fallbackLock(uintptr(p))
	mu.Lock()
	target := unsafe.Add(addrToPointer(atomic.LoadUintptr((*uintptr)(p))), off)
	atomic.AddInt64((*int64)(target), n)
	mu.Unlock()
	return slot
}

func popFallback(base unsafe.Pointer, stride, field, empty, nextOff uintptr) (slot int, head uintptr, ok bool) {
	if retryWithSection() {
		return popSection(base, stride, field, empty, nextOff)
	}
	countFallback(secPop)
	slot = fallbackSlot(field)
	v := (*uintptr)(slotWord(base, stride, slot))
	mu := fallbackLock(uintptr(unsafe.Pointer(v)))
	mu.Lock()
	head = atomic.LoadUintptr(v)
	if head != empty {
		next := atomic.LoadUintptr((*uintptr)(unsafe.Add(addrToPointer(head), nextOff)))
		atomic.StoreUintptr(v, next)
		ok = true
	}
	mu.Unlock()
	if !ok {
		head = 0
	}
	return slot, head, ok
}

// commitUnderLock is the fallback of every compare-then-commit operation:
// under the lock of the commit word v, check that *v == expect and that
// more (if any) holds, make the speculative stores (if any), then store new.
func commitUnderLock(sec, slot int, v *uintptr, expect uintptr, more func() bool, spec func(), new uintptr) Status {
	countFallback(sec)
	if !mayUseSlot(slot) {
		return Moved
	}
	mu := fallbackLock(uintptr(unsafe.Pointer(v)))
	mu.Lock()
	defer mu.Unlock()
	if atomic.LoadUintptr(v) != expect || (more != nil && !more()) {
		return CompareFailed
	}
	if spec != nil {
		spec()
	}
	atomic.StoreUintptr(v, new)
	return Committed
}

func cmpStoreFallback(field uintptr, slot int, v *uintptr, expect, new uintptr) Status {
	if retryWithSection() {
		return cmpStoreSection(field, slot, v, expect, new)
	}
	return commitUnderLock(secCmpStore, slot, v, expect, nil, nil, new)
}

func cmp2StoreFallback(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status {
	if retryWithSection() {
		return cmp2StoreSection(field, slot, v, expect, v2, expect2, new)
	}
	return commitUnderLock(secCmp2Store, slot, v, expect, func() bool { return atomic.LoadUintptr(v2) == expect2 }, nil, new)
}

func storeCommitFallback(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status {
	if retryWithSection() {
		return storeCommitSection(field, slot, v, expect, v2, new2, new)
	}
	return commitUnderLock(secStoreCommit, slot, v, expect, nil, func() { atomic.StoreUintptr(v2, new2) }, new)
}

func copyCommitFallback(field uintptr, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status {
	if retryWithSection() {
		return copyCommitSection(field, slot, v, expect, dst, src, n, new)
	}
	return commitUnderLock(secCopyCommit, slot, v, expect, nil, func() {
		if n > 0 {
			copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(src), n))
		}
	}, new)
}

// Per-section counts of fallbacks (Go) and aborts (incremented by the
// sections' abort handlers in assembly).
var (
	fallbackCounts [numSections]atomic.Uint64
	abortCounts    [numSections]uint64
)

func countFallback(sec int) { fallbackCounts[sec].Add(1) }

// SectionStats counts what happened to one restartable section.
type SectionStats struct {
	// Name is the section's name, as in Sections.
	Name string
	// Aborts counts the times the kernel (or a tool acting like it)
	// aborted the section and its abort handler restarted it.
	Aborts uint64
	// Fallbacks counts the operations that ran without the section, on a
	// thread without an area or in a process without sections.
	Fallbacks uint64
}

// Stats returns the abort and fallback counts of every section since the
// process started. Completions are not counted: that would cost a store in
// every operation.
func Stats() []SectionStats {
	s := make([]SectionStats, numSections)
	for i := range s {
		s[i] = SectionStats{
			Name:      sectionNames[i],
			Aborts:    atomic.LoadUint64(&abortCounts[i]),
			Fallbacks: fallbackCounts[i].Load(),
		}
	}
	return s
}
