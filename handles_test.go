//go:build linux

package rseq_test

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/gorseq/rseq"
	"golang.org/x/sys/unix"
)

// handleArray is a handle array with the layout the handle operations work
// on, in pointer-free Go memory.
type handleArray struct {
	mem      []uint64
	stride   uintptr
	capacity uint32
}

func newHandleArray(capacity uint32) *handleArray {
	stride := (8 + uintptr(capacity)*4 + 63) &^ 63
	return &handleArray{
		mem:      make([]uint64, uintptr(rseq.Slots())*stride/8),
		stride:   stride,
		capacity: capacity,
	}
}

func (a *handleArray) base() unsafe.Pointer { return unsafe.Pointer(&a.mem[0]) }

func (a *handleArray) header(slot int) *uint64 {
	return (*uint64)(unsafe.Add(a.base(), uintptr(slot)*a.stride))
}

func (a *handleArray) handles(slot int) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Add(a.base(), uintptr(slot)*a.stride+8)), a.capacity)
}

// bind returns the HandleArray of a, numbered by ix, naming the entries of
// table.
func (a *handleArray) bind(ix rseq.Index, table unsafe.Pointer) rseq.HandleArray {
	return rseq.NewHandleArray(a.base(), a.stride, ix, table, a.capacity)
}

// fe returns the full count and the start of the free part of slot.
func (a *handleArray) fe(slot int) (f, e uint32) {
	w := atomic.LoadUint64(a.header(slot))
	return uint32(w), uint32(w >> 32)
}

// cpusAllowed returns the CPUs the process may run on.
func cpusAllowed(t *testing.T) []int {
	t.Helper()
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := range len(mask) * 64 {
		if mask.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// pinToOneCPU keeps the calling goroutine on its thread and that thread on
// one CPU until the returned function runs: the first CPU it may run on, or
// with cpu >= 0, that one.
func pinToOneCPU(t *testing.T, cpu ...int) func() {
	t.Helper()
	runtime.LockOSThread()
	var orig, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	c := -1
	if len(cpu) > 0 {
		c = cpu[0]
	}
	for i := 0; i < 1024 && c < 0; i++ {
		if orig.IsSet(i) {
			c = i
		}
	}
	set.Set(c)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	return func() {
		unix.SchedSetaffinity(0, &orig)
		runtime.UnlockOSThread()
	}
}

// TestHandleOperations walks one slot through every state the operations
// define, checking the header and the handles after each step, with each
// Index. ByConcurrencyID runs on a CPU whose number differs from the
// thread's concurrency ID there, where the kernel has mm_cid and one is
// found: an operation that read the wrong field of the area shows.
func TestHandleOperations(t *testing.T) {
	t.Run("cpu", func(t *testing.T) {
		defer pinToOneCPU(t)()
		testHandleOperations(t, rseq.ByCPU)
	})
	t.Run("concurrency-id", func(t *testing.T) {
		var allowed unix.CPUSet
		if err := unix.SchedGetaffinity(0, &allowed); err != nil {
			t.Fatal(err)
		}
		apart := false
		for c := 0; c < 1024 && !apart; c++ {
			if !allowed.IsSet(c) {
				continue
			}
			unpin := pinToOneCPU(t, c)
			if cpu, cid := rseq.ByCPU.Slot(), rseq.ByConcurrencyID.Slot(); cpu != cid {
				apart = true
				t.Logf("on CPU %d, concurrency ID %d", cpu, cid)
				testHandleOperations(t, rseq.ByConcurrencyID)
			}
			unpin()
		}
		if apart {
			return
		}
		func() {
			defer pinToOneCPU(t)()
			testHandleOperations(t, rseq.ByConcurrencyID)
		}()
		last := -1
		for c := 0; c < 1024; c++ {
			if allowed.IsSet(c) {
				last = c
			}
		}
		switch {
		case !rseq.Features().ConcurrencyID:
			// ByConcurrencyID reads cpu_id_start too: nothing to tell apart.
		case os.Getenv(oneCPUChild) != "":
			t.Logf("%s: on CPU %d alone the concurrency ID is %d too", notApart, last, rseq.ByConcurrencyID.Slot())
		case last > 0:
			// Where each CPU's concurrency ID is its number (Linux 6.18
			// here), a process allowed one CPU only usually numbers its
			// threads from 0: on CPU last, 0. (Linux 7.3 gave 1 there.)
			handleOperationsOnOneCPU(t, last)
		default:
			t.Logf("%s: one CPU", notApart)
		}
	})
}

// notApart is logged where no CPU was found whose concurrency ID differs
// from its number: the test could not tell ByCPU and ByConcurrencyID apart.
const notApart = "ByCPU and ByConcurrencyID not told apart"

// oneCPUChild marks the child of handleOperationsOnOneCPU.
const oneCPUChild = "GORSEQ_TEST_ONE_CPU_CHILD"

// handleOperationsOnOneCPU runs TestHandleOperations/concurrency-id again in
// a child process that may run on cpu alone, where the concurrency ID (0)
// differs from the CPU's number.
func handleOperationsOnOneCPU(t *testing.T, cpu int) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHandleOperations$/^concurrency-id$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), oneCPUChild+"=1")
	// The child inherits the affinity of the thread that starts it.
	unpin := pinToOneCPU(t, cpu)
	out, err := cmd.CombinedOutput()
	unpin()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHandleOperations/concurrency-id") {
		t.Fatalf("the handle operations by concurrency ID in a child on CPU %d alone: %v\n%s", cpu, err, out)
	}
	if strings.Contains(string(out), notApart) {
		t.Logf("%s: not on any CPU, nor in a child allowed CPU %d alone", notApart, cpu)
		return
	}
	t.Logf("child on CPU %d alone:\n%s", cpu, out)
}

func testHandleOperations(t *testing.T, ix rseq.Index) {
	a := newHandleArray(3)
	table := make([]*int, 16)
	ha := a.bind(ix, unsafe.Pointer(&table[0]))
	s := ix.Slot()
	copy(a.handles(s), []uint32{10, 11, 12}) // all free: f = e = 0

	want := func(step string, f, e uint32, hs ...uint32) {
		t.Helper()
		gf, ge := a.fe(s)
		if gf != f || ge != e {
			t.Fatalf("%s: f, e = %d, %d, want %d, %d", step, gf, ge, f, e)
		}
		for i, h := range hs {
			if h != 0 && a.handles(s)[i] != h {
				t.Fatalf("%s: handles %v, want %v (0: any)", step, a.handles(s), hs)
			}
		}
	}
	take := func(wantH uint32, wantV *int) {
		t.Helper()
		if v := rseq.TakeHandle(&ha); (*int)(v) != wantV {
			t.Fatalf("TakeHandle = %p; want %p (handle %d's)", v, wantV, wantH)
		}
	}
	claim := func(wantH uint32) {
		t.Helper()
		slot, h, ok := rseq.ClaimHandle(&ha)
		if slot != s || !ok || h != wantH {
			t.Fatalf("ClaimHandle = slot %d, %d, %v; want slot %d, %d, true", slot, h, ok, s, wantH)
		}
	}
	put := func(h uint32, wantOK bool) {
		t.Helper()
		if slot, ok := rseq.PutHandle(&ha, h); slot != s || ok != wantOK {
			t.Fatalf("PutHandle(%d) = slot %d, %v; want slot %d, %v", h, slot, ok, s, wantOK)
		}
	}

	if v := rseq.TakeHandle(&ha); v != nil {
		t.Fatalf("TakeHandle from an empty slot = %p", v)
	}
	put(7, false) // no hole
	want("start", 0, 0, 10, 11, 12)
	claim(10)
	claim(11)
	claim(12)
	want("three claims", 0, 3)
	if _, _, ok := rseq.ClaimHandle(&ha); ok {
		t.Fatal("ClaimHandle succeeded with no free handle")
	}
	x, y, z := new(int), new(int), new(int)
	table[10], table[12], table[11] = x, y, z
	put(10, true)
	put(12, true)
	want("two puts", 2, 3, 10, 12)
	put(11, true)
	want("three puts", 3, 3, 10, 12, 11)
	put(13, false)
	take(11, z)
	want("take", 2, 2, 10, 12, 11)
	restore := func(v *int, wantOK bool) {
		t.Helper()
		if ok := rseq.RestoreHandle(&ha, unsafe.Pointer(v)); ok != wantOK {
			t.Fatalf("RestoreHandle(%p) = %v, want %v", v, ok, wantOK)
		}
	}
	restore(y, false) // the first free handle's entry is z
	want("restore of another value", 2, 2, 10, 12, 11)
	restore(z, true)
	want("restore", 3, 3, 10, 12, 11)
	restore(z, false) // no free handle
	take(11, z)
	want("take after the restore", 2, 2, 10, 12, 11)
	take(12, y)
	take(10, x)
	want("three takes", 0, 0, 10, 12, 11)
	if v := rseq.TakeHandle(&ha); v != nil {
		t.Fatalf("TakeHandle = %p with no full handle", v)
	}

	// Holes: with two handles out, a take moves the handle into the free
	// part past the holes, where the next claim finds it.
	claim(10)
	claim(12)
	want("two claims", 0, 2)
	table[12] = y
	put(12, true)
	want("put into the first hole", 1, 2, 12)
	take(12, y)
	want("take across a hole", 0, 1, 0, 12, 11)
	claim(12)
	claim(11)
	want("claims after the take", 0, 3)

	// A restore across holes: the handle goes to the first hole.
	table[11] = z
	put(11, true)
	want("put", 1, 3, 11)
	take(11, z)
	want("take", 0, 2, 0, 0, 11)
	restore(z, true)
	want("restore into the first hole", 1, 3, 11)
}

// TestHandlesUnderFire runs a pool on the handle operations under fire:
// workers take objects with TakeHandle and give them back with ClaimHandle
// and PutHandle, from more goroutines than CPUs. Every object must be owned
// by one worker at a time, keep its contents through forced GCs, and be
// found exactly once at the end; so must every handle.
func TestHandlesUnderFire(t *testing.T) {
	type object struct {
		id    int
		owner atomic.Int32
		check uint64
	}
	const capacity = 8
	const magic = 0x5eed0f0b1ec7
	a := newHandleArray(capacity)
	slots := rseq.Slots()
	table := make([]*object, capacity*slots)
	ha := a.bind(rseq.ByCPU, unsafe.Pointer(&table[0]))
	// Every slot starts with capacity free handles; objects start with the
	// workers.
	for s := 0; s < slots; s++ {
		for i := range a.handles(s) {
			a.handles(s)[i] = uint32(s*capacity + i)
		}
	}
	var spare struct {
		sync.Mutex
		handles []uint32
		objects []*object
	}
	total := 0
	scenario(t, []string{"takeHandle", "claimHandle", "putHandle", "restoreHandle"}, func(workers, n int) {
		held := make([][]*object, workers)
		for w := range held {
			for range 4 {
				held[w] = append(held[w], &object{id: total, check: uint64(total) ^ magic})
				total++
			}
		}
		parallel(workers, func(w int) {
			mine := held[w]
			for i := 0; i < n; i++ {
				if i%2 == 0 || len(mine) == 0 {
					v := rseq.TakeHandle(&ha)
					if v == nil {
						continue
					}
					o := (*object)(v)
					if !o.owner.CompareAndSwap(0, int32(w+1)) {
						t.Errorf("object %d taken while worker %d owns it", o.id, o.owner.Load()-1)
						return
					}
					if o.check != uint64(o.id)^magic {
						t.Errorf("object %d corrupted: %#x", o.id, o.check)
						return
					}
					mine = append(mine, o)
					continue
				}
				o := mine[len(mine)-1]
				mine = mine[:len(mine)-1]
				o.owner.Store(0)
				// Every other give-back tries the short way first: the
				// handle o came out of, if it is still free here.
				if i%4 == 1 && rseq.RestoreHandle(&ha, unsafe.Pointer(o)) {
					continue
				}
				_, h, ok := rseq.ClaimHandle(&ha)
				if !ok {
					spare.Lock()
					if k := len(spare.handles); k > 0 {
						h, ok = spare.handles[k-1], true
						spare.handles = spare.handles[:k-1]
					}
					spare.Unlock()
				}
				if !ok {
					spare.Lock()
					spare.objects = append(spare.objects, o)
					spare.Unlock()
					continue
				}
				table[h] = o
				if _, ok := rseq.PutHandle(&ha, h); !ok {
					table[h] = nil
					spare.Lock()
					spare.handles = append(spare.handles, h)
					spare.objects = append(spare.objects, o)
					spare.Unlock()
				}
			}
			held[w] = mine
		})
		// What the workers hold joins the spare objects.
		for _, m := range held {
			spare.objects = append(spare.objects, m...)
		}
		for _, o := range spare.objects {
			o.owner.Store(0)
		}
		// Account for every handle and every object.
		handles := make([]int, len(table))
		objects := make([]int, total)
		for s := 0; s < slots; s++ {
			f, e := a.fe(s)
			if f > e || e > capacity {
				t.Fatalf("slot %d: f, e = %d, %d", s, f, e)
			}
			for _, h := range a.handles(s)[:f] {
				handles[h]++
				objects[table[h].id]++
			}
			for _, h := range a.handles(s)[e:] {
				handles[h]++
			}
		}
		for _, h := range spare.handles {
			handles[h]++
		}
		for _, o := range spare.objects {
			objects[o.id]++
		}
		for h, c := range handles {
			if c != 1 {
				t.Fatalf("handle %d found %d times", h, c)
			}
		}
		for id, c := range objects {
			if c != 1 {
				t.Fatalf("object %d found %d times", id, c)
			}
		}
	})
}
