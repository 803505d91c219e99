package rseq

import (
	"fmt"
	"unsafe"
)

// An Array is a per-CPU array bound to the one Index that numbers its
// slots: Slots() slots of Stride bytes from Base. The package-level
// operations take base, stride and index on every call, and an array used
// with ByCPU in one place and ByConcurrencyID in another loses updates
// (two threads own slot k at once: see Index). An Array's methods cannot
// mix them: the index is fixed when the Array is made.
//
// Handle arrays have their own type, HandleArray, which binds the table
// and capacity as well.
//
// An Array is a small value; copy it freely. Its methods cost what the
// package-level operations cost (they are inlined to those calls). The
// zero Array is not usable: its methods panic, naming NewArray.
type Array struct {
	base   unsafe.Pointer
	stride uintptr
	ix     Index
}

// NewArray binds base, stride and ix. base must point to Slots()*stride
// bytes that the Go garbage collector does not move (memory from mmap, or
// a Go allocation kept alive and never holding Go pointers the sections
// write); stride must be a positive multiple of 8. It panics otherwise.
func NewArray(base unsafe.Pointer, stride uintptr, ix Index) Array {
	switch {
	case base == nil:
		panic("rseq.NewArray: nil base")
	case stride == 0 || stride%8 != 0:
		panic(fmt.Sprintf("rseq.NewArray: stride %d is not a positive multiple of 8", stride))
	case ix != ByCPU && ix != ByConcurrencyID:
		panic(fmt.Sprintf("rseq.NewArray: unknown Index %d", ix))
	}
	return Array{base: base, stride: stride, ix: ix}
}

// Base returns the address of slot 0.
func (a Array) Base() unsafe.Pointer { return a.base }

// Stride returns the distance in bytes between slots.
func (a Array) Stride() uintptr { return a.stride }

// Index returns the Index that numbers the slots.
func (a Array) Index() Index { return a.ix }

// Slot returns the slot of the calling thread: a.Index().Slot().
func (a Array) Slot() int { return a.ix.Slot() }

// Word returns the word at byte offset off of slot. It panics if slot is
// not in [0, Slots()) or off+8 exceeds the stride.
func (a Array) Word(slot int, off uintptr) *uintptr {
	a.check()
	if slot < 0 || slot >= Slots() || off+8 > a.stride || off%8 != 0 {
		panic(fmt.Sprintf("rseq.Array.Word: slot %d, offset %d outside %d slots of %d bytes", slot, off, Slots(), a.stride))
	}
	return (*uintptr)(unsafe.Add(a.base, uintptr(slot)*a.stride+off))
}

func (a Array) check() {
	if a.base == nil {
		panic("rseq: use of a zero Array; make one with NewArray")
	}
}

// Add is the package-level Add on a.
func (a Array) Add(n int64) (slot int) {
	a.check()
	return Add(a.base, a.stride, a.ix, n)
}

// AddIndirect is the package-level AddIndirect on a.
func (a Array) AddIndirect(off uintptr, n int64) (slot int) {
	a.check()
	return AddIndirect(a.base, a.stride, a.ix, off, n)
}

// Pop is the package-level Pop on a.
func (a Array) Pop(empty, nextOff uintptr) (slot int, head uintptr, ok bool) {
	a.check()
	return Pop(a.base, a.stride, a.ix, empty, nextOff)
}

// CompareAndStore is the package-level CompareAndStore on the word at
// offset off of slot (from a.Slot()).
func (a Array) CompareAndStore(slot int, off uintptr, expect, new uintptr) Status {
	return CompareAndStore(a.ix, slot, a.Word(slot, off), expect, new)
}

// CompareBothAndStore is the package-level CompareBothAndStore, with the
// commit word at offset off of slot.
func (a Array) CompareBothAndStore(slot int, off uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status {
	return CompareBothAndStore(a.ix, slot, a.Word(slot, off), expect, v2, expect2, new)
}

// StoreThenCommit is the package-level StoreThenCommit, with the commit
// word at offset off of slot.
func (a Array) StoreThenCommit(slot int, off uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status {
	return StoreThenCommit(a.ix, slot, a.Word(slot, off), expect, v2, new2, new)
}

// CopyThenCommit is the package-level CopyThenCommit, with the commit word
// at offset off of slot.
func (a Array) CopyThenCommit(slot int, off uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status {
	return CopyThenCommit(a.ix, slot, a.Word(slot, off), expect, dst, src, n, new)
}

// CompareAndStoreRemote is the package-level CompareAndStoreRemote on the
// word at offset off of slot. Call a.Fence(slot) afterwards, then read the
// word again (see CompareAndStoreRemote).
func (a Array) CompareAndStoreRemote(slot int, off uintptr, expect, new uintptr) bool {
	return CompareAndStoreRemote(a.Word(slot, off), expect, new)
}

// Fence waits until no section that may update slot runs past the instant
// of the call, whatever the array's Index: under ByCPU it fences the slot's
// CPU (Fence); under ByConcurrencyID, whose slot k is owned by whichever
// CPU the thread holding concurrency id k runs on, every CPU (FenceAll).
// The shared slot needs no fence: only the fallback, under its locks,
// writes it.
func (a Array) Fence(slot int) error {
	a.check()
	switch {
	case slot < 0 || slot >= Slots():
		return fmt.Errorf("rseq: Array.Fence: slot %d outside [0, %d)", slot, Slots())
	case slot == SharedSlot():
		return nil
	case a.ix == ByCPU:
		return Fence(slot)
	}
	return FenceAll()
}
