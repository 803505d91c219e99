package rseq

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Handle arrays.
//
// TakeHandle, ClaimHandle, PutHandle and RestoreHandle move handles (small
// integers that name the entries of a table the caller owns) between the
// per-CPU slots of a handle array, each as one restartable section with one
// commit store. They are what an object pool needs when its objects are Go
// pointers: the sections only move handles, the table of pointers is
// written by Go code (with the GC's write barriers) by the one goroutine
// that owns a handle, and read inside the section that gives the handle up.
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
//   - TakeHandle moves the last full handle to the free part and returns
//     table[h] as it was while the handle was full: once the section
//     commits, another goroutine may claim h and overwrite table[h].
//   - ClaimHandle takes the first free handle out of the slot, leaving a
//     hole; the caller then owns table[h].
//   - PutHandle adds a handle the caller owns to the full part of the slot
//     it runs on, if that slot has a hole.
//   - RestoreHandle makes the first free handle full again if its entry
//     still holds the value given: the Put of the object the last Get
//     returned, on the same CPU, without a table write.
//
// Handles move between slots: a goroutine may claim on one CPU and put on
// another. A slot holds at most capacity handles, so a PutHandle can fail
// on a slot that has every handle it has room for; the caller keeps the
// handle then.
//
// The operations take the array as a *HandleArray, which holds base,
// stride, index, table and capacity: one argument, read by the section's
// set-up from one cache line, where five arguments would each be stored by
// the caller and loaded by the section (a pool's Get+Put went from 13.0 to
// 11.4 ns on an AMD Zen 3 host with that change).

// A HandleArray describes a handle array: its slots (base, stride, the
// Index that numbers them), the table its handles name, and the number of
// handles a slot holds. Make it with NewHandleArray; it is a small value,
// and the operations take its address.
//
// The zero HandleArray is an array with nothing in it: TakeHandle returns
// nil, RestoreHandle false, ClaimHandle and PutHandle ok = false (the
// sections send it to their fallbacks, which say so without touching
// memory). A structure that sets itself up on first use can run the
// operations on its zero HandleArray, take its slow path when they find
// nothing, and set the array up there with Publish.
type HandleArray struct {
	// The sections read these fields (handlearray.h gives their offsets).
	base     unsafe.Pointer
	stride   uintptr
	table    unsafe.Pointer
	capacity uint32
	ix       Index
}

// NewHandleArray binds a handle array: Slots() slots of stride bytes from
// base, numbered by ix, each a header word and capacity handles (see
// above), whose handles name the entries of table (the address of the
// first of an array of pointers, &t[0] of a []*T). base must point to
// memory the garbage collector does not move and that holds no Go pointers
// (a pointer-free Go allocation kept alive, or memory from mmap). It panics
// if base or table is nil, capacity is 0, stride is not a multiple of 8 or
// too small for capacity handles, or ix is not an Index.
func NewHandleArray(base unsafe.Pointer, stride uintptr, ix Index, table unsafe.Pointer, capacity uint32) HandleArray {
	switch {
	case base == nil:
		panic("rseq.NewHandleArray: nil base")
	case table == nil:
		panic("rseq.NewHandleArray: nil table")
	case capacity == 0:
		panic("rseq.NewHandleArray: capacity 0")
	case stride%8 != 0 || stride < 8+uintptr(capacity)*4:
		panic(fmt.Sprintf("rseq.NewHandleArray: stride %d is not a multiple of 8 of at least 8+4*%d bytes", stride, capacity))
	case ix != ByCPU && ix != ByConcurrencyID:
		panic(fmt.Sprintf("rseq.NewHandleArray: unknown Index %d", ix))
	}
	return HandleArray{base: base, stride: stride, table: table, capacity: capacity, ix: ix}
}

// Base returns the address of slot 0.
func (a *HandleArray) Base() unsafe.Pointer { return atomic.LoadPointer(&a.base) }

// Stride returns the distance in bytes between slots.
func (a *HandleArray) Stride() uintptr { return a.stride }

// Index returns the Index that numbers the slots.
func (a *HandleArray) Index() Index { return a.ix }

// Table returns the address of the table's first entry.
func (a *HandleArray) Table() unsafe.Pointer { return a.table }

// Capacity returns the number of handles a slot holds.
func (a *HandleArray) Capacity() uint32 { return a.capacity }

// Header returns the header word of slot (f | e<<32), which readers load
// atomically. It panics if slot is not in [0, Slots()).
func (a *HandleArray) Header(slot int) *uint64 {
	a.check()
	if slot < 0 || slot >= Slots() {
		panic(fmt.Sprintf("rseq.HandleArray.Header: slot %d outside %d slots", slot, Slots()))
	}
	return (*uint64)(slotWord(a.base, a.stride, slot))
}

// Publish sets the zero HandleArray *a to b while handle operations may
// run on *a in other goroutines: they find the zero array's nothing until
// they see all of b. b's base is stored last, with a release store, and the
// operations load base first, with an acquire load (on amd64 every load
// is one), so they never see some of b's fields and not others. Call it
// once, under a lock that orders it with other callers; it panics if *a is
// not the zero HandleArray or b is.
func (a *HandleArray) Publish(b HandleArray) {
	if atomic.LoadPointer(&a.base) != nil || a.stride != 0 {
		panic("rseq.HandleArray.Publish: the array is set up already")
	}
	if b.base == nil {
		panic("rseq.HandleArray.Publish: the zero HandleArray; make one with NewHandleArray")
	}
	a.stride, a.table, a.capacity, a.ix = b.stride, b.table, b.capacity, b.ix
	atomic.StorePointer(&a.base, b.base)
}

// check panics on the zero HandleArray, for Header.
func (a *HandleArray) check() {
	if atomic.LoadPointer(&a.base) == nil {
		panic("rseq: HandleArray.Header on the zero HandleArray, which has no slots; make one with NewHandleArray")
	}
}

func handleAt(handles unsafe.Pointer, i uint64) *uint32 {
	return (*uint32)(unsafe.Add(handles, uintptr(i)*4))
}

// The fallbacks have the signatures of the operations, which jump to them
// when the thread has no usable area, or the HandleArray is the zero one
// (whose operations find nothing: empty reports that). Each runs under the
// lock of the slot's header word, the commit word of all four operations.

// empty reports whether a is the zero HandleArray: an acquire load of
// base, before which the operations read no other field (see Publish).
func (a *HandleArray) empty() bool { return atomic.LoadPointer(&a.base) == nil }

// lockHandleSlot counts a fallback of section sec, and returns the slot a
// thread without an area uses, its header and handles, and its lock, held.
func lockHandleSlot(sec int, a *HandleArray) (slot int, hdr *uint64, hs unsafe.Pointer, mu *sync.Mutex) {
	countFallback(sec)
	slot = fallbackSlot(a.ix.field())
	p := slotWord(a.base, a.stride, slot)
	hdr, hs = (*uint64)(p), unsafe.Add(p, 8)
	mu = fallbackLock(uintptr(p))
	mu.Lock()
	return slot, hdr, hs, mu
}

// tableEntry returns the address of table[h].
func (a *HandleArray) tableEntry(h uint32) *unsafe.Pointer {
	return (*unsafe.Pointer)(unsafe.Add(a.table, uintptr(h)*8))
}

func takeHandleFallback(a *HandleArray) (v unsafe.Pointer) {
	if a.empty() {
		return nil
	}
	if retryWithSection() {
		return TakeHandle(a)
	}
	_, hdr, hs, mu := lockHandleSlot(secTakeHandle, a)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	f, e := w&0xffffffff, w>>32
	if f == 0 {
		return nil
	}
	h := atomic.LoadUint32(handleAt(hs, f-1))
	v = atomic.LoadPointer(a.tableEntry(h))
	atomic.StoreUint32(handleAt(hs, e-1), h)
	atomic.StoreUint64(hdr, (f-1)|(e-1)<<32)
	return v
}

func claimHandleFallback(a *HandleArray) (slot int, h uint32, ok bool) {
	if a.empty() {
		return 0, 0, false
	}
	if retryWithSection() {
		return ClaimHandle(a)
	}
	slot, hdr, hs, mu := lockHandleSlot(secClaimHandle, a)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	e := w >> 32
	if e >= uint64(a.capacity) {
		return slot, 0, false
	}
	h = atomic.LoadUint32(handleAt(hs, e))
	atomic.StoreUint64(hdr, w+1<<32)
	return slot, h, true
}

func putHandleFallback(a *HandleArray, h uint32) (slot int, ok bool) {
	if a.empty() {
		return 0, false
	}
	if retryWithSection() {
		return PutHandle(a, h)
	}
	slot, hdr, hs, mu := lockHandleSlot(secPutHandle, a)
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

func restoreHandleFallback(a *HandleArray, v unsafe.Pointer) (ok bool) {
	if a.empty() {
		return false
	}
	if retryWithSection() {
		return RestoreHandle(a, v)
	}
	_, hdr, hs, mu := lockHandleSlot(secRestoreHandle, a)
	defer mu.Unlock()
	w := atomic.LoadUint64(hdr)
	f, e := w&0xffffffff, w>>32
	if e >= uint64(a.capacity) {
		return false
	}
	h := atomic.LoadUint32(handleAt(hs, e))
	if atomic.LoadPointer(a.tableEntry(h)) != v {
		return false
	}
	atomic.StoreUint32(handleAt(hs, f), h)
	atomic.StoreUint64(hdr, w+1+1<<32)
	return true
}
