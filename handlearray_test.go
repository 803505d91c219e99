package rseq_test

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
)

// TestHandleArrayMisuse: on the zero HandleArray the handle operations
// find nothing (the sections send it to their fallbacks rather than
// dereference a nil base), Header panics naming NewHandleArray, Publish
// sets a zero array once, and NewHandleArray refuses what the sections
// cannot work on.
func TestHandleArrayMisuse(t *testing.T) {
	var zero rseq.HandleArray
	panics := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			t.Helper()
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), want) {
				t.Errorf("%s: recovered %v, want a panic naming %q", what, r, want)
			}
		}()
		f()
	}
	if v := rseq.TakeHandle(&zero); v != nil {
		t.Errorf("TakeHandle on the zero HandleArray = %p, want nil", v)
	}
	if slot, h, ok := rseq.ClaimHandle(&zero); ok || slot != 0 || h != 0 {
		t.Errorf("ClaimHandle on the zero HandleArray = %d, %d, %v; want 0, 0, false", slot, h, ok)
	}
	if slot, ok := rseq.PutHandle(&zero, 3); ok || slot != 0 {
		t.Errorf("PutHandle on the zero HandleArray = %d, %v; want 0, false", slot, ok)
	}
	if rseq.RestoreHandle(&zero, unsafe.Pointer(&zero)) {
		t.Error("RestoreHandle on the zero HandleArray succeeded")
	}
	panics("Header", "NewHandleArray", func() { zero.Header(0) })
	panics("Publish of the zero HandleArray", "NewHandleArray", func() { zero.Publish(rseq.HandleArray{}) })

	mem := make([]uint64, 64*rseq.Slots())
	base := unsafe.Pointer(&mem[0])
	table := make([]*int, 4*rseq.Slots())
	tp := unsafe.Pointer(&table[0])
	panics("nil base", "nil base", func() { rseq.NewHandleArray(nil, 24, rseq.ByCPU, tp, 4) })
	panics("nil table", "nil table", func() { rseq.NewHandleArray(base, 24, rseq.ByCPU, nil, 4) })
	panics("capacity 0", "capacity 0", func() { rseq.NewHandleArray(base, 24, rseq.ByCPU, tp, 0) })
	panics("stride too small", "stride 16", func() { rseq.NewHandleArray(base, 16, rseq.ByCPU, tp, 4) })
	panics("stride not a multiple of 8", "stride 28", func() { rseq.NewHandleArray(base, 28, rseq.ByCPU, tp, 4) })
	panics("bad Index", "unknown Index", func() { rseq.NewHandleArray(base, 24, rseq.Index(7), tp, 4) })

	a := rseq.NewHandleArray(base, 24, rseq.ByConcurrencyID, tp, 4)
	if a.Base() != base || a.Stride() != 24 || a.Index() != rseq.ByConcurrencyID || a.Table() != tp || a.Capacity() != 4 {
		t.Errorf("accessors: %p %d %v %p %d", a.Base(), a.Stride(), a.Index(), a.Table(), a.Capacity())
	}
	if h := a.Header(1); uintptr(unsafe.Pointer(h)) != uintptr(base)+24 {
		t.Errorf("Header(1) at %p, want base+24 (%p)", h, unsafe.Add(base, 24))
	}
	panics("Header out of range", "outside", func() { a.Header(rseq.Slots()) })

	var published rseq.HandleArray
	published.Publish(a)
	if published != a {
		t.Errorf("Publish stored %+v, want %+v", published, a)
	}
	panics("second Publish", "set up already", func() { published.Publish(a) })
}
