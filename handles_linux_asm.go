//go:build linux && (amd64 || arm64)

package rseq

import "unsafe"

// The offsets handlearray.h gives the assembly: each line fails to compile
// (an array of the wrong length) if the field moved.
var (
	_ [0]struct{}  = [unsafe.Offsetof(HandleArray{}.base)]struct{}{}
	_ [8]struct{}  = [unsafe.Offsetof(HandleArray{}.stride)]struct{}{}
	_ [16]struct{} = [unsafe.Offsetof(HandleArray{}.table)]struct{}{}
	_ [24]struct{} = [unsafe.Offsetof(HandleArray{}.capacity)]struct{}{}
	_ [28]struct{} = [unsafe.Offsetof(HandleArray{}.ix)]struct{}{}
)

// The handle operations take a *HandleArray; on the zero one they find
// nothing (TakeHandle nil, the others false): their assembly sends a nil
// base to the fallback, which says so.
//
// The handle operations are declared here without a body: each is its
// restartable section in ops_linux_GOARCH.s, called directly, which saves the
// Go wrapper call the other operations inline away (these have too many
// results to be inlined).

// TakeHandle, on the calling thread's slot of a handle array (see
// handles.go for the layout):
//
//	slot = index of the calling thread
//	if f == 0 { return nil }
//	h = h[f-1]; v = table[h]
//	h[e-1] = h; f, e = f-1, e-1   // one commit store of the header
//	return v
//
// It gives the handle up: table[h] belongs to whoever claims h next, which
// is why the section itself reads it. v is the entry as a pointer, nil if
// the slot has no full handle: a full handle's entry must not be nil (a
// pool's objects are not), or that nil reads as an empty slot and the
// handle is lost to the caller. (Not go:noescape: v comes out of the
// table, so the compiler must treat the table, and what it points to, as
// escaping.)
func TakeHandle(a *HandleArray) (v unsafe.Pointer)

// ClaimHandle, on the calling thread's slot of a handle array:
//
//	slot = index of the calling thread
//	if e >= capacity { return ok = false }
//	h = h[e]; e = e+1             // commit: the header
//
// The caller owns h, and its table entry, until it puts it in a slot.
//
//go:noescape
func ClaimHandle(a *HandleArray) (slot int, h uint32, ok bool)

// PutHandle, on the calling thread's slot of a handle array:
//
//	slot = index of the calling thread
//	if f == e { return ok = false }  // no hole
//	h[f] = h; f = f+1            // commit: the header
//
// On success the handle is full: a TakeHandle may return it and table[h]
// from then on, so write table[h] before PutHandle. On failure the caller
// still owns h.
//
//go:noescape
func PutHandle(a *HandleArray, h uint32) (slot int, ok bool)

// RestoreHandle, on the calling thread's slot of a handle array:
//
//	slot = index of the calling thread
//	if e >= capacity { return false }
//	h = h[e]                      // the first free handle
//	if table[h] != v { return false }
//	h[f] = h; f, e = f+1, e+1     // commit: the header
//	return true
//
// It puts back the handle a TakeHandle on this slot gave up, when nothing
// has claimed it since: its table entry still holds the value TakeHandle
// returned, so the handle becomes full again without the table being
// written, in one section where ClaimHandle and PutHandle take two and a
// table write. That is an object pool's Put of the object its Get just
// returned, on the same CPU. Free handles have no owner, so nothing writes
// their entries; the section compares the entry with v inside, so a claim
// by another thread on this CPU restarts it. On false nothing changed, and
// the caller takes the long way.
//
//go:noescape
func RestoreHandle(a *HandleArray, v unsafe.Pointer) (ok bool)
