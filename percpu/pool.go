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
// The free lists are linked lists of nodes: Get unlinks the first node
// with one restartable section (rseq.Pop), Put links a node in with another
// (rseq.CompareBothAndStore, which also checks the list's length so each
// CPU's list stays within perCPU). The sections only ever see node
// addresses, which point into an array of pointer-free link words the Pool
// keeps alive; the objects themselves are held in an ordinary []*T indexed
// by node, written only by the goroutine that has taken the node out of
// every list. So the GC sees every pooled object at all times, and no
// assembly writes a Go pointer. Get and Put each cost two sections (a
// node goes from the list of full nodes to the list of empty ones) and no
// atomic instruction.
//
// Memory: rseq.Slots() * (128 + perCPU*24) bytes plus 8 bytes per overflow
// entry, besides the objects.
type Pool[T any] struct {
	// New makes an object when the pool has none; if nil, Get returns
	// new(T).
	New func() *T

	perCPU uintptr
	objs   []*T       // objs[i]: the object of node i while it is in a full list
	links  []poolNode // node i is &links[i]
	mem    []uint64   // per-CPU heads: full list at 0, empty list at 8
	heads  unsafe.Pointer

	shared struct {
		sync.Mutex
		objs  []*T  // overflow objects
		nodes []int // empty nodes beyond the per-CPU bound
	}
	maxOverflow int
}

// poolNode is a list node: pointer-free, in memory the Pool keeps alive.
type poolNode struct {
	next  uintptr // address of the next node, 0 at the end
	depth uintptr // number of nodes from here to the end of the list
}

const nodeSize = unsafe.Sizeof(poolNode{})

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
	n := perCPU * rseq.Slots()
	p := &Pool[T]{New: newFn, perCPU: uintptr(perCPU), maxOverflow: overflow}
	p.objs = make([]*T, n)
	p.links = make([]poolNode, n)
	p.mem, p.heads = words(rseq.Slots(), line)
	// Every CPU's empty list starts with perCPU nodes (set up before the
	// pool is shared, so plain stores do).
	for s := 0; s < rseq.Slots(); s++ {
		var head, depth uintptr
		for k := 0; k < perCPU; k++ {
			i := s*perCPU + k
			depth++
			p.links[i] = poolNode{next: head, depth: depth}
			head = p.addr(i)
		}
		*p.emptyHead(s) = head
	}
	return p, nil
}

func (p *Pool[T]) addr(i int) uintptr { return uintptr(unsafe.Pointer(&p.links[i])) }

func (p *Pool[T]) index(a uintptr) int {
	return int((a - uintptr(unsafe.Pointer(&p.links[0]))) / nodeSize)
}

func (p *Pool[T]) node(a uintptr) *poolNode { return &p.links[p.index(a)] }

func (p *Pool[T]) fullHead(slot int) *uintptr  { return word(p.heads, slot, line) }
func (p *Pool[T]) emptyHead(slot int) *uintptr { return word(unsafe.Add(p.heads, 8), slot, line) }

// Get takes an object from the calling CPU's free list, else from the
// overflow, else makes one.
func (p *Pool[T]) Get() *T {
	slot, a, ok := rseq.Pop(p.heads, line, rseq.ByCPU, 0, 0)
	if ok {
		i := p.index(a)
		x := p.objs[i]
		p.objs[i] = nil
		p.release(i, slot)
		return x
	}
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
	slot, a, ok := rseq.Pop(unsafe.Add(p.heads, 8), line, rseq.ByCPU, 0, 0)
	var i int
	if ok {
		i = p.index(a)
	} else if i, ok = p.takeSpare(); !ok {
		p.overflow(x)
		return
	}
	p.objs[i] = x
	if !p.pushNode(i, p.heads, slot) {
		// This CPU's list is full.
		p.objs[i] = nil
		p.release(i, slot)
		p.overflow(x)
	}
}

// release puts the empty node i on the calling CPU's list of empty nodes,
// or with the shared spares when that list is full.
func (p *Pool[T]) release(i, slot int) {
	if !p.pushNode(i, unsafe.Add(p.heads, 8), slot) {
		p.shared.Lock()
		p.shared.nodes = append(p.shared.nodes, i)
		p.shared.Unlock()
	}
}

// pushNode links node i in at the head of the calling CPU's list in the
// per-CPU array of heads at base, unless that list holds perCPU nodes
// already: then it reports false. slot is where the thread last ran an
// operation; it is checked by the section and read again if stale.
func (p *Pool[T]) pushNode(i int, base unsafe.Pointer, slot int) bool {
	n := &p.links[i]
	for {
		h := word(base, slot, line)
		old := atomic.LoadUintptr(h)
		var st rseq.Status
		if old == 0 {
			setWord(&n.next, 0)
			setWord(&n.depth, 1)
			st = rseq.CompareAndStore(rseq.ByCPU, slot, h, 0, p.addr(i))
		} else {
			// old's depth cannot change while old is in a list; comparing
			// it as well catches old having been taken out and put back
			// at another depth meanwhile.
			on := p.node(old)
			d := atomic.LoadUintptr(&on.depth)
			if d >= p.perCPU {
				return false
			}
			setWord(&n.next, old)
			setWord(&n.depth, d+1)
			st = rseq.CompareBothAndStore(rseq.ByCPU, slot, h, old, &on.depth, d, p.addr(i))
		}
		if st == rseq.Committed {
			return true
		}
		slot = rseq.ByCPU.Slot()
	}
}

// takeSpare returns an empty node from the shared spares.
func (p *Pool[T]) takeSpare() (int, bool) {
	p.shared.Lock()
	defer p.shared.Unlock()
	k := len(p.shared.nodes)
	if k == 0 {
		return 0, false
	}
	i := p.shared.nodes[k-1]
	p.shared.nodes = p.shared.nodes[:k-1]
	return i, true
}

// overflow keeps x in the shared overflow if it has room.
func (p *Pool[T]) overflow(x *T) {
	p.shared.Lock()
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
		if h := atomic.LoadUintptr(p.fullHead(s)); h != 0 {
			t += int(atomic.LoadUintptr(&p.node(h).depth))
		}
	}
	p.shared.Lock()
	t += len(p.shared.objs)
	p.shared.Unlock()
	return t
}
