package rseq_test

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
)

// TestHandleArrayMisuse: the zero HandleArray makes every handle operation
// panic with a message naming NewHandleArray (the sections send it to their
// fallbacks rather than dereference a nil base), and NewHandleArray refuses
// what the sections cannot work on.
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
	panics("TakeHandle", "NewHandleArray", func() { rseq.TakeHandle(&zero) })
	panics("ClaimHandle", "NewHandleArray", func() { rseq.ClaimHandle(&zero) })
	panics("PutHandle", "NewHandleArray", func() { rseq.PutHandle(&zero, 0) })
	panics("RestoreHandle", "NewHandleArray", func() { rseq.RestoreHandle(&zero, unsafe.Pointer(&zero)) })
	panics("Header", "NewHandleArray", func() { zero.Header(0) })

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
}
