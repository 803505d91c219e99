package percpu

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
)

// RWMutex is a reader/writer mutual exclusion lock whose read side scales
// with the number of CPUs: RLock and RUnlock each update only a counter of
// the CPU they run on, with one restartable section and no atomic
// instruction, so readers on different CPUs never touch the same cache line
// while no writer comes. Lock is expensive instead (a membarrier system
// call, see below): use it where reads vastly outnumber writes.
//
// The semantics are sync.RWMutex's: any number of readers or one writer;
// a writer that calls Lock is preferred (once it has announced itself, new
// readers wait for it, so a steady stream of readers cannot starve it), and
// the readers that were waiting for it when it unlocks get the lock before
// the next writer. A blocked Lock call excludes new readers from acquiring
// the lock, so recursive read locking is prohibited, as for sync.RWMutex.
// A locked RWMutex is not associated with a goroutine: one goroutine may
// RLock (Lock) it and another RUnlock (Unlock) it. The zero RWMutex is an
// unlocked mutex, ready to use; an RWMutex must not be copied after first
// use. Unlock of an unlocked RWMutex panics; an RUnlock without its RLock
// corrupts the mutex, undetected.
//
// # How it works
//
// Each CPU has a reader count. RLock is one call, one restartable section,
// rseq.IncCPUIfZero: on the CPU the thread runs on, check that the writer
// word is 0 and commit count+1. RUnlock decrements the count of the CPU it
// runs on then (rseq.AddCPU on amd64; a store-release commit on arm64),
// which may be another CPU: single counts may go negative, their sum is the
// number of readers.
//
// Lock takes a mutex that excludes other writers, sets the writer word, and
// calls rseq.FenceAll: the membarrier system call aborts every restartable
// section running on any CPU, so a reader that read the writer word as 0
// either committed its increment before the fence (and Lock sees it) or
// restarts and sees the writer. Lock then waits, spinning briefly and then
// parking, until the counts sum to zero; the last reader out wakes it.
// Readers that find a writer announced spin briefly and then park until it
// unlocks, without burning CPU; Unlock hands the read lock to every reader
// parked at that moment. While it holds the lock the writer asks the
// kernel not to schedule it out (rseq.SliceRequest, a time-slice extension,
// on kernels that offer it; Unlock ends the request).
//
// Writes that come often switch the mutex to its slow mode, where a
// reader increments its CPU's count of a second array with an atomic
// instruction (still a cache line of its own CPU, not one shared line) and
// then checks the writer word, and Lock needs no fence unless a reader
// still holds the lock after a bounded wait (see rwState.waitReaders). A
// Lock that comes less than 20 µs after the previous Unlock switches to
// slow mode (that switch fences once); one that comes more than 1 ms after
// switches back.
// So the fence is paid only by writes far apart, where it costs little
// per operation. See rwState.announce.
//
// Cost, measured on a 2-CPU x86-64 VM on an AMD Zen 5 host (medians of one
// benchmark run): RLock+RUnlock 6.7 ns in one goroutine (sync.RWMutex: 12.2
// ns), and 4.3 ns per pair with a goroutine on each CPU (sync.RWMutex's
// shared reader count: 27.4 ns). On a Zen 3 host, whose uncontended atomics
// cost 2.4 ns rather than 6.3, sync.RWMutex wins in one goroutine (4.8
// against 10.3 ns) and still loses 6 to 1 with two (30.4 against 4.9). In fast mode Lock costs one membarrier system call
// (MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: an interrupt to every CPU running
// a thread of the process; about 2 µs there) plus a read of every CPU's
// count, besides waiting for the readers; Unlock a few atomic operations,
// and waking readers that parked. With one write in 100 operations the
// mutex runs in slow mode and is about as fast as sync.RWMutex on the Zen 5
// host (11.7 against 12.8 ns in one goroutine, 16.2 against 14.6 in two)
// and half as fast on the Zen 3 host (11.6 against 5.8 in two): it is for
// data written far more rarely than that.
//
// Memory ordering: the read lock is an acquire and RUnlock a release, as
// for sync.RWMutex. RLock's section loads the count with an acquire load;
// on arm64 RLock then loads the writer word again with an acquire load
// (LDAR: the section reads it with a plain load, and a critical section's
// loads must come after the load that saw the last writer gone). RUnlock
// must be a release (the critical section's loads and stores before the
// decrement that lets a writer in): on amd64 every store is a release and
// rseq.AddCPU suffices; elsewhere RUnlock uses rseq.StoreThenCommitRelease,
// whose commit is a store-release (STLR on arm64). RUnlock's decrement
// and its check of the writer word are a store and a load, which a store
// buffer may reorder: a writer that announced itself without a fence
// (slow mode) never parks for good before it has fenced, so that it cannot
// sleep for a reader that left: it first waits for a reader's wake-up for
// at most rwUnorderedWait, and fences only if readers are still counted
// after that (see waitReaders).
//
// Where restartable sections do not run (GORSEQ=off, platforms without
// rseq, the race detector) the same code runs package rseq's fallback, under
// its locks: Lock then takes the fallback's lock of every CPU's count
// instead of the fence, which orders it after every reader that read the
// writer word as 0. A thread that falls back while others run sections (the
// main thread of a PIE binary) uses the shared slot's count, whose lock Lock
// takes after the fence. Where the fence does not work (the membarrier rseq
// command refused when the RWMutex is first used: the locked mode of
// Value), readers use atomic instructions on their CPU's count and check
// the writer word afterwards, undoing their increment if a writer came,
// and Lock needs no fence. All modes give the same results. Under the race
// detector the happens-before edges (Unlock to a later RLock, RUnlock to a
// later Lock) go through sync/atomic operations and mutexes, which the
// detector sees.
//
// Memory: rseq.Slots() counts of 128 bytes each, plus about 500 bytes.
//
// If membarrier starts failing after the RWMutex was first used (a seccomp
// filter installed later), Lock cannot exclude the readers' sections: it
// then gives the mutex back as it was and panics with the error (TryLock
// returns false).
type RWMutex struct {
	st atomic.Pointer[rwState] // nil until first use
	mu sync.Mutex              // serializes the set-up of a zero RWMutex
}

type rwState struct {
	_ [line - 8]byte
	// writer is 0 while no writer has announced itself and readers take
	// their sections; bit 0 (writerBit) is set while a writer has
	// announced itself, bit 1 (slowBit) while the mutex is in its slow
	// mode (see announce). Readers load it in every RLock (in the section)
	// and RUnlock; only writers store it, so its line stays shared
	// between the CPUs.
	writer uintptr
	_      [line - 8]byte

	mem    []uint64       // keeps the counts alive
	counts unsafe.Pointer // rseq.Slots() counts, line bytes apart
	// slowMem and slow are the counts of slow mode's readers, changed
	// only with atomic instructions (counts only by sections, on their
	// CPU, or under the fallback's locks: the two disciplines never meet
	// on one word).
	slowMem []uint64
	slow    unsafe.Pointer
	// lastUnlock is when the last writer unlocked (nanotime), under w.
	lastUnlock int64
	n          int  // rseq.Slots()
	fenced     bool // false: locked mode (see fenced)
	ops        bool // restartable sections run (else the fallback)

	// handoff counts the read locks Unlock gave to parked readers (they
	// release them on a CPU's count); part of the readers' sum. Written by
	// the writer only.
	handoff atomic.Uintptr

	w     sync.Mutex    // excludes writers
	slice rseq.Slice    // the writer's time-slice extension request, under w
	wake  chan struct{} // capacity 1: a reader left while a writer waits
	timer *time.Timer   // under w: bounds an unordered writer's wait (waitReaders)

	rmu      sync.Mutex // guards the parked readers
	rcond    sync.Cond  // on rmu: Unlock broadcasts
	rwaiting atomic.Int32
	gen      uint64 // under rmu: Unlock's count; parked readers wait for a change
}

// Spin limits before parking (tests set them to 0 to force the slow paths).
var (
	rwReaderSpins = 64
	rwWriterSpins = 64
)

// rwUnorderedWait bounds the first wait of a writer that announced itself
// without a fence (see waitReaders): long enough for a woken reader to be
// scheduled and leave, far longer than a store takes to leave a store
// buffer.
var rwUnorderedWait = 50 * time.Microsecond

// fenceAllCPUs is rseq.FenceAll; tests replace it.
var fenceAllCPUs = rseq.FenceAll

func newRWState() *rwState {
	st := &rwState{n: rseq.Slots(), fenced: fenced(), ops: rseq.Features().Operations}
	st.mem, st.counts = words(st.n, line)
	st.slowMem, st.slow = words(st.n, line)
	st.wake = make(chan struct{}, 1)
	st.rcond.L = &st.rmu
	return st
}

// state returns the mutex's state, setting a zero RWMutex up first.
func (m *RWMutex) state() *rwState {
	if st := m.st.Load(); st != nil {
		return st
	}
	return m.setUp()
}

// setUp is state's first use of a zero RWMutex, out of line so that state
// is inlined into RLock and Lock.
func (m *RWMutex) setUp() *rwState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.st.Load(); st != nil {
		return st
	}
	st := newRWState()
	m.st.Store(st)
	return st
}

// count returns CPU slot i's reader count.
func (st *rwState) count(i int) *uintptr { return word(st.counts, i, line) }

// slowCount returns CPU slot i's count of slow-mode readers.
func (st *rwState) slowCount(i int) *uintptr { return word(st.slow, i, line) }

// Bits of the writer word.
const (
	writerBit = 1 // a writer has announced itself
	slowBit   = 2 // slow mode: readers use atomic instructions
)

// rwEpoch is the origin of nanotime.
var rwEpoch = time.Now()

// nanotime returns monotonic nanoseconds since rwEpoch.
func nanotime() int64 { return int64(time.Since(rwEpoch)) }

// Writes often enough make the mutex switch to its slow mode, where Lock
// needs no fence (see announce). A Lock that comes less than rwSlowAfter
// after the previous Unlock switches to it; one that comes more than
// rwFastAfter after switches back. Tests change them.
var (
	rwSlowAfter int64 = 20e3 // ns
	rwFastAfter int64 = 1e6  // ns
)

// RLock locks m for reading. It waits while a writer holds the lock or has
// announced itself (Lock), and must not be used for recursive read locking.
func (m *RWMutex) RLock() {
	st := m.state()
	if !st.fenced {
		st.rlockLocked()
		return
	}
	// In slow mode the section would refuse: skip the call. (In fast mode
	// this load hits the writer word's line, shared read-only between the
	// CPUs while no writer comes.)
	if atomic.LoadUintptr(&st.writer)&slowBit != 0 {
		st.rlockSlow()
		return
	}
	for {
		// One section: the calling CPU's count grows by 1 unless the
		// writer word is set (a writer announced, or slow mode).
		if rseq.IncCPUIfZero(st.counts, &st.writer) {
			acquireAfterRLock(&st.writer)
			return
		}
		w := atomic.LoadUintptr(&st.writer)
		if w&slowBit != 0 {
			st.rlockSlow()
			return
		}
		if w != 0 && st.waitWriter() {
			return // a read lock handed over by Unlock
		}
		// Or the writer left already: try again.
	}
}

// TryRLock tries to lock m for reading without waiting, and reports
// whether it did. It fails while a writer holds the lock or has announced
// itself.
func (m *RWMutex) TryRLock() bool {
	st := m.state()
	if !st.fenced {
		return st.tryAtomic(st.lockedCount())
	}
	for {
		if rseq.IncCPUIfZero(st.counts, &st.writer) {
			acquireAfterRLock(&st.writer)
			return true
		}
		w := atomic.LoadUintptr(&st.writer)
		if w&writerBit != 0 {
			return false
		}
		if w&slowBit != 0 {
			return st.tryAtomic(st.slowCount(st.cpuSlot()))
		}
	}
}

// RUnlock undoes one RLock (or successful TryRLock), on whichever CPU the
// calling thread runs now.
func (m *RWMutex) RUnlock() {
	st := m.st.Load()
	if st == nil {
		fatal("percpu: RUnlock of unlocked RWMutex")
	}
	if st.fenced {
		runlockSection(st)
	} else {
		atomic.AddUintptr(st.lockedCount(), ^uintptr(0))
	}
	st.runlockDone(atomic.LoadUintptr(&st.writer))
}

// runlockDone ends RUnlock, given the writer word as the load after the
// decrement read it: a writer that announced itself may be waiting for
// this reader.
func (st *rwState) runlockDone(w uintptr) {
	if w&writerBit != 0 {
		st.readerLeft()
	}
}

// Lock locks m for writing: it waits until no writer holds the lock, then
// announces itself, which keeps new readers out, and waits until the
// readers holding the lock have released it. It costs a membarrier system
// call besides the waiting.
func (m *RWMutex) Lock() {
	st := m.state()
	st.w.Lock()
	ordered, err := st.announce()
	if err != nil {
		st.release()
		panic("percpu: RWMutex.Lock: " + err.Error())
	}
	st.waitReaders(ordered)
	st.slice = rseq.SliceRequest()
}

// TryLock tries to lock m for writing without waiting for other holders,
// and reports whether it did. Like Lock it costs a membarrier system call,
// except where another holder is seen beforehand.
func (m *RWMutex) TryLock() bool {
	st := m.state()
	if atomic.LoadUintptr(&st.writer)&writerBit != 0 || st.readers() != 0 || !st.w.TryLock() {
		return false
	}
	if _, err := st.announce(); err != nil || st.readers() != 0 {
		st.release()
		return false
	}
	st.slice = rseq.SliceRequest()
	return true
}

// Unlock unlocks m for writing; the readers waiting for the writer get
// the lock. It panics if m is not locked for writing.
func (m *RWMutex) Unlock() {
	st := m.st.Load()
	if st == nil || atomic.LoadUintptr(&st.writer)&writerBit == 0 {
		fatal("percpu: Unlock of unlocked RWMutex")
	}
	s := st.slice
	st.slice = rseq.Slice{}
	st.release()
	// After the release, so that the CPU goes to whoever the kernel had
	// meant it for only once the readers can run (if waking them made a
	// system call, that call already ended the extension).
	s.End()
}

// RLocker returns a sync.Locker whose Lock and Unlock call m.RLock and
// m.RUnlock.
func (m *RWMutex) RLocker() sync.Locker { return (*rlocker)(m) }

type rlocker RWMutex

func (r *rlocker) Lock()   { (*RWMutex)(r).RLock() }
func (r *rlocker) Unlock() { (*RWMutex)(r).RUnlock() }

// fatal panics with msg (the misuse sync.RWMutex reports as a fatal error).
func fatal(msg string) { panic(msg) }

// announce sets the writer bit, in the mode the gap since the last Unlock
// chooses, and excludes the readers: afterwards every reader that took the
// read lock is counted where readers() sees it, and every other sees the
// writer bit. Called with w held.
//
// The modes. In fast mode (the writer word's slowBit clear) readers take
// the read lock with a restartable section on counts, which commits only
// while the writer word is 0, so a writer must fence every CPU
// (excludeReaders: a membarrier system call, microseconds). In slow mode
// (slowBit set) no such section can commit: readers increment slow
// instead, with an atomic instruction, then check the writer bit, undoing
// the increment if it is set; the writer sets the bit (also atomically)
// before it reads the counts, so one of the two sees the other, and Lock
// needs no fence unless it must park for good (waitReaders). The switch
// to slow mode fences once, so that no section that read the word as 0
// before slowBit was set commits afterwards; the switch back needs none
// (the word is not 0 until Unlock clears it).
// RUnlock always decrements counts with a section: any count may go
// negative, the sum of both arrays is what counts.
//
// ordered reports whether every reader's RUnlock is now ordered with the
// writer's reads of the counts (a fence was made, or the mode's locks and
// atomic instructions order them); if not, the writer must fence before
// it parks for good (waitReaders).
func (st *rwState) announce() (ordered bool, err error) {
	if !st.fenced || !st.ops {
		st.setWriter(writerBit)
		return true, st.excludeReaders()
	}
	slow := atomic.LoadUintptr(&st.writer)&slowBit != 0
	gap := nanotime() - st.lastUnlock
	switch {
	case !slow && gap < rwSlowAfter:
		st.setWriter(writerBit | slowBit)
		if err := st.excludeReaders(); err != nil {
			// Not in slow mode: no fence made it safe.
			st.setWriter(writerBit)
			return false, err
		}
		return true, nil
	case slow && gap > rwFastAfter:
		st.setWriter(writerBit)
		return false, nil
	case slow:
		st.setWriter(writerBit | slowBit)
		return false, nil
	}
	st.setWriter(writerBit)
	return true, st.excludeReaders()
}

// setWriter stores the writer word with an atomic swap: a full barrier on
// every architecture, between the store and the loads that follow it
// (readers' counts in Lock, rwaiting in release), each half of a Dekker
// pair whose other half is an atomic read-modify-write and a load. A
// store-release and a later load-acquire (arm64's STLR and LDAR, what
// atomic.StoreUintptr and LoadUintptr are there) are ordered on the
// hardware, but not by every emulator that translates them for an x86
// host; the swap is ordered by all.
func (st *rwState) setWriter(w uintptr) { atomic.SwapUintptr(&st.writer, w) }

// excludeReaders makes sure that every reader that read the writer word
// as 0 has committed its increment where the writer's next reads see it,
// and that all others see the writer word set. The writer word is set.
func (st *rwState) excludeReaders() error {
	switch {
	case !st.fenced:
		// Locked mode: readers check the writer word after their atomic
		// increment, so one of the two sees the other.
	case !st.ops:
		// Every RLock is the fallback's IncCPUIfZero, under the
		// fallback's lock of the count it increments: taking each lock
		// once orders the writer after every reader that held it. The
		// compare-and-swap itself does nothing (0 for 0, if anything).
		for i := 0; i < st.n; i++ {
			rseq.CompareAndStoreRemote(st.count(i), 0, 0)
		}
	default:
		if err := fenceAllCPUs(); err != nil {
			return err
		}
		// The threads without an area (the fallback, on the shared slot)
		// are not reached by the fence: their lock is.
		rseq.CompareAndStoreRemote(st.count(st.n-1), 0, 0)
	}
	return nil
}

// readers returns the number of readers holding the lock (with a writer
// announced, an upper bound that only falls).
func (st *rwState) readers() int {
	sum := st.handoff.Load()
	for i := 0; i < st.n; i++ {
		sum += atomic.LoadUintptr(st.count(i)) + atomic.LoadUintptr(st.slowCount(i))
	}
	return int(sum)
}

// waitReaders waits, the writer word set, until no reader holds the lock.
// ordered says whether announce ordered the writer after every reader's
// RUnlock (a fence, or locks): see below.
func (st *rwState) waitReaders(ordered bool) {
	// A token left by a reader of an earlier writer means nothing now; a
	// token taken here was sent after its reader's decrement, which the
	// reads below see.
	select {
	case <-st.wake:
	default:
	}
	waited := false
	for spins := 0; st.readers() != 0; spins++ {
		if spins < rwWriterSpins {
			spinHint()
			continue
		}
		if !ordered {
			// A writer that announced itself without a fence (slow mode)
			// must not park for good before it fences. A reader's
			// RUnlock decrements its count with the section's commit, a
			// store, and then loads the writer word to see whether to
			// wake a writer; a store buffer lets that load pass the
			// store, so the reader can miss the writer's bit while the
			// writer's reads miss the decrement, and the writer would
			// sleep for a reader that left.
			//
			// So it first waits for a wake-up for a bounded time: a
			// reader that saw the bit wakes it, and one that did not has
			// its decrement visible long before the time is up (a store
			// leaves the store buffer in nanoseconds). Only if readers
			// are still counted after that does it fence: the fence makes
			// every decrement made before it visible to the reads after
			// it, and every reader's load after it sees the bit (and
			// wakes the writer). The fence, a system call that interrupts
			// every CPU, costs more than the wait in the common case of
			// a reader that holds the lock briefly; writers that find no
			// reader, or see the last one leave while they spin, make no
			// system call at all.
			if !waited {
				waited = true
				st.waitWake(rwUnorderedWait)
				continue
			}
			if fenceAllCPUs() != nil {
				st.pollReaders()
				return
			}
			ordered = true
			continue
		}
		<-st.wake
	}
}

// waitWake waits for a reader's wake-up (a token on st.wake), for at most
// d. Called with w held: the timer is the writer's.
func (st *rwState) waitWake(d time.Duration) {
	if st.timer == nil {
		st.timer = time.NewTimer(d)
	} else {
		st.timer.Reset(d)
	}
	select {
	case <-st.wake:
		// A stale expiry cannot stay in the channel (Go 1.23 timers);
		// with asynctimerchan=1 one could, and would only shorten a
		// later wait.
		st.timer.Stop()
	case <-st.timer.C:
	}
}

// pollReaders waits until no reader holds the lock, without the readers'
// wake-ups: for a writer in slow mode whose fence failed (membarrier
// refused after the mutex was first used), which cannot park safely.
func (st *rwState) pollReaders() {
	for d := time.Microsecond; st.readers() != 0; {
		time.Sleep(d)
		if d < time.Millisecond {
			d *= 2
		}
	}
}

// readerLeft tells a waiting writer that a reader left.
func (st *rwState) readerLeft() {
	select {
	case st.wake <- struct{}{}:
	default: // a token is there already
	}
}

// waitWriter is called by a reader that found the writer word set. It
// returns true when the reader was handed the read lock by Unlock (it
// parked), false when it should try RLock again.
func (st *rwState) waitWriter() bool {
	for i := 0; i < rwReaderSpins; i++ {
		if atomic.LoadUintptr(&st.writer)&writerBit == 0 {
			return false
		}
		spinHint()
	}
	st.rmu.Lock()
	st.rwaiting.Add(1)
	// Unlock clears the writer word before it looks for parked readers:
	// either this load sees it cleared, or Unlock sees this reader.
	if atomic.LoadUintptr(&st.writer)&writerBit == 0 {
		st.rwaiting.Add(-1)
		st.rmu.Unlock()
		return false
	}
	gen := st.gen
	for st.gen == gen {
		st.rcond.Wait()
	}
	st.rmu.Unlock()
	return true
}

// release clears the writer word, hands the read lock to the readers
// parked meanwhile, and lets the next writer in.
func (st *rwState) release() {
	st.lastUnlock = nanotime()
	st.setWriter(atomic.LoadUintptr(&st.writer) & slowBit)
	if st.rwaiting.Load() != 0 {
		st.rmu.Lock()
		if n := st.rwaiting.Load(); n != 0 {
			// Before the next writer can read the sum (it needs w).
			st.handoff.Add(uintptr(n))
			st.rwaiting.Store(0)
			st.gen++
			st.rcond.Broadcast()
		}
		st.rmu.Unlock()
	}
	st.w.Unlock()
}

// lockedCount returns the count a reader in locked mode uses: its CPU's
// (any count would do: the sum is what matters).
func (st *rwState) lockedCount() *uintptr { return st.count(st.cpuSlot()) }

// cpuSlot returns the slot of the CPU the thread runs on, for the counts
// changed with atomic instructions.
func (st *rwState) cpuSlot() int {
	c := rseq.CPU()
	if c < 0 || c >= st.n {
		c = st.n - 1
	}
	return c
}

// tryAtomic takes the read lock on count c with atomic instructions, as
// readers do in locked mode (on counts) and in slow mode (on slow): an
// increment, then a check of the writer bit (sequentially consistent, like
// the writer's store and its reads of the counts: one sees the other). If
// a writer came it undoes the increment, tells the writer, and reports
// false.
func (st *rwState) tryAtomic(c *uintptr) bool {
	atomic.AddUintptr(c, 1)
	if atomic.LoadUintptr(&st.writer)&writerBit == 0 {
		return true
	}
	atomic.AddUintptr(c, ^uintptr(0))
	st.readerLeft() // the writer may have counted this reader
	return false
}

// rlockLocked is RLock in locked mode: tryAtomic on the CPU's count until
// it succeeds or Unlock hands the lock over.
func (st *rwState) rlockLocked() {
	for !st.tryAtomic(st.lockedCount()) && !st.waitWriter() {
	}
}

// rlockSlow is RLock in slow mode: rlockLocked on the slow counts.
func (st *rwState) rlockSlow() {
	for !st.tryAtomic(st.slowCount(st.cpuSlot())) && !st.waitWriter() {
	}
}
