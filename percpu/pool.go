package percpu

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// Pool is a set of reusable objects kept in per-CPU free lists, for the
// uses of sync.Pool where the objects should survive garbage collections:
// a Pool holds its objects until Get hands them out, however many GCs run.
//
// Each CPU keeps up to perCPU free objects; objects beyond that go to a
// shared overflow of bounded size (under a mutex), and beyond that are
// dropped for the GC to collect. Get takes from the calling CPU's list,
// then from the overflow, then makes a new object with the Pool's New.
//
// The per-CPU lists are a handle array (rseq.HandleArray): each CPU's
// slot holds handles, indices into an ordinary []*T the GC sees, that are
// either full (the entry holds a pooled object) or free. Get is one
// restartable section, rseq.TakeHandle, which turns the CPU's last full
// handle into a free one and returns the object its entry held. Put of an
// object a Get on the same CPU handed out, whose handle nothing reused
// since (a Get, some work, a Put: the common case) is one section too,
// rseq.RestoreHandle: the CPU's first free handle becomes full again if
// its entry still holds the object. Otherwise Put is two:
// rseq.ClaimHandle takes a free handle out of the CPU's slot, Put writes
// the object into the handle's entry with an ordinary Go store, and
// rseq.PutHandle adds the handle to the full ones of the CPU the goroutine
// is on by then. The sections never write a Go pointer: they move uint32
// handles in pointer-free memory, and the only goroutine that writes an
// entry is the one that claimed its handle. No atomic instruction is used.
//
// Threads that run without rseq (the main thread of a PIE binary, whose
// area the dynamic loader registered) keep their free objects in the shared
// slot, which only such threads take from: up to perCPU objects that other
// threads' Gets do not see.
//
// After Get an entry keeps referring to the object it handed out until a
// later Put reuses the entry, so objects that are taken and never put back
// can stay reachable a while longer, at most perCPU of them per CPU.
//
// Memory: rseq.Slots() * (8 + perCPU*12) bytes, each slot rounded up to
// 128, plus 8 bytes per overflow entry, besides the objects.
//
// The zero Pool is ready to use, like sync.Pool (set New, or leave it nil
// for new(T)): it sets itself up on first use with DefaultPoolPerCPU
// objects per CPU and DefaultPoolOverflow in the overflow. NewPool chooses
// both.
type Pool[T any] struct {
	// New makes an object when the pool has none; if nil, Get returns
	// new(T).
	New func() *T

	// ha is the handle array, the zero one (in which Get and Put find
	// nothing, and take their slow paths) until the Pool is set up (by
	// NewPool, or by the slow path of a zero Pool's first Get or Put):
	// then rseq.HandleArray.Publish stores it whole, after the fields
	// below: whoever sees ha's base non-nil (ha.Base) sees them.
	ha     rseq.HandleArray
	setup  sync.Mutex // serializes the first use of a zero Pool
	perCPU uint32
	objs   []*T     // objs[h]: the object of handle h while h is full (ha's table)
	mem    []uint64 // the handle array's memory

	shared struct {
		sync.Mutex
		objs    []*T     // overflow objects
		handles []uint32 // handles that found no room in any slot
	}
	maxOverflow int
}

// What a zero Pool keeps: objects per CPU, and in the shared overflow.
const (
	DefaultPoolPerCPU   = 32
	DefaultPoolOverflow = 256
)

// NewPool returns a Pool that keeps up to perCPU free objects for each CPU
// and overflow more in a shared list; newFn makes objects when there are
// none (nil: new(T)).
func NewPool[T any](perCPU, overflow int, newFn func() *T) (*Pool[T], error) {
	if perCPU <= 0 || perCPU > 1<<20 {
		return nil, errorf("NewPool: %d objects per CPU out of range [1, %d]", perCPU, 1<<20)
	}
	if overflow < 0 {
		return nil, errorf("NewPool: negative overflow size %d", overflow)
	}
	if uint64(perCPU)*uint64(rseq.Slots()) > 1<<32-1 {
		return nil, errorf("NewPool: %d objects per CPU times %d slots exceed 2^32 handles", perCPU, rseq.Slots())
	}
	p := &Pool[T]{New: newFn}
	p.init(perCPU, overflow)
	return p, nil
}

// init sets the pool up and publishes its handle array.
func (p *Pool[T]) init(perCPU, overflow int) {
	slots := rseq.Slots()
	p.perCPU, p.maxOverflow = uint32(perCPU), overflow
	p.objs = make([]*T, perCPU*slots)
	stride := (8 + uintptr(perCPU)*4 + line - 1) / line * line
	var base unsafe.Pointer
	p.mem, base = words(slots, stride)
	// Every slot starts with perCPU free handles of its own (set up before
	// the pool is shared, so plain stores do): header f = e = 0.
	for s := 0; s < slots; s++ {
		hs := unsafe.Slice((*uint32)(unsafe.Add(base, uintptr(s)*stride+8)), perCPU)
		for k := range hs {
			hs[k] = uint32(s*perCPU + k)
		}
	}
	p.ha.Publish(rseq.NewHandleArray(base, stride, rseq.ByCPU, unsafe.Pointer(&p.objs[0]), p.perCPU))
}

// handles returns the handle array, setting a zero Pool up first.
func (p *Pool[T]) handles() *rseq.HandleArray {
	if p.ha.Base() == nil {
		p.setUp()
	}
	return &p.ha
}

// setUp is the first use of a zero Pool.
func (p *Pool[T]) setUp() {
	p.setup.Lock()
	defer p.setup.Unlock()
	if p.ha.Base() == nil {
		p.init(DefaultPoolPerCPU, DefaultPoolOverflow)
	}
}

// Get takes an object from the calling CPU's free list, else from the
// overflow, else makes one.
func (p *Pool[T]) Get() *T {
	// Full handles' entries are never nil (Put(nil) keeps nothing), so a
	// nil v is an empty list (or a zero Pool).
	if v := rseq.TakeHandle(&p.ha); v != nil {
		return (*T)(v)
	}
	return p.getSlow()
}

// getSlow is Get when the calling CPU's list is empty, or the Pool is not
// set up (its first Put sets it up).
func (p *Pool[T]) getSlow() *T {
	p.shared.Lock()
	if k := len(p.shared.objs); k > 0 {
		x := p.shared.objs[k-1]
		p.shared.objs[k-1] = nil
		p.shared.objs = p.shared.objs[:k-1]
		p.shared.Unlock()
		return x
	}
	p.shared.Unlock()
	if p.New != nil {
		return p.New()
	}
	return new(T)
}

// Put returns x to the calling CPU's free list, or to the overflow when
// that list holds perCPU objects, or drops it when both are full. Put(nil)
// does nothing.
func (p *Pool[T]) Put(x *T) {
	if x == nil {
		return
	}
	// The common case, x back on the CPU whose Get handed it out, its
	// handle still free there: one section, no table write.
	if rseq.RestoreHandle(&p.ha, unsafe.Pointer(x)) {
		return
	}
	p.putSlow(x)
}

// putSlow is Put when RestoreHandle did not apply: it sets a zero Pool
// up, claims a free handle, writes x into its entry and puts the handle in
// the calling CPU's slot (out of line, so that Put stays a small function).
func (p *Pool[T]) putSlow(x *T) {
	a := p.handles()
	slot, h, ok := rseq.ClaimHandle(a)
	if !ok {
		if h, ok = p.spare(slot); !ok {
			p.overflow(x, nil)
			return
		}
	}
	p.objs[h] = x // the entry is h's, and this goroutine owns h
	if _, ok := rseq.PutHandle(a, h); !ok {
		// The goroutine moved to a CPU whose slot has every handle it has
		// room for.
		p.objs[h] = nil
		p.overflow(x, &h)
	}
}

// spare returns a handle from the shared spares for a Put on slot, which
// has no free handle. If slot has no hole either its list is full, and
// there is no point in a handle.
func (p *Pool[T]) spare(slot int) (uint32, bool) {
	if f, e := p.header(slot); f == e {
		return 0, false
	}
	p.shared.Lock()
	defer p.shared.Unlock()
	k := len(p.shared.handles)
	if k == 0 {
		return 0, false
	}
	h := p.shared.handles[k-1]
	p.shared.handles = p.shared.handles[:k-1]
	return h, true
}

// header returns the full count and the start of the free part of slot,
// read without synchronizing with the sections: a hint.
func (p *Pool[T]) header(slot int) (f, e uint32) {
	w := atomic.LoadUint64(p.handles().Header(slot))
	return uint32(w), uint32(w >> 32)
}

// overflow keeps x in the shared overflow if it has room, and the handle h
// (if not nil) with the spares.
func (p *Pool[T]) overflow(x *T, h *uint32) {
	p.shared.Lock()
	if h != nil {
		p.shared.handles = append(p.shared.handles, *h)
	}
	if len(p.shared.objs) < p.maxOverflow {
		p.shared.objs = append(p.shared.objs, x)
	}
	p.shared.Unlock()
}

// Len returns the number of free objects the pool holds; not a snapshot
// when Gets and Puts run at the same time.
func (p *Pool[T]) Len() int {
	t := 0
	for s := 0; s < rseq.Slots(); s++ {
		f, _ := p.header(s)
		t += int(f)
	}
	p.shared.Lock()
	t += len(p.shared.objs)
	p.shared.Unlock()
	return t
}
