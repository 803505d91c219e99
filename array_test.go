package rseq

import (
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// TestArrayExact: an Array of each Index, added to by goroutines, sums
// exactly, and its slots are those of the package-level operations.
func TestArrayExact(t *testing.T) {
	for _, ix := range []Index{ByCPU, ByConcurrencyID} {
		t.Run(ix.String(), func(t *testing.T) {
			mem := make([]arraySlot, Slots())
			a := NewArray(unsafe.Pointer(&mem[0]), unsafe.Sizeof(mem[0]), ix)
			const G, N = 4, 50000
			var wg sync.WaitGroup
			for range G {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range N {
						if s := a.Add(1); s < 0 || s >= Slots() {
							t.Errorf("Add returned slot %d of %d", s, Slots())
							return
						}
					}
				}()
			}
			wg.Wait()
			var sum int64
			for i := range mem {
				sum += mem[i].v
			}
			if sum != G*N {
				t.Fatalf("sum %d, want %d", sum, G*N)
			}
			// The compare operations reach the word at off of the slot.
			for {
				s := a.Slot()
				w := a.Word(s, 0)
				old := *w
				if st := a.CompareAndStore(s, 0, old, old+10); st == Committed {
					if *w != old+10 {
						t.Fatalf("CompareAndStore committed, word %d, want %d", *w, old+10)
					}
					break
				}
			}
			if !a.CompareAndStoreRemote(0, 0, *a.Word(0, 0), 99) || *a.Word(0, 0) != 99 {
				t.Fatalf("CompareAndStoreRemote did not store into slot 0")
			}
			for s := range Slots() {
				if err := a.Fence(s); err != nil {
					t.Errorf("Fence(%d): %v", s, err)
				}
			}
			if err := a.Fence(Slots()); err == nil {
				t.Error("Fence of a slot past the end: no error")
			}
		})
	}
}

// TestArrayMisuse: bad arguments and the zero Array panic, naming the
// cause.
func TestArrayMisuse(t *testing.T) {
	var word [64]uintptr
	base := unsafe.Pointer(&word[0])
	for _, c := range []struct {
		name, want string
		f          func()
	}{
		{"nil base", "nil base", func() { NewArray(nil, 8, ByCPU) }},
		{"stride 12", "stride 12", func() { NewArray(base, 12, ByCPU) }},
		{"stride 0", "stride 0", func() { NewArray(base, 0, ByCPU) }},
		{"index 7", "unknown Index 7", func() { NewArray(base, 8, Index(7)) }},
		{"zero Array", "NewArray", func() { Array{}.Add(1) }},
		{"slot past the end", "outside", func() { NewArray(base, 8, ByCPU).Word(Slots(), 0) }},
		{"offset past the stride", "outside", func() { NewArray(base, 8, ByCPU).Word(0, 8) }},
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil {
					t.Errorf("%s: no panic", c.name)
					return
				}
				if msg, _ := r.(string); !strings.Contains(msg, c.want) {
					t.Errorf("%s: panic %v, want it to name %q", c.name, r, c.want)
				}
			}()
			c.f()
		}()
	}
}

// arraySlot is one slot of the arrays of these tests: a counter alone on
// its cache lines.
type arraySlot struct {
	v int64
	_ [CPUStride - 8]byte
}
