// Package percpu provides per-CPU data structures for Go programs, built on
// the restartable-sequence operations of package rseq: counters, sharded
// values, object pools, bounded buffers and record logs whose updates run
// on the calling thread's CPU without atomic instructions and without
// contention between CPUs.
//
// Every structure here keeps one shard per slot of a per-CPU array
// (rseq.Slots(): one per possible CPU, plus the shared slot used by threads
// that cannot run restartable sections). An update touches only the shard
// of the CPU it runs on. Readers that must see or take out everything
// (Counter.Load, Value.Range, Buffer.Drain, Log.Drain) visit all shards;
// those that must exclude updaters take each shard's commit word from
// outside with rseq.CompareAndStoreRemote and make it final with
// rseq.Fence, the membarrier rseq fence, as package rseq documents.
//
// Where the process runs no restartable sections (rseq.Features().Operations
// false, GORSEQ=off, the race detector) every structure gives the same
// results through package rseq's lock-based fallback.
//
// Rules kept throughout: words written by the restartable sections (counts,
// lock words, list heads, buffer entries) live in pointer-free memory owned
// by the structure, never in Go pointer variables; Go pointers (Pool's
// objects, Value's T) are written only by ordinary Go code, by the goroutine
// that owns the shard or handle at that moment.
//
// Memory: each shard is padded to 128 bytes (two cache lines, the unit the
// adjacent-line prefetcher of x86 pulls in), so a structure costs at least
// 128 * rseq.Slots() bytes; the figures are stated with each type.
//
// Cost, in restartable sections (each a few nanoseconds: about 2.5 ns for
// Counter.Add on the 2-core x86-64 machine this was developed on, where an
// uncontended atomic add took 6 to 10 ns), with the medians measured there
// by this package's benchmarks:
//
//	Counter.Add          1 section, inlined          2.6 ns
//	Counter.Load         rseq.Slots() loads          2.1 ns (2 CPUs)
//	Value.Update         1 section + release store   9.7 ns, with the call of f
//	Pool.Get + Put       3 sections                  12 ns (sync.Pool: 11 ns)
//	Buffer.Push + Pop    2 sections                  13 ns
//	Log.Append           1 section + copy            12.5 ns (32-byte fixed records)
//	                                                 27 ns (variable size)
//	Value.Range          1 membarrier system call per CPU
//	Buffer, Log .Drain   1 membarrier system call per CPU holding data
//
// The bench module of the source tree (run it with `rseq bench`) compares
// them with sync/atomic, sync.Pool, mutexes, per-P sharding and a C
// per-CPU counter.
package percpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// line is the padding unit between shards: two 64-byte cache lines. It is
// also rseq.CPUStride, the stride of the per-CPU sections (AddCPU,
// AddFloat64CPU, IncCPUIfZero) that Counter, Float64Counter and RWMutex
// call on their shards; the constant below fails to compile otherwise.
const line = 128

const _ = uint(line-rseq.CPUStride) + uint(rseq.CPUStride-line)

// words allocates pointer-free memory for n shards of stride bytes each,
// aligned to line, and returns the memory (to keep alive) and its aligned
// start.
func words(n int, stride uintptr) ([]uint64, unsafe.Pointer) {
	mem := make([]uint64, (uintptr(n)*stride+line)/8)
	p := unsafe.Pointer(&mem[0])
	pad := (line - uintptr(p)%line) % line
	return mem, unsafe.Add(p, pad)
}

// word returns the uintptr at base + i*stride.
func word(base unsafe.Pointer, i int, stride uintptr) *uintptr {
	return (*uintptr)(unsafe.Add(base, uintptr(i)*stride))
}

// zeroUse panics for a method called on the zero value of a type that
// needs its constructor.
func zeroUse(typ, ctor string) {
	panic("percpu: " + typ + " used without " + ctor + ": the zero " + typ + " has no shards")
}

// backoff waits a little before retrying a lock held by someone else: a few
// spins, then a yield to the scheduler (the holder may be a goroutine that
// was descheduled while holding it).
func backoff(tries *int) {
	*tries++
	if *tries < 16 {
		for i := 0; i < 1<<*tries && i < 64; i++ {
			spinHint()
		}
		return
	}
	runtime.Gosched()
}

//go:noinline
func spinHint() {}

// lockRemote takes the commit word v of slot from outside its CPU: it
// replaces the word's current value w (for which ok(w) must hold) by
// locked(w), a value no restartable section stores, and makes sure no
// section that read the old value can still commit. It returns w. With
// fences, callers take turns among themselves (each structure holds a
// mutex around its remote lockers), because the re-check after the fence
// tells only whether a section overwrote the locked value.
//
// If the fence fails (membarrier refused after the structure was made: a
// seccomp filter installed later, say), lockRemote gives the word back and
// returns the error: sections on that CPU could not be excluded, so the
// caller must not touch what the word guards. The structure stays as it
// was, and usable.
//
// In locked mode (withFence false) no section stores into the word, the
// compare-and-store alone decides between contending lockers, the fence is
// skipped and no error is possible (see lockLocal).
func lockRemote(v *uintptr, slot int, withFence bool, ok func(uintptr) bool, locked func(uintptr) uintptr) (uintptr, error) {
	tries := 0
	for {
		w := atomic.LoadUintptr(v)
		if !ok(w) {
			backoff(&tries)
			continue
		}
		if !rseq.CompareAndStoreRemote(v, w, locked(w)) {
			continue
		}
		if !withFence {
			return w, nil
		}
		if slot != rseq.SharedSlot() {
			// Sections that read w before the store are now finished or
			// restarted. The shared slot needs no fence: only the
			// fallback, under the same lock, touches it.
			if err := fenceCPU(slot); err != nil {
				// Give the word back, unless a section already committed
				// over our store (the word is then the section's).
				rseq.CompareAndStoreRemote(v, locked(w), w)
				return w, fmt.Errorf("percpu: cannot exclude the restartable sections of CPU %d: %w", slot, err)
			}
		}
		if atomic.LoadUintptr(v) == locked(w) {
			return w, nil
		}
		// A section that had read w committed over our store: the
		// word belongs to it now. Try again.
	}
}

// lockLocal is lockRemote in locked mode, which cannot fail.
func lockLocal(v *uintptr, slot int, ok func(uintptr) bool, locked func(uintptr) uintptr) uintptr {
	w, _ := lockRemote(v, slot, false, ok, locked)
	return w
}

// unlockRemote releases a word taken by lockRemote, storing w. No section
// stores into a locked word (its comparison fails), so the store cannot
// race with one.
func unlockRemote(v *uintptr, locked, w uintptr) {
	if !rseq.CompareAndStoreRemote(v, locked, w) {
		panic("percpu: remote lock lost") // cannot happen: see lockRemote
	}
}

// fenceCPU is rseq.Fence. It fails only where the kernel lacks the
// membarrier rseq command (before Linux 5.10) or a filter refuses it: the
// structures check fenced() when they are made and work in locked mode
// where it fails then, and return its errors where it starts failing
// later. Tests replace it.
var fenceCPU = rseq.Fence

// fenced reports whether consumers can exclude restartable sections with
// rseq.Fence. Where they cannot, Value, Buffer and Log run in locked mode:
// every update takes its shard's word with rseq.CompareAndStoreRemote (an
// atomic compare-and-swap) instead of a restartable section, so no section
// ever stores into their words and no fence is needed. The shards stay
// per-CPU; only the atomic instruction is paid.
func fenced() bool {
	if forceLocked.Load() {
		return false
	}
	return fenceWorks()
}

var fenceWorks = sync.OnceValue(func() bool {
	return !rseq.Features().Operations || rseq.FenceAll() == nil
})

// forceLocked makes new structures use locked mode (for tests).
var forceLocked atomic.Bool
