package percpu

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// Value is a sharded value: one T per CPU (plus one for threads without
// rseq), for state that is not a plain integer, such as histograms, maps
// of counters or accumulators. It follows the shape proposed for
// sync.Sharded in golang/go#18802: Update changes the calling CPU's shard,
// Range visits every shard (to read them, merge them or reset them).
//
// Update takes the shard's lock with a restartable section, the per-CPU
// spinlock of the kernel's rseq tests: the lock word goes from 0 to 1 only
// if the thread still runs on that shard's CPU, with no atomic
// instruction; it is released with a store of 0 (release-ordered). One
// call (rseq.CompareAndStoreCPU) reads the CPU, finds the shard and takes
// its lock. An uncontended Update costs that call, the call of the
// function given and the release. Two
// goroutines contend for a shard only when one was descheduled or moved
// while holding it; the other then spins briefly and yields.
//
// Range takes each shard's lock from outside: it stores 2 into the free
// lock word (rseq.CompareAndStoreRemote), fences the CPU (rseq.Fence, one
// membarrier system call per shard) so that no section that saw the word
// free can still take it, and checks that the word still holds 2. Range
// is therefore much slower than Update (microseconds per shard): call it
// to read or merge, not on the hot path. While Range holds a shard's lock
// it asks the kernel for a time-slice extension (rseq.SliceRequest), where
// the kernel offers them, so that the updaters of that CPU do not wait for
// a thread that was scheduled out.
//
// Memory: rseq.Slots() shards of sizeof(T) + 128 bytes each, plus about
// 300 bytes.
//
// T is an ordinary Go value: it may hold pointers, maps and slices, and
// the function given to Update or Range may do anything with it except
// call Update or Range on the same Value (the shard's lock is held and is
// not reentrant) and block for long (other updaters on that CPU wait).
//
// The zero Value is ready to use: its shards hold the zero T, made on first
// use. NewValue gives them other initial values.
type Value[T any] struct {
	st atomic.Pointer[valueState[T]] // nil until first use of a zero Value
	mu sync.Mutex                    // serializes Range and the set-up
}

type valueState[T any] struct {
	// Every Update loads these: the padding keeps them off the cache
	// lines of whatever the allocator puts beside them (in the benchmark,
	// the testing.PB that another goroutine writes at every iteration,
	// which doubled Update's cost on two goroutines in four runs of six).
	_      [line]byte
	shards []valueShard[T]
	fenced bool // false: locked mode (see fenced)
	_      [line]byte
}

type valueShard[T any] struct {
	// lock is the shard's lock word: 0 free, 1 held by an updater on the
	// shard's CPU, 2 held by a reader from outside. Sections store only
	// 1 into it.
	lock uintptr
	v    T
	_    [line - 8]byte // keeps the next shard's lock off v's lines
}

// rseq.CompareAndStoreCPU locks the word at the start of the shard: lock
// must stay the first field (this fails to compile otherwise).
const _ = -uint(unsafe.Offsetof(valueShard[byte]{}.lock))

const (
	unlocked   = 0
	lockedHere = 1
	lockedFar  = 2
)

// NewValue returns a Value whose shards are made by init (the zero T if
// init is nil).
func NewValue[T any](init func(*T)) *Value[T] {
	v := &Value[T]{}
	v.st.Store(newValueState(init))
	return v
}

func newValueState[T any](init func(*T)) *valueState[T] {
	st := &valueState[T]{shards: make([]valueShard[T], rseq.Slots()), fenced: fenced()}
	if init != nil {
		for i := range st.shards {
			init(&st.shards[i].v)
		}
	}
	return st
}

// state returns the Value's shards, setting a zero Value up first.
func (v *Value[T]) state() *valueState[T] {
	if st := v.st.Load(); st != nil {
		return st
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if st := v.st.Load(); st != nil {
		return st
	}
	st := newValueState[T](nil)
	v.st.Store(st)
	return st
}

// Update calls f with the calling CPU's shard, holding that shard's lock.
// f runs on the shard of the CPU where the lock was taken; the goroutine
// may move to another CPU while f runs, and the shard stays locked (and
// consistent) all the same.
func (v *Value[T]) Update(f func(*T)) {
	sh := v.state().lock()
	defer setWord(&sh.lock, unlocked) // release: f's stores come first
	f(&sh.v)
}

// lock takes the lock of the calling CPU's shard.
func (v *valueState[T]) lock() *valueShard[T] {
	if !v.fenced {
		return v.lockAtomic()
	}
	// One call takes the calling CPU's shard: the lock word is the first
	// word of each shard, and the shards are the per-CPU array.
	base, stride := unsafe.Pointer(&v.shards[0]), unsafe.Sizeof(v.shards[0])
	tries := 0
	for {
		if slot, ok := rseq.CompareAndStoreCPU(base, stride, unlocked, lockedHere); ok {
			return &v.shards[slot]
		}
		backoff(&tries)
	}
}

// lockAtomic is lock in locked mode: an atomic compare-and-swap on the
// shard of the CPU the thread runs on (any shard would be correct).
func (v *valueState[T]) lockAtomic() *valueShard[T] {
	tries := 0
	for {
		slot := rseq.CPU()
		if slot >= len(v.shards) {
			slot = len(v.shards) - 1
		}
		sh := &v.shards[slot]
		if rseq.CompareAndStoreRemote(&sh.lock, unlocked, lockedHere) {
			return sh
		}
		backoff(&tries)
	}
}

// Range calls f with every shard in turn, each under its lock, so f sees
// every shard in a consistent state and may read, merge or change it.
// Updates to shards not being visited go on meanwhile: the shards together
// are not a snapshot. Calls of Range are serialized.
//
// Range returns an error, and stops, only if it cannot exclude the
// restartable sections of a CPU (the membarrier system call refused after
// the Value was made): the shards visited before were visited, the others
// were not touched, and the Value stays usable.
func (v *Value[T]) Range(f func(*T)) error {
	st := v.state()
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range st.shards {
		sh := &st.shards[i]
		if _, err := lockRemote(&sh.lock, i, st.fenced,
			func(w uintptr) bool { return w == unlocked },
			func(uintptr) uintptr { return lockedFar }); err != nil {
			return err
		}
		// Updaters on that CPU wait while the lock is held here: ask the
		// kernel not to schedule this thread out meanwhile.
		s := rseq.SliceRequest()
		f(&sh.v)
		unlockRemote(&sh.lock, lockedFar, unlocked)
		s.End()
	}
	return nil
}

// Merge folds every shard into one result: it calls merge(&acc, shard) for
// each shard under its lock, starting from the zero R. Its error is
// Range's: the result then covers only the shards visited.
func Merge[T, R any](v *Value[T], merge func(acc *R, shard *T)) (R, error) {
	var acc R
	err := v.Range(func(s *T) { merge(&acc, s) })
	return acc, err
}
