package rseq

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Handle arrays.
//
// TakeHandle, ClaimHandle and PutHandle move handles (small integers that
// name the entries of a table the caller owns) between the per-CPU slots of
// a handle array, each as one restartable section with one commit store.
// They are what an object pool needs when its objects are Go pointers: the
// sections only move handles, the table of pointers is written by Go code
// (with the GC's write barriers) by the one goroutine that owns a handle,
// and read inside the section that gives the handle up.
//
// Slot s of a handle array starts at base + s*stride, 8-byte aligned, and
// holds a header word followed by the handles, capacity uint32s:
//
//	header (uint64):  f | e<<32
//	h[0:f]            full handles: their table entries hold values
//	h[f:e]            holes: room for handles that are out of this slot
//	h[e:capacity]     free handles: their table entries mean nothing
//
// A handle is in exactly one place: a slot's full or free part, or the
// hands of the goroutine that claimed it. Set slots up before sharing the
// array (full and free handles, headers) with plain stores; afterwards
// change them only through these operations. The table is an array of Go
// pointers (a []*T, say) with an entry for every handle: TakeHandle trusts
// the handles it finds and reads table[h] without a bounds check. The
// operations never write the table.
//
//   - TakeHandle moves the last full handle to the free part and returns it
//     with table[h] as it was while the handle was full: once the section
//     commits, another goroutine may claim h and overwrite table[h].
//   - ClaimHandle takes the first free handle out of the slot, leaving a
//     hole; the caller then owns table[h].
//   - PutHandle adds a handle the caller owns to the full part of the slot
//     it runs on, if that slot has a hole.
//
// Handles move between slots: a goroutine may claim on one CPU and put on
// another. A slot holds at most capacity handles, so a PutHandle can fail
// on a slot that has every handle it has room for; the caller keeps the
// handle then.

func handleAt(handles unsafe.Pointer, i uint64) *uint32 {
	return (*uint32)(unsafe.Add(handles, uintptr(i)*4))
}

// The fallbacks have the signatures of the operations, which jump to them
// when the thread has no usable area. Each runs under the lock of the
// slot's header word, the commit word of all three operations.

// lockHandleSlot counts a fallback of section sec, and returns the slot a
// thread without an area uses, its header and handles, and its lock, held.
func lockHandleSlot(sec int, base unsafe.Pointer, stride uintptr, ix Index) (slot int, hdr *uint64, hs unsafe.Pointer, mu *sync.Mutex) {
	countFallback(sec)
	slot = fallbackSlot(ix.field())
	p := slotWord(base, stride, slot)
	hdr, hs = (*uint64)(p), unsafe.Add(p, 8)
	mu = fallbackLock(uintptr(p))
	mu.Lock()
	return slot, hdr, hs, mu
}

func takeHandleFallback(base unsafe.Pointer, stride uintptr, ix Index, table unsafe.Pointer) (slot int, h uint32, v unsafe.Pointer, ok bool) {
	if retryWithSection() {
		return TakeHandle(base, stride, ix, table)
	}
	slot, hdr, hs, mu := lockHandleSlot(secTakeHandle, base, stride, ix)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	f, e := w&0xffffffff, w>>32
	if f == 0 {
		return slot, 0, nil, false
	}
	h = atomic.LoadUint32(handleAt(hs, f-1))
	v = atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(table, uintptr(h)*8)))
	atomic.StoreUint32(handleAt(hs, e-1), h)
	atomic.StoreUint64(hdr, (f-1)|(e-1)<<32)
	return slot, h, v, true
}

func claimHandleFallback(base unsafe.Pointer, stride uintptr, ix Index, capacity uint32) (slot int, h uint32, ok bool) {
	if retryWithSection() {
		return ClaimHandle(base, stride, ix, capacity)
	}
	slot, hdr, hs, mu := lockHandleSlot(secClaimHandle, base, stride, ix)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	e := w >> 32
	if e >= uint64(capacity) {
		return slot, 0, false
	}
	h = atomic.LoadUint32(handleAt(hs, e))
	atomic.StoreUint64(hdr, w+1<<32)
	return slot, h, true
}

func putHandleFallback(base unsafe.Pointer, stride uintptr, ix Index, h uint32) (slot int, ok bool) {
	if retryWithSection() {
		return PutHandle(base, stride, ix, h)
	}
	slot, hdr, hs, mu := lockHandleSlot(secPutHandle, base, stride, ix)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	f, e := w&0xffffffff, w>>32
	if f == e {
		return slot, false
	}
	atomic.StoreUint32(handleAt(hs, f), h)
	atomic.StoreUint64(hdr, w+1)
	return slot, true
}

func restoreHandleFallback(base unsafe.Pointer, stride uintptr, ix Index, table, v unsafe.Pointer, capacity uint32) (ok bool) {
	if retryWithSection() {
		return RestoreHandle(base, stride, ix, table, v, capacity)
	}
	_, hdr, hs, mu := lockHandleSlot(secRestoreHandle, base, stride, ix)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	f, e := w&0xffffffff, w>>32
	if e >= uint64(capacity) {
		return false
	}
	h := atomic.LoadUint32(handleAt(hs, e))
	if atomic.LoadPointer((*unsafe.Pointer)(unsafe.Add(table, uintptr(h)*8))) != v {
		return false
	}
	atomic.StoreUint32(handleAt(hs, f), h)
	atomic.StoreUint64(hdr, w+1+1<<32)
	return true
}
