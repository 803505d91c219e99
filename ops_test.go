//go:build linux

package rseq_test

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/stress"
	"github.com/gorseq/rseq/internal/testenv"
	"golang.org/x/sys/unix"
)

// The kernel's param_test scenarios (tools/testing/selftests/rseq), written
// for this package: per-CPU increment, spinlock, list, pointer buffer and
// memcpy buffer. Each runs many goroutines (more than GOMAXPROCS, which is
// above the CPU count) under fire — a fast CPU profile, an affinity storm,
// forced GCs, thread churn and a signal storm — and checks exact end
// results. Where the process runs sections, each scenario runs until every
// section it uses has been aborted a minimum number of times (see
// abortFloor), so that each section's abort path runs many times, at many
// of its instructions, under load.

const lineSize = 128

type paddedWord struct {
	v uintptr
	_ [lineSize - 8]byte
}

type paddedInt struct {
	n int64
	_ [lineSize - 8]byte
}

func workers() int { return 4*runtime.NumCPU() + 3 }

func opsPerWorker() int {
	if testing.Short() {
		return 20_000
	}
	return 200_000
}

func sectionStats() map[string]rseq.SectionStats {
	m := map[string]rseq.SectionStats{}
	for _, s := range rseq.Stats() {
		m[s.Name] = s
	}
	return m
}

// Abort floors: how many times each section a scenario uses must have been
// aborted before the scenario ends.
const (
	// hostFloor and hostShortFloor apply on real CPUs (virtual ones
	// under KVM included), without and with -short.
	hostFloor      = 100
	hostShortFloor = 25
	// qemuFloor applies under qemu's TCG (GORSEQ_QEMU=1) to the sections
	// with a branch inside; see testenv.Abortable.
	qemuFloor = 3
)

// underQemu reports whether the test runs in a qemu guest (TCG).
func underQemu() bool { return testenv.InQemu() }

// abortFloor returns the aborts section must reach in a scenario.
func abortFloor(section string) int {
	switch {
	case !testenv.Abortable(section):
		return 0
	case underQemu():
		return qemuFloor
	case testing.Short():
		return hostShortFloor
	}
	return hostFloor
}

// scenarioLimit bounds a scenario's time: the floors are normally reached
// well before (on the 2-core CI machine, 10 to 800 aborts per second and
// section: the sections that take a small part of their scenario's loop,
// claimHandle, cmp2Store, pop, are interrupted least often).
//
// A TCG guest sharing the two host cores with another guest is far slower,
// and its floor is a target (see scenario): there a scenario stops at
// qemuEnough once each of its sections has aborted, and at scenarioLimit
// in any case. On the CI machine putHandle once took 2 aborts in 25 s
// (arm64/6.12) and cmpStore 2 in a minute (TestParamList, arm64/7.3).
func scenarioLimit() time.Duration {
	if underQemu() {
		return 60 * time.Second
	}
	return 30 * time.Second
}

// qemuEnough is how long a scenario in a qemu guest goes on for its
// target once each of its sections has aborted once.
const qemuEnough = 20 * time.Second

// scenario runs batch (each call: every worker does n operations) under fire
// until each named section has been aborted abortFloor times, or for at
// most scenarioLimit, and returns the number of batches run. It logs the
// aborts of each section against its floor, and fails the test for a
// section below its floor: its abort path was not tested enough.
//
// Under qemu (GORSEQ_QEMU=1) every scenario runs at least three batches
// and checks its results exactly, and the floor is a target: qemuFloor for
// the sections with an internal branch, 0 for the straight-line ones (add,
// addIndirect), which TCG cannot interrupt (see testenv.Abortable). A
// scenario short of its target logs it; the test binary then requires
// every targeted section to have aborted over the whole run (ledger, in
// main_test.go).
func scenario(t *testing.T, sections []string, batch func(workers, n int)) int {
	t.Helper()
	before := sectionStats()
	stop := stress.Start(t, stress.Options{})
	start := time.Now()
	limit := scenarioLimit()
	batches := 0
	// reached reports whether every section has aborted min(floor, atLeast) times.
	reached := func(atLeast int) bool {
		now := sectionStats()
		for _, s := range sections {
			if now[s].Aborts-before[s].Aborts < uint64(min(abortFloor(s), atLeast)) {
				return false
			}
		}
		return true
	}
	for {
		// The first batch puts worker 0 on the main thread where the
		// binary lends it (testenv.LockMainThread): one batch of
		// fallback mixed with sections is enough, and a goroutine
		// locked to a thread is too slow (every Gosched is a thread
		// hand-off) for the later batches to reach their abort floors.
		mainThreadBatch.Store(batches == 0)
		batch(workers(), opsPerWorker())
		batches++
		took := time.Since(start)
		if !rseq.Features().Operations || took > limit {
			break
		}
		if !underQemu() && reached(math.MaxInt) {
			break
		}
		if underQemu() && batches >= 3 && (reached(math.MaxInt) || took > qemuEnough && reached(1)) {
			break
		}
	}
	st := stop()
	after := sectionStats()
	t.Logf("%d batches of %d workers x %d operations in %v (fire: %+v)", batches, workers(), opsPerWorker(), time.Since(start).Round(time.Millisecond), st)
	if rseq.Features().Operations {
		ledger.Target(sections...)
	}
	short := false
	for _, s := range sections {
		a, f := after[s].Aborts-before[s].Aborts, after[s].Fallbacks-before[s].Fallbacks
		floor := abortFloor(s)
		t.Logf("section %s: %d aborts (floor %d), %d fallbacks", s, a, floor, f)
		if os.Getenv("GORSEQ_TEST_REPORT_FALLBACKS") != "" {
			fmt.Printf("FALLBACKS %s %d\n", s, f)
		}
		if os.Getenv("GORSEQ_TEST_REPORT_ABORTS") != "" {
			fmt.Printf("ABORTS %s %s %d %d\n", t.Name(), s, a, floor)
		}
		switch {
		case !rseq.Features().Operations || a >= uint64(floor):
		case underQemu():
			short = true
			t.Logf("section %s aborted %d times under fire in %v, short of its qemu target of %d (the run must abort it)", s, a, limit, floor)
		default:
			t.Errorf("section %s aborted %d times under fire in %v, below its floor of %d: its abort path is not tested enough", s, a, limit, floor)
		}
	}
	if short {
		ledger.Short()
	}
	return batches
}

// mainThreadBatch is set by scenario for its first batch: parallel then
// runs worker 0 on the main thread, where the binary lends it.
var mainThreadBatch atomic.Bool

// parallel runs body(w) for w in [0, workers) on as many goroutines and
// waits for them. In a scenario's first batch, worker 0 runs on the
// process's main thread instead when the test binary lends it
// (mainThread).
func parallel(workers int, body func(w int)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		run := func() {
			defer wg.Done()
			body(w)
		}
		if w == 0 && mainThreadBatch.Swap(false) {
			mainThread.Go(run)
		} else {
			go run()
		}
	}
	wg.Wait()
}

func TestParamIncrement(t *testing.T) {
	for _, ix := range []rseq.Index{rseq.ByCPU, rseq.ByConcurrencyID} {
		t.Run(ix.String(), func(t *testing.T) {
			slots := make([]paddedInt, rseq.Slots())
			var want int64
			batches := scenario(t, []string{"add"}, func(workers, n int) {
				parallel(workers, func(int) {
					for range n {
						s := rseq.Add(unsafe.Pointer(&slots[0]), lineSize, ix, 1)
						if s < 0 || s >= rseq.Slots() {
							panic("slot out of range")
						}
					}
				})
				want += int64(workers * n)
			})
			var got int64
			for i := range slots {
				got += atomic.LoadInt64(&slots[i].n)
			}
			if got != want {
				t.Fatalf("sum %d after %d batches, want %d (lost or doubled %d)", got, batches, want, want-got)
			}
		})
	}
}

func TestAddIndirect(t *testing.T) {
	type target struct {
		pad int64
		n   int64
		_   [lineSize - 16]byte
	}
	targets := make([]target, rseq.Slots())
	ptrs := make([]paddedWord, rseq.Slots())
	for i := range ptrs {
		ptrs[i].v = uintptr(unsafe.Pointer(&targets[i]))
	}
	var want int64
	scenario(t, []string{"addIndirect"}, func(workers, n int) {
		parallel(workers, func(int) {
			for range n {
				rseq.AddIndirect(unsafe.Pointer(&ptrs[0]), lineSize, rseq.ByCPU, unsafe.Offsetof(targets[0].n), 2)
			}
		})
		want += int64(2 * workers * n)
	})
	var got int64
	for i := range targets {
		got += atomic.LoadInt64(&targets[i].n)
	}
	runtime.KeepAlive(targets)
	if got != want {
		t.Fatalf("sum %d, want %d", got, want)
	}
}

// lockSlot takes the calling CPU's spinlock with a compare-and-store
// section and returns the slot locked. A thread that finds the lock held
// tries 64 times before it yields (the holder may have moved to another
// CPU, and release the lock any moment): the retries keep threads inside
// the section often enough for the fire to abort it, where yielding at
// once left the abort rate to chance (25 aborts took from 0.3 to 30 s).
func lockSlot(locks []paddedWord) int {
	for spins := 0; ; spins++ {
		s := rseq.ByCPU.Slot()
		switch rseq.CompareAndStore(rseq.ByCPU, s, &locks[s].v, 0, 1) {
		case rseq.Committed:
			return s
		case rseq.CompareFailed:
			if spins%64 == 63 {
				runtime.Gosched() // the holder was preempted on this CPU
			}
		}
	}
}

func TestParamSpinlock(t *testing.T) {
	locks := make([]paddedWord, rseq.Slots())
	counts := make([]paddedInt, rseq.Slots())
	var want int64
	scenario(t, []string{"cmpStore"}, func(workers, n int) {
		parallel(workers, func(int) {
			for range n {
				s := lockSlot(locks)
				counts[s].n++ // plain: the per-CPU lock protects it
				atomic.StoreUintptr(&locks[s].v, 0)
			}
		})
		want += int64(workers * n)
	})
	var got int64
	for i := range counts {
		got += counts[i].n
	}
	if got != want {
		t.Fatalf("spinlock-protected sum %d, want %d", got, want)
	}
}

type listNode struct {
	next uintptr // address of the next node, 0 at the end
	held atomic.Int32
	_    [lineSize - 12]byte
}

func TestParamList(t *testing.T) {
	nodes := make([]listNode, 4*rseq.Slots()+64)
	heads := make([]paddedWord, rseq.Slots())
	base := uintptr(unsafe.Pointer(&nodes[0]))
	index := func(a uintptr) int { return int((a - base) / unsafe.Sizeof(nodes[0])) }
	for i := range nodes {
		s := i % rseq.Slots()
		nodes[i].next = heads[s].v
		heads[s].v = uintptr(unsafe.Pointer(&nodes[i]))
	}
	var dups atomic.Int64
	scenario(t, []string{"pop", "cmpStore"}, func(workers, n int) {
		parallel(workers, func(int) {
			for range n {
				_, head, ok := rseq.Pop(unsafe.Pointer(&heads[0]), lineSize, rseq.ByCPU, 0, 0)
				if !ok {
					runtime.Gosched()
					continue
				}
				nd := &nodes[index(head)]
				if !nd.held.CompareAndSwap(0, 1) {
					dups.Add(1) // popped twice
				}
				nd.held.Store(0)
				for { // push it on the list of the CPU we are on now
					s := rseq.ByCPU.Slot()
					old := atomic.LoadUintptr(&heads[s].v)
					atomic.StoreUintptr(&nd.next, old)
					if rseq.CompareAndStore(rseq.ByCPU, s, &heads[s].v, old, head) == rseq.Committed {
						break
					}
				}
			}
		})
	})
	if d := dups.Load(); d != 0 {
		t.Errorf("%d nodes were popped while another goroutine held them", d)
	}
	seen := make([]int, len(nodes))
	total := 0
	for s := range heads {
		for a := heads[s].v; a != 0; a = nodes[index(a)].next {
			seen[index(a)]++
			if total++; total > len(nodes) {
				t.Fatal("a list has a cycle")
			}
		}
	}
	for i, c := range seen {
		if c != 1 {
			t.Errorf("node %d is on the lists %d times", i, c)
		}
	}
	runtime.KeepAlive(nodes)
}

const bufferCap = 1024

type ptrBuffer struct {
	count uintptr
	_     [lineSize - 8]byte
	items [bufferCap]uintptr
}

func (b *ptrBuffer) push(ix rseq.Index, bufs []ptrBuffer, item uintptr) bool {
	for {
		s := ix.Slot()
		b := &bufs[s]
		n := atomic.LoadUintptr(&b.count)
		if n == bufferCap {
			return false
		}
		if rseq.StoreThenCommit(ix, s, &b.count, n, &b.items[n], item, n+1) == rseq.Committed {
			return true
		}
	}
}

func popBuffer(ix rseq.Index, bufs []ptrBuffer) (uintptr, bool) {
	for {
		s := ix.Slot()
		b := &bufs[s]
		n := atomic.LoadUintptr(&b.count)
		if n == 0 {
			return 0, false
		}
		item := atomic.LoadUintptr(&b.items[n-1])
		if rseq.CompareBothAndStore(ix, s, &b.count, n, &b.items[n-1], item, n-1) == rseq.Committed {
			return item, true
		}
	}
}

func TestParamBuffer(t *testing.T) {
	bufs := make([]ptrBuffer, rseq.Slots())
	const items = 512
	for i := 1; i <= items; i++ {
		b := &bufs[i%rseq.Slots()]
		b.items[b.count] = uintptr(i)
		b.count++
	}
	var lost atomic.Int64
	scenario(t, []string{"storeCommit", "cmp2Store"}, func(workers, n int) {
		parallel(workers, func(int) {
			for range n {
				item, ok := popBuffer(rseq.ByCPU, bufs)
				if !ok {
					runtime.Gosched()
					continue
				}
				if !(*ptrBuffer).push(nil, rseq.ByCPU, bufs, item) {
					lost.Add(1)
				}
			}
		})
	})
	if l := lost.Load(); l != 0 {
		t.Fatalf("%d items found a full buffer", l)
	}
	seen := make([]int, items+1)
	for s := range bufs {
		for i := uintptr(0); i < bufs[s].count; i++ {
			seen[bufs[s].items[i]]++
		}
	}
	for i := 1; i <= items; i++ {
		if seen[i] != 1 {
			t.Errorf("item %d is in the buffers %d times", i, seen[i])
		}
	}
}

// record is copied whole by the memcpy scenario; check ties its fields so
// a torn copy shows.
type record struct{ id, a, b, check uint64 }

func (r *record) sum() uint64 { return r.id*0x9e3779b97f4a7c15 ^ r.a ^ r.b*31 }

type recBuffer struct {
	count uintptr
	_     [lineSize - 8]byte
	recs  [256]record
}

func TestParamMemcpy(t *testing.T) {
	bufs := make([]recBuffer, rseq.Slots())
	const nrec = 200
	for i := 1; i <= nrec; i++ {
		b := &bufs[i%rseq.Slots()]
		r := record{id: uint64(i), a: uint64(i) << 20, b: uint64(i) * 7}
		r.check = r.sum()
		b.recs[b.count] = r
		b.count++
	}
	size := unsafe.Sizeof(record{})
	var torn, full atomic.Int64
	scenario(t, []string{"copyCommit"}, func(workers, n int) {
		parallel(workers, func(w int) {
			var r record
			for range n {
				// pop: copy the last record out, then commit count-1
				got := false
				for {
					s := rseq.ByCPU.Slot()
					b := &bufs[s]
					c := atomic.LoadUintptr(&b.count)
					if c == 0 {
						break
					}
					if rseq.CopyThenCommit(rseq.ByCPU, s, &b.count, c, unsafe.Pointer(&r), unsafe.Pointer(&b.recs[c-1]), size, c-1) == rseq.Committed {
						got = true
						break
					}
				}
				if !got {
					runtime.Gosched()
					continue
				}
				if r.check != r.sum() {
					torn.Add(1)
				}
				r.a, r.b = r.b, r.a // change the record, keep it valid
				r.check = r.sum()
				for { // push: copy the record in, then commit count+1
					s := rseq.ByCPU.Slot()
					b := &bufs[s]
					c := atomic.LoadUintptr(&b.count)
					if c == uintptr(len(b.recs)) {
						full.Add(1)
						break
					}
					if rseq.CopyThenCommitRelease(rseq.ByCPU, s, &b.count, c, unsafe.Pointer(&b.recs[c]), unsafe.Pointer(&r), size, c+1) == rseq.Committed {
						break
					}
				}
			}
		})
	})
	if n := torn.Load(); n != 0 {
		t.Errorf("%d torn records", n)
	}
	if n := full.Load(); n != 0 {
		t.Fatalf("%d records met a full buffer", n)
	}
	seen := make([]int, nrec+1)
	for s := range bufs {
		for i := uintptr(0); i < bufs[s].count; i++ {
			r := &bufs[s].recs[i]
			if r.check != r.sum() {
				t.Errorf("torn record in slot %d at %d: %+v", s, i, *r)
			}
			if r.id >= 1 && r.id <= nrec {
				seen[r.id]++
			}
		}
	}
	for i := 1; i <= nrec; i++ {
		if seen[i] != 1 {
			t.Errorf("record %d is in the buffers %d times", i, seen[i])
		}
	}
}

// TestFenceAbortsRunningSections checks that Fence reaches sections running
// on its CPU: a goroutine pinned to one CPU adds in a loop while another,
// pinned to a second CPU, fences the first; the fences must add far more
// aborts than the same run has without them.
func TestFenceAbortsRunningSections(t *testing.T) {
	if err := rseq.Fence(-1); err == nil {
		t.Error("Fence(-1) succeeded")
	}
	if err := rseq.Fence(rseq.PossibleCPUs()); err == nil {
		t.Error("Fence(PossibleCPUs()) succeeded")
	}
	if !rseq.Features().Operations {
		if err := rseq.FenceAll(); err != nil {
			t.Fatalf("FenceAll without sections: %v", err)
		}
		t.Skip("no sections: " + rseq.Features().OperationsReason)
	}
	if err := rseq.FenceAll(); err != nil {
		t.Fatal(err)
	}
	cpus := cpusAllowed(t)
	if len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	target, other := cpus[0], cpus[1]
	pin := func(cpu int) {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Error(err)
		}
	}
	slots := make([]paddedInt, rseq.Slots())
	run := func(fence bool) uint64 {
		before := sectionStats()["add"].Aborts
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			pin(target) // the thread exits with the goroutine
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 1000 {
					rseq.Add(unsafe.Pointer(&slots[0]), lineSize, rseq.ByCPU, 1)
				}
			}
		}()
		fin := make(chan struct{})
		go func() {
			defer close(fin)
			pin(other)
			deadline := time.Now().Add(200 * time.Millisecond)
			for time.Now().Before(deadline) {
				if !fence {
					time.Sleep(time.Millisecond)
					continue
				}
				if err := rseq.Fence(target); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		<-fin
		close(stop)
		<-done
		return sectionStats()["add"].Aborts - before
	}
	var quiet, fenced uint64
	for range 3 { // alternate, so that load from elsewhere hits both alike
		quiet += run(false)
		fenced += run(true)
	}
	t.Logf("aborts on CPU %d: %d without fences, %d with fences from CPU %d", target, quiet, fenced, other)
	if underQemu() { // TCG cannot interrupt add: see testenv.Abortable
		return
	}
	if fenced < quiet+quiet/2+100 {
		t.Errorf("fences did not abort running sections: %d aborts with fences, %d without", fenced, quiet)
	}
}
