// Command goprog exercises every per-CPU operation of github.com/gorseq/rseq
// from several goroutines and checks the results exactly: exit status 0 when
// every check holds, 1 (with a FAIL line) when one does not. rseq torture's
// tests run it.
//
// Usage: goprog [GOROUTINES [N [PHASE]]]: every phase (one operation or
// group of operations, for each Index) runs GOROUTINES goroutines (4) of at
// least N operations each (20000) for at least PHASE (a duration, 0).
//
// It first prints the library's section table as this process has it, one
// line per section, for the tests to compare torture's report with:
//
//	section NAME START POST-COMMIT ABORT    (hexadecimal run-time addresses)
//	main ADDR                               (main.main, to find the load bias)
package main

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

const stride = 64

var failed bool

func fail(format string, args ...any) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	failed = true
}

// region returns n bytes of memory the Go GC does not manage.
func region(n int) unsafe.Pointer {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(2)
	}
	return unsafe.Pointer(&b[0])
}

func word(base unsafe.Pointer, off uintptr) *uintptr {
	return (*uintptr)(unsafe.Add(base, off))
}

// phase runs op on g goroutines: goroutine id calls op(id, i) for i = 0,
// 1, ... until it has made n calls, every goroutine has made n and the
// phase has lasted minPhase, or until op returns false (the call did
// nothing: a log is full). A goroutine that is done keeps working while
// another is behind, so that a thread torture holds (a stall) always has
// company doing the same operations. It returns the number of calls that
// did their work, of all goroutines.
func phase(g, n int, op func(id, i int) bool) int64 {
	var behind atomic.Int64
	behind.Store(int64(g))
	var total atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for id := 0; id < g; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 0
			for ; ; i++ {
				if i == n {
					behind.Add(-1)
				}
				if i >= n && behind.Load() == 0 && time.Since(start) >= minPhase {
					break
				}
				if !op(id, i) {
					if i < n {
						behind.Add(-1)
					}
					break
				}
			}
			total.Add(int64(i))
		}()
	}
	wg.Wait()
	return total.Load()
}

// minPhase is the least time every phase lasts (the third argument).
var minPhase time.Duration

func main() {
	g, n := 4, 20000
	if len(os.Args) > 1 {
		g, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		var err error
		if minPhase, err = time.ParseDuration(os.Args[3]); err != nil {
			fmt.Println("bad phase duration:", err)
			os.Exit(2)
		}
	}
	// A P for every goroutine, whatever the CPU affinity: torture narrows
	// the affinity of threads for its stalls, and the runtime would lower
	// GOMAXPROCS to match (a thread held by torture keeps its P: with one
	// P left, nothing else would run). Set explicitly, it stays.
	runtime.GOMAXPROCS(g + 1)
	for _, s := range rseq.Sections() {
		fmt.Printf("section %s %#x %#x %#x\n", s.Name, s.Start, s.PostCommit, s.Abort)
	}
	fmt.Printf("main %#x\n", reflect.ValueOf(main).Pointer())
	slots := rseq.Slots()
	size := uintptr(slots) * stride

	for _, ix := range []rseq.Index{rseq.ByCPU, rseq.ByConcurrencyID} {
		// Add.
		base := region(int(size))
		want := phase(g, n, func(int, int) bool {
			rseq.Add(base, stride, ix, 1)
			return true
		})
		if s := sum(base, slots); s != want {
			fail("Add(%v): sum %d, want %d", ix, s, want)
		}

		// AddIndirect: each slot points at a counter 8 bytes into a
		// separate region.
		targets := region(int(size))
		ptrs := region(int(size))
		for i := 0; i < slots; i++ {
			*word(ptrs, uintptr(i)*stride) = uintptr(targets) + uintptr(i)*stride - 8
		}
		want = phase(g, n, func(int, int) bool {
			rseq.AddIndirect(ptrs, stride, ix, 16, 2)
			return true
		})
		if s := sumAt(targets, slots, 8); s != 2*want {
			fail("AddIndirect(%v): sum %d, want %d", ix, s, 2*want)
		}

		// CompareAndStore and CompareBothAndStore increment a counter.
		cas := region(int(size))
		seven := region(64)
		*word(seven, 0) = 7
		want = phase(g, n, func(id, i int) bool {
			for {
				slot := ix.Slot()
				v := word(cas, uintptr(slot)*stride)
				old := *v
				var st rseq.Status
				if (i+id)%2 == 0 {
					st = rseq.CompareAndStore(ix, slot, v, old, old+1)
				} else {
					st = rseq.CompareBothAndStore(ix, slot, v, old, word(seven, 0), 7, old+1)
				}
				if st == rseq.Committed {
					return true
				}
			}
		})
		if s := sum(cas, slots); s != want {
			fail("CompareAndStore/CompareBothAndStore(%v): sum %d, want %d", ix, s, want)
		}
		slot := ix.Slot()
		v := word(cas, uintptr(slot)*stride)
		if st := rseq.CompareBothAndStore(ix, slot, v, *v, word(seven, 0), 8, 12345); st != rseq.CompareFailed && st != rseq.Moved {
			fail("CompareBothAndStore with a wrong second value: %v", st)
		}

		// StoreThenCommit appends to a per-slot log; CopyThenCommit
		// appends 3-word records. Each slot: count word, then room for
		// 8n entries per goroutine, never reused (the phase ends for a
		// goroutine that finds its slot's log full; pages untouched stay
		// unallocated). Entry k holds k<<8 | writer: every committed
		// entry is checked, so an entry whose store did not happen before
		// its commit shows.
		logLen := uintptr(g * 8 * n)
		logStride := 8 + logLen*24
		logs := region(int(uintptr(slots) * logStride))
		recs := make([][3]uintptr, g)
		want = phase(g, n, func(id, i int) bool {
			rec := &recs[id]
			for {
				slot := ix.Slot()
				s := unsafe.Add(logs, uintptr(slot)*logStride)
				cnt := word(s, 0)
				c := *cnt
				if c >= logLen {
					return false
				}
				e := unsafe.Add(s, 8+c*24)
				v := c<<8 | uintptr(id+1)
				var st rseq.Status
				if i%2 == 0 {
					st = rseq.StoreThenCommit(ix, slot, cnt, c, (*uintptr)(e), v, c+1)
				} else {
					// A private record: whole (24 bytes, the word loop) or
					// partial (13 bytes, the byte loop too).
					*rec = [3]uintptr{v, v, v}
					p := unsafe.Pointer(rec)
					size := uintptr(24)
					if i%4 == 1 {
						size = 13
					}
					st = rseq.CopyThenCommit(ix, slot, cnt, c, e, p, size, c+1)
				}
				if st == rseq.Committed {
					return true
				}
			}
		})
		total := int64(0)
		for i := 0; i < slots; i++ {
			s := unsafe.Add(logs, uintptr(i)*logStride)
			c := *word(s, 0)
			total += int64(c)
			// Every committed entry is a complete record or store of its
			// own position.
			for k := uintptr(0); k < c && k < logLen; k++ {
				e := unsafe.Add(s, 8+k*24)
				if v := *word(e, 0); v>>8 != k || v&0xff < 1 || v&0xff > uintptr(g) {
					fail("StoreThenCommit/CopyThenCommit(%v): slot %d entry %d holds %#x", ix, i, k, v)
					break
				}
			}
		}
		if total != want {
			fail("StoreThenCommit/CopyThenCommit(%v): %d entries, want %d", ix, total, want)
		}

		// Pop with pushes by CompareAndStore: a per-slot stack of nodes;
		// every node must survive exactly once.
		const nodes = 256
		nodeMem := region(nodes * 16)
		heads := region(int(size))
		popped := make([]int, g)
		phase(g, n, func(id, i int) bool {
			// Each goroutine pushes its share of the nodes, then pops
			// from and pushes to the slot it runs on: right after a push
			// the slot is usually not empty.
			if i == 0 {
				for k := id; k < nodes; k += g {
					push(ix, heads, unsafe.Add(nodeMem, k*16))
				}
			}
			if _, head, ok := rseq.Pop(heads, stride, ix, 0, 8); ok {
				popped[id]++
				push(ix, heads, unsafe.Add(nodeMem, head-uintptr(nodeMem)))
			}
			return true
		})
		pops := 0
		for _, p := range popped {
			pops += p
		}
		if pops == 0 {
			fail("Pop(%v): no pop found a node", ix)
		}
		seen := map[uintptr]bool{}
		for i := 0; i < slots; i++ {
			for p := *word(heads, uintptr(i)*stride); p != 0; p = *word(nodeMem, p-uintptr(nodeMem)+8) {
				if seen[p] || len(seen) > nodes {
					fail("Pop(%v): node %#x listed twice", ix, p)
					break
				}
				seen[p] = true
			}
		}
		if len(seen) != nodes {
			fail("Pop(%v): %d nodes on the stacks, want %d", ix, len(seen), nodes)
		}
	}
	for _, ix := range []rseq.Index{rseq.ByCPU, rseq.ByConcurrencyID} {
		handles(ix, g, n)
	}
	cpuCounters(g, n)
	guardedCounter(g, n)
	cpuLocks(g, n)
	if failed {
		os.Exit(1)
	}
	f := rseq.Features()
	if !f.Operations {
		fmt.Println("FAIL: the operations do not run as restartable sections:", f.OperationsReason)
		os.Exit(1)
	}
	fmt.Printf("ok: %d goroutines x %d operations, every check exact; sections %v %s\n", g, n, f.Operations, f.OperationsReason)
}

// push puts node on the calling thread's stack.
func push(ix rseq.Index, heads, node unsafe.Pointer) {
	for {
		slot := ix.Slot()
		h := word(heads, uintptr(slot)*stride)
		old := *h
		*word(node, 8) = old
		if rseq.CompareAndStore(ix, slot, h, old, uintptr(node)) == rseq.Committed {
			return
		}
	}
}

func sum(base unsafe.Pointer, slots int) int64 { return sumAt(base, slots, 0) }

func sumAt(base unsafe.Pointer, slots int, off uintptr) int64 {
	var s int64
	for i := 0; i < slots; i++ {
		s += *(*int64)(unsafe.Add(base, uintptr(i)*stride+off))
	}
	return s
}

// handles runs a pool of objects on TakeHandle, RestoreHandle, ClaimHandle
// and PutHandle
// and checks that every object and every handle ends up in exactly one
// place, and that no object was held by two goroutines at once.
func handles(ix rseq.Index, g, n int) {
	type object struct {
		id    int
		owner int32
	}
	const capacity = 4
	const hStride = 8 + capacity*4
	slots := rseq.Slots()
	base := region(slots * hStride)
	table := make([]*object, slots*capacity)
	ha := rseq.NewHandleArray(base, hStride, ix, unsafe.Pointer(&table[0]), capacity)
	for s := 0; s < slots; s++ {
		for k := 0; k < capacity; k++ {
			*(*uint32)(unsafe.Add(base, s*hStride+8+k*4)) = uint32(s*capacity + k)
		}
	}
	held := make([][]*object, g)
	spares := make([][]uint32, g)
	total := 0
	for w := range held {
		for range 3 {
			held[w] = append(held[w], &object{id: total})
			total++
		}
	}
	phase(g, n, func(w, i int) bool {
		mine, spare := &held[w], &spares[w]
		if i%2 == 0 || len(*mine) == 0 {
			if v := rseq.TakeHandle(&ha); v != nil {
				o := (*object)(v)
				if o.owner != 0 {
					fail("TakeHandle(%v): object %d handed out while goroutine %d holds it", ix, o.id, o.owner-1)
				}
				o.owner = int32(w + 1)
				*mine = append(*mine, o)
			}
			return true
		}
		if i%4 == 1 {
			// The short way back for the object taken last, if its
			// handle is still the first free one here.
			o := (*mine)[len(*mine)-1]
			o.owner = 0
			if rseq.RestoreHandle(&ha, unsafe.Pointer(o)) {
				*mine = (*mine)[:len(*mine)-1]
				return true
			}
			o.owner = int32(w + 1)
		}
		_, h, ok := rseq.ClaimHandle(&ha)
		if !ok && len(*spare) > 0 {
			h, ok = (*spare)[len(*spare)-1], true
			*spare = (*spare)[:len(*spare)-1]
		}
		if !ok {
			return true
		}
		o := (*mine)[len(*mine)-1]
		o.owner = 0
		table[h] = o
		if _, ok := rseq.PutHandle(&ha, h); ok {
			*mine = (*mine)[:len(*mine)-1]
		} else {
			o.owner = int32(w + 1)
			*spare = append(*spare, h)
		}
		return true
	})
	objects := make([]int, total)
	hs := make([]int, len(table))
	for s := 0; s < slots; s++ {
		hdr := *(*uint64)(unsafe.Add(base, s*hStride))
		f, e := int(uint32(hdr)), int(hdr>>32)
		if f > e || e > capacity {
			fail("handles(%v): slot %d has f, e = %d, %d", ix, s, f, e)
			return
		}
		for k := 0; k < capacity; k++ {
			if k >= f && k < e {
				continue
			}
			h := *(*uint32)(unsafe.Add(base, s*hStride+8+k*4))
			hs[h]++
			if k < f {
				objects[table[h].id]++
			}
		}
	}
	for w := range held {
		for _, o := range held[w] {
			objects[o.id]++
		}
		for _, h := range spares[w] {
			hs[h]++
		}
	}
	for id, c := range objects {
		if c != 1 {
			fail("handles(%v): object %d found %d times", ix, id, c)
		}
	}
	for h, c := range hs {
		if c != 1 {
			fail("handles(%v): handle %d found %d times", ix, h, c)
		}
	}
}

// cpuCounters runs the sections of per-CPU counters, AddCPU (int64) and
// AddFloat64CPU (float64; integer values, so the sum is exact).
func cpuCounters(g, n int) {
	slots := rseq.Slots()
	ints := region(slots * rseq.CPUStride)
	floats := region(slots * rseq.CPUStride)
	calls := phase(g, n, func(int, int) bool {
		rseq.AddCPU(ints, 3)
		rseq.AddFloat64CPU(floats, 2)
		return true
	})
	var si int64
	var sf float64
	for i := 0; i < slots; i++ {
		si += int64(*word(ints, uintptr(i)*rseq.CPUStride))
		sf += math.Float64frombits(uint64(*word(floats, uintptr(i)*rseq.CPUStride)))
	}
	if want := 3 * calls; si != want {
		fail("AddCPU: sum %d, want %d", si, want)
	}
	if want := 2 * float64(calls); sf != want {
		fail("AddFloat64CPU: sum %v, want %v", sf, want)
	}
}

// guardedCounter runs IncCPUIfZero (a per-CPU reader-writer lock's entry)
// with its guard clear, where every call adds, and set, where none does,
// in a phase of its own so that its section gets the phase's stalls.
func guardedCounter(g, n int) {
	slots := rseq.Slots()
	counts := region(slots * rseq.CPUStride)
	var clear, set uintptr = 0, 1
	var refused, admitted atomic.Int64
	calls := phase(g, n, func(int, int) bool {
		if !rseq.IncCPUIfZero(counts, &clear) {
			refused.Add(1)
		}
		if rseq.IncCPUIfZero(counts, &set) {
			admitted.Add(1)
		}
		return true
	})
	var sum int64
	for i := 0; i < slots; i++ {
		sum += int64(*word(counts, uintptr(i)*rseq.CPUStride))
	}
	if refused.Load() != 0 || admitted.Load() != 0 || sum != calls {
		fail("IncCPUIfZero: sum %d, want %d; %d refused with the guard clear, %d admitted with it set", sum, calls, refused.Load(), admitted.Load())
	}
}

// cpuLocks runs CompareAndStoreCPU as a per-CPU spinlock (percpu's
// Histogram and Value take their shards so): each call locks the calling
// CPU's word with the goroutine's id, checks that the slot returned is the
// one it locked, adds 1 to the slot's count with a plain read-modify-write
// and unlocks. The counts add up exactly only if no two goroutines held a
// slot at once. The stride, 192 bytes, is not a power of two.
func cpuLocks(g, n int) {
	const stride = 3 * 64
	slots := rseq.Slots()
	mem := region(slots * stride)
	var wrong atomic.Int64
	calls := phase(g, n, func(id, _ int) bool {
		me := uintptr(id + 1)
		for spins := 0; ; spins++ {
			s, ok := rseq.CompareAndStoreCPU(mem, stride, 0, me)
			if ok {
				lock := word(mem, uintptr(s)*stride)
				if atomic.LoadUintptr(lock) != me {
					wrong.Add(1)
				}
				*word(mem, uintptr(s)*stride+8)++ // plain: the lock protects it
				atomic.StoreUintptr(lock, 0)
				return true
			}
			if spins%64 == 63 {
				runtime.Gosched() // the holder is stalled or preempted on this CPU
			}
		}
	})
	var sum int64
	for i := 0; i < slots; i++ {
		sum += int64(*word(mem, uintptr(i)*stride+8))
	}
	if wrong.Load() != 0 || sum != calls {
		fail("CompareAndStoreCPU: sum %d, want %d; %d locks taken on a slot other than the one returned", sum, calls, wrong.Load())
	}
}
