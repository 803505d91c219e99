package percpu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// lockBit marks a commit word (a Buffer's count, a Log's tail) taken by a
// consumer. Restartable sections never store a value with this bit set, so
// while it is set every section's comparison fails and only the consumer
// writes the word.
const lockBit = ^(^uintptr(0) >> 1)

func unlockedWord(w uintptr) bool  { return w&lockBit == 0 }
func lockedWord(w uintptr) uintptr { return w | lockBit }

func errorf(f string, a ...any) error { return fmt.Errorf("percpu: "+f, a...) }

// ErrFull is returned when the calling CPU's part of a Buffer or Log has no
// room left; drain it and try again.
var ErrFull = errors.New("percpu: full")

// Buffer is a per-CPU bounded buffer of words (uintptr values: numbers,
// indices or handles, never Go pointers). Push appends to the calling CPU's
// buffer and Pop takes the last entry from it (a per-CPU stack, like the
// kernel's rseq "percpu buffer" test); Drain takes everything out of every
// CPU's buffer.
//
// Push is one restartable section that stores the entry beyond the end of
// the CPU's buffer and commits the new count (rseq.StoreThenCommitRelease);
// Pop checks count and last entry together and commits the smaller count
// (rseq.CompareBothAndStore). Neither uses an atomic instruction.
//
// Drain locks each CPU's count from outside (rseq.CompareAndStoreRemote of
// the count with a lock bit, then rseq.Fence, a membarrier system call, for
// that CPU), copies the entries out and empties the buffer. Pushes and Pops
// on that CPU wait (spin, then yield) while it holds the lock, a few
// microseconds; on kernels that offer it, Drain holds the lock under a
// time-slice extension request (rseq.SliceRequest) so that it is not
// scheduled out meanwhile. Every pushed entry comes out exactly once, from a
// Pop or a Drain; a CPU's entries come out of Drain in push order.
//
// Memory: rseq.Slots() parts of 128 bytes plus the capacity in words
// rounded up to 128 bytes. Make it with NewBuffer: the zero Buffer has no
// storage, and its methods panic naming NewBuffer.
type Buffer struct {
	mem    []uint64 // keeps base alive
	base   unsafe.Pointer
	stride uintptr
	cap    int
	fenced bool
	mu     sync.Mutex // serializes Drain
}

// NewBuffer returns a Buffer that holds up to perCPU entries for each CPU.
func NewBuffer(perCPU int) (*Buffer, error) {
	if perCPU <= 0 || perCPU > 1<<24 {
		return nil, errorf("NewBuffer: capacity %d per CPU out of range [1, %d]", perCPU, 1<<24)
	}
	b := &Buffer{cap: perCPU, fenced: fenced()}
	b.stride = line + (uintptr(perCPU)*8+line-1)/line*line
	b.mem, b.base = words(rseq.Slots(), b.stride)
	return b, nil
}

// Cap returns the capacity of each CPU's buffer.
func (b *Buffer) Cap() int { return b.cap }

func (b *Buffer) count(slot int) *uintptr { return word(b.base, slot, b.stride) }

// check panics for the zero Buffer.
func (b *Buffer) check() {
	if b.base == nil {
		zeroUse("Buffer", "NewBuffer")
	}
}

func (b *Buffer) entry(slot int, i uintptr) *uintptr {
	return (*uintptr)(unsafe.Add(b.base, uintptr(slot)*b.stride+line+i*8))
}

// Push appends e to the calling CPU's buffer. It returns ErrFull, and
// stores nothing, when that buffer holds Cap entries.
func (b *Buffer) Push(e uintptr) error {
	b.check()
	if !b.fenced {
		return b.pushLocked(e)
	}
	tries := 0
	for {
		slot := rseq.ByCPU.Slot()
		c := b.count(slot)
		n := atomic.LoadUintptr(c)
		if !unlockedWord(n) {
			backoff(&tries) // a Drain holds this CPU's buffer
			continue
		}
		if n >= uintptr(b.cap) {
			return ErrFull
		}
		if rseq.StoreThenCommitRelease(rseq.ByCPU, slot, c, n, b.entry(slot, n), e, n+1) == rseq.Committed {
			return nil
		}
		// Moved, or another thread of this CPU got there first.
	}
}

// Pop removes and returns the entry pushed last on the calling CPU, or
// reports false when that CPU's buffer is empty (other CPUs' buffers may
// hold entries: Drain takes those).
func (b *Buffer) Pop() (uintptr, bool) {
	b.check()
	if !b.fenced {
		return b.popLocked()
	}
	tries := 0
	for {
		slot := rseq.ByCPU.Slot()
		c := b.count(slot)
		n := atomic.LoadUintptr(c)
		if !unlockedWord(n) {
			backoff(&tries)
			continue
		}
		if n == 0 {
			return 0, false
		}
		last := b.entry(slot, n-1)
		e := atomic.LoadUintptr(last)
		// Comparing the entry too rules out a Pop and a Push of a
		// different value between the loads and the section.
		if rseq.CompareBothAndStore(rseq.ByCPU, slot, c, n, last, e, n-1) == rseq.Committed {
			return e, true
		}
	}
}

// Drain appends every CPU's entries to dst, empties the buffers and
// returns the extended slice. It returns an error, and stops, only if it
// cannot exclude the restartable sections of a CPU (the membarrier system
// call refused after the Buffer was made): the entries appended so far are
// out of the buffers, every other entry is still in its buffer, and the
// Buffer stays usable.
func (b *Buffer) Drain(dst []uintptr) ([]uintptr, error) {
	b.check()
	b.mu.Lock()
	defer b.mu.Unlock()
	for slot := 0; slot < rseq.Slots(); slot++ {
		c := b.count(slot)
		if atomic.LoadUintptr(c) == 0 {
			continue // nothing to take; skip the fence
		}
		n, err := lockRemote(c, slot, b.fenced, unlockedWord, lockedWord)
		if err != nil {
			return dst, err
		}
		// Pushes and Pops on that CPU wait while the word is
		// held here: ask the kernel not to schedule this thread out.
		s := rseq.SliceRequest()
		for i := uintptr(0); i < n; i++ {
			dst = append(dst, atomic.LoadUintptr(b.entry(slot, i)))
		}
		unlockRemote(c, lockedWord(n), 0)
		s.End()
	}
	return dst, nil
}

// Len returns the number of entries in all buffers; not a snapshot when
// Pushes run at the same time.
func (b *Buffer) Len() int {
	b.check()
	t := 0
	for slot := 0; slot < rseq.Slots(); slot++ {
		t += int(atomic.LoadUintptr(b.count(slot)) &^ lockBit)
	}
	return t
}

// lockedSlot is the part a thread uses in locked mode: its CPU's.
func lockedSlot() int {
	s := rseq.CPU()
	if s >= rseq.SharedSlot() {
		s = rseq.SharedSlot()
	}
	return s
}

func (b *Buffer) pushLocked(e uintptr) error {
	slot := lockedSlot()
	c := b.count(slot)
	n := lockLocal(c, slot, unlockedWord, lockedWord)
	if n >= uintptr(b.cap) {
		unlockRemote(c, lockedWord(n), n)
		return ErrFull
	}
	atomic.StoreUintptr(b.entry(slot, n), e)
	unlockRemote(c, lockedWord(n), n+1)
	return nil
}

func (b *Buffer) popLocked() (uintptr, bool) {
	slot := lockedSlot()
	c := b.count(slot)
	n := lockLocal(c, slot, unlockedWord, lockedWord)
	if n == 0 {
		unlockRemote(c, lockedWord(n), n)
		return 0, false
	}
	e := atomic.LoadUintptr(b.entry(slot, n-1))
	unlockRemote(c, lockedWord(n), n-1)
	return e, true
}
