package percpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
)

type obj struct {
	id    int
	owned atomic.Int32 // 1 while a goroutine holds it
	data  []byte       // a pointer the GC must keep valid
}

func TestPoolExact(t *testing.T) {
	// 8 per CPU: the lists fill and empty; 1 per CPU: most objects go
	// through the overflow and the shared spare nodes.
	for _, perCPU := range []int{8, 1} {
		t.Run(fmt.Sprintf("perCPU=%d", perCPU), func(t *testing.T) { testPoolExact(t, perCPU) })
	}
}

func testPoolExact(t *testing.T, perCPU int) {
	var made atomic.Int64
	const G = 6
	p, err := NewPool(perCPU, 1<<20, func() *obj {
		id := int(made.Add(1))
		return &obj{id: id, data: make([]byte, 16)}
	})
	if err != nil {
		t.Fatal(err)
	}
	var dup atomic.Int64
	var counts []int
	underFire(t, []string{"takeHandle", "claimHandle", "putHandle", "restoreHandle"}, func() {
		held := make([][]*obj, G)
		counts = until(G, func(g, i int) bool {
			h := held[g]
			if len(h) < 4 && (len(h) == 0 || (i*7+g)%3 != 0) {
				o := p.Get()
				if !o.owned.CompareAndSwap(0, 1) {
					dup.Add(1)
				}
				o.data[0]++ // touch: would fault on a freed object
				held[g] = append(h, o)
			} else {
				// The object taken last (Put restores its handle, unless
				// something reused it) or, every other time, the one
				// held longest (Put claims a handle and writes its entry).
				var o *obj
				if i%2 == 0 {
					o = h[len(h)-1]
					held[g] = h[:len(h)-1]
				} else {
					o = h[0]
					held[g] = h[1:]
				}
				o.owned.Store(0)
				p.Put(o)
			}
			return true
		})
		for _, h := range held {
			for _, o := range h {
				o.owned.Store(0)
				p.Put(o)
			}
		}
	})
	t.Logf("%d Gets and Puts", total(counts))
	if dup.Load() != 0 {
		t.Fatalf("%d objects handed out while already held", dup.Load())
	}
	if mainThread != nil {
		// In mixed mode, leave an object in the shared slot for certain
		// (the main thread, on the fallback, puts it there): Len must
		// count it.
		mainThread.Run(func() { p.Put(p.Get()) })
	}
	checkHandles(t, p)
	// Every object made is back in the pool (the overflow is big enough
	// for none to be dropped): take them all out.
	total := int(made.Load())
	if got := p.Len(); got != total {
		t.Errorf("Len = %d, want %d", got, total)
	}
	// Get reaches the calling CPU's list and the overflow: go to every
	// CPU in turn and take until the pool has to make a new object.
	seen := map[int]bool{}
	takeAll := func() {
		for {
			before := made.Load()
			o := p.Get()
			if made.Load() != before {
				return
			}
			if seen[o.id] {
				t.Errorf("object %d came out twice", o.id)
				return
			}
			seen[o.id] = true
		}
	}
	onEachCPU(t, func(int) { takeAll() })
	if mainThread != nil {
		// In mixed mode the main thread, on the fallback, kept objects in
		// the shared slot, which only such threads reach.
		mainThread.Run(takeAll)
	}
	if len(seen) != total {
		t.Fatalf("took %d objects out of the pool, want the %d made", len(seen), total)
	}
	t.Logf("%d objects made for %d goroutines", total, G)
}

func TestPoolSurvivesGC(t *testing.T) {
	p, err := NewPool[obj](16, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	var collected atomic.Int64
	// Get reaches only the calling CPU's list: stay on one CPU.
	onOneCPU(t, func() {
		for i := 0; i < 8; i++ {
			o := &obj{id: i, data: make([]byte, 1<<10)}
			runtime.AddCleanup(o, func(int) { collected.Add(1) }, i)
			p.Put(o)
		}
		for i := 0; i < 5; i++ {
			runtime.GC()
		}
		if collected.Load() != 0 {
			t.Fatalf("%d pooled objects were collected", collected.Load())
		}
		ids := map[int]bool{}
		for i := 0; i < 8; i++ {
			o := p.Get()
			if o.data == nil || len(o.data) != 1<<10 {
				t.Fatalf("Get returned an object that is not one of those put: %+v", o.id)
			}
			ids[o.id] = true
		}
		if len(ids) != 8 {
			t.Fatalf("got back %d distinct objects, want 8", len(ids))
		}
	})
}

func TestPoolBounds(t *testing.T) {
	p, err := NewPool[obj](2, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*obj
	for i := 0; i < 2*rseqSlots()+10; i++ {
		objs = append(objs, &obj{id: i})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, o := range objs {
			p.Put(o)
		}
	}()
	wg.Wait()
	if got, max := p.Len(), 2*rseqSlots()+3; got > max {
		t.Fatalf("pool holds %d objects, more than its bound %d", got, max)
	}
	if _, err := NewPool[obj](0, 0, nil); err == nil {
		t.Error("NewPool(0, ...) did not fail")
	}
	if _, err := NewPool[obj](1, -1, nil); err == nil {
		t.Error("NewPool with a negative overflow did not fail")
	}
	p.Put(nil) // ignored
	if q, _ := NewPool[obj](1, 0, nil); q.Get() == nil {
		t.Error("Get from an empty pool without New returned nil")
	}
}

// checkHandles checks, with no Get or Put running, that every handle of p is
// in exactly one place (a slot's full or free part, or the spares) and that
// full handles hold objects.
func checkHandles[T any](t *testing.T, p *Pool[T]) {
	t.Helper()
	seen := make([]int, len(p.objs))
	for s := 0; s < rseqSlots(); s++ {
		f, e := p.header(s)
		if f > e || e > p.perCPU {
			t.Fatalf("slot %d: f, e = %d, %d with %d per CPU", s, f, e, p.perCPU)
		}
		hs := unsafe.Slice((*uint32)(unsafe.Add(p.ha.Base(), uintptr(s)*p.ha.Stride()+8)), p.perCPU)
		for k, h := range hs {
			if uint32(k) >= f && uint32(k) < e {
				continue // a hole
			}
			seen[h]++
			if uint32(k) < f && p.objs[h] == nil {
				t.Errorf("slot %d: full handle %d holds no object", s, h)
			}
		}
	}
	for _, h := range p.shared.handles {
		seen[h]++
	}
	for h, n := range seen {
		if n != 1 {
			t.Errorf("handle %d found %d times", h, n)
		}
	}
	t.Logf("%d handles accounted for, %d with the spares", len(seen), len(p.shared.handles))
}

// TestPoolSpareHandles takes the path of a Put that claimed a handle on one
// CPU and found no hole on the CPU it moved to: the handle goes to the
// spares and the object to the overflow, and the next Put on the first CPU,
// which has a hole and no free handle, uses the spare.
func TestPoolSpareHandles(t *testing.T) {
	p, err := NewPool[obj](1, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	onOneCPU(t, func() {
		// What a Put that moved away would have done: claim this CPU's
		// only handle, fail to put it elsewhere.
		_, h, ok := rseq.ClaimHandle(&p.ha)
		if !ok {
			t.Fatal("ClaimHandle on a fresh pool failed")
		}
		o1, o2 := &obj{id: 1}, &obj{id: 2}
		p.overflow(o1, &h)
		checkHandles(t, p)
		p.Put(o2)
		if len(p.shared.handles) != 0 {
			t.Fatalf("Put left the spare handle unused: spares %v", p.shared.handles)
		}
		checkHandles(t, p)
		if n := p.Len(); n != 2 {
			t.Fatalf("Len = %d, want 2", n)
		}
		if got := p.Get(); got != o2 {
			t.Fatalf("first Get = %+v, want object 2 from this CPU's list", got)
		}
		if got := p.Get(); got != o1 {
			t.Fatalf("second Get = %+v, want object 1 from the overflow", got)
		}
		if got := p.Get(); got == o1 || got == o2 || got == nil {
			t.Fatalf("third Get = %+v, want a new object", got)
		}
		checkHandles(t, p)
	})
}
