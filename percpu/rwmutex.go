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
// corrupts the mutex, undetected in fast mode (in slow mode it is
// sync.RWMutex's fatal error).
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
// Lock takes a lock that excludes other writers, sets the writer word, and
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
// Writes that come often switch the mutex to its slow mode, where it is a
// sync.RWMutex: readers see the mode in the writer word, take the read
// lock of a sync.RWMutex inside the mutex (two atomic additions on one
// shared word per RLock+RUnlock, where a write costs more than sharing
// that word), and writers take its write lock, with no fence and no wait
// of their own. That sync.RWMutex is also the lock writers exclude each
// other with in every mode, so a slow-mode writer excludes readers and
// writers at once, and the mode changes only while a writer holds it. A
// Lock that comes less than 20 µs after the previous Unlock switches to
// slow mode (that writer fences and waits for the counted readers like
// any fast-mode writer, and its Unlock sets the mode); one that comes
// more than 1 ms after switches back (no fence: no section has committed
// since). So the fence is paid only by writes far apart, where it costs
// little per operation. See rwState.announce.
//
// Cost, measured on a 2-CPU x86-64 VM on an AMD Zen 5 host (medians of one
// benchmark run): RLock+RUnlock 6.7 ns in one goroutine (sync.RWMutex: 12.2
// ns), and 4.3 ns per pair with a goroutine on each CPU (sync.RWMutex's
// shared reader count: 27.4 ns). On a Zen 3 host, whose uncontended atomics
// cost 2.4 ns rather than 6.3, sync.RWMutex wins in one goroutine (4.8
// against 10.6 ns) and still loses 6 to 1 with two (29.2 against 5.0). In
// fast mode Lock costs one membarrier system call
// (MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: an interrupt to every CPU running
// a thread of the process; about 2 µs there) plus a read of every CPU's
// count, besides waiting for the readers; Unlock a few atomic operations,
// and waking readers that parked. With one write in 100 operations the
// mutex runs in slow mode, where it costs what sync.RWMutex costs plus
// the calls into RLock and RUnlock, which sync.RWMutex's are inlined
// away from: on the Zen 3 host 6.75 against 4.92 ns in one goroutine,
// 7.74 against 5.70 in two (0.74x). It is for data written far more
// rarely than that.
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
// buffer may reorder: the writer's fence comes between its store of the
// writer word and its reads of the counts, so a reader whose load missed
// the writer bit has its decrement seen by those reads. In slow mode the
// orderings are sync.RWMutex's.
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
// Memory: rseq.Slots() counts of 128 bytes each, plus about 600 bytes.
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
	// announced itself in fast mode, bit 1 (slowBit) while the mutex is in
	// its slow mode (see announce), bit 2 (lockedBit) always in locked
	// mode. Readers load it in every RLock and RUnlock, whose fast paths
	// need it 0; only writers store it, and only while they hold rw.
	writer uintptr
	// rw is the slow mode's lock, and the writers' lock in every mode: a
	// writer holds it for writing from Lock to Unlock, a reader in slow
	// mode holds it for reading. On the writer word's line: in fast mode
	// readers never touch it, and in slow mode both are theirs.
	rw sync.RWMutex
	_  [line - 32]byte

	// Set up once; read by the readers of fast and locked mode (counts,
	// n) and by writers.
	mem    []uint64       // keeps the counts alive
	counts unsafe.Pointer // rseq.Slots() counts, line bytes apart
	n      int            // rseq.Slots()
	fenced bool           // false: locked mode (see fenced)
	ops    bool           // restartable sections run (else the fallback)
	idle   uintptr        // the writer word of fast mode with no writer: lockedBit in locked mode, else 0
	_      [line]byte

	// The rest is the writers' (under rw, written for writing) and the
	// parked readers'.

	// held is true from Lock (or TryLock) to Unlock: Unlock's misuse check.
	held bool
	// slowNext is the mode announce chose: the writer word Unlock leaves
	// is slowBit if it is true, idle if not.
	slowNext bool
	// lastUnlock is when the last writer unlocked (nanotime).
	lastUnlock int64
	slice      rseq.Slice // the writer's time-slice extension request

	// handoff counts the read locks Unlock gave to parked readers (they
	// release them on a CPU's count); part of the readers' sum. Written by
	// the writer only.
	handoff atomic.Uintptr

	wake chan struct{} // capacity 1: a reader left while a writer waits

	rmu      sync.Mutex // guards the parked readers
	rcond    sync.Cond  // on rmu: Unlock broadcasts
	rwaiting atomic.Int32
	gen      uint64 // under rmu: Unlock's count; parked readers wait for a change
	// handedGen is, under rmu, the last gen whose Unlock handed the read
	// lock to the readers parked before it (Unlock to slow mode wakes them
	// to retry instead).
	handedGen uint64
}

// Spin limits before parking (tests set them to 0 to force the slow paths).
var (
	rwReaderSpins = 64
	rwWriterSpins = 64
)

// fenceAllCPUs is rseq.FenceAll; tests replace it.
var fenceAllCPUs = rseq.FenceAll

func newRWState() *rwState {
	st := &rwState{n: rseq.Slots(), fenced: fenced(), ops: rseq.Features().Operations}
	if !st.fenced {
		st.idle = lockedBit
		st.writer = lockedBit
	}
	st.mem, st.counts = words(st.n, line)
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

// Bits of the writer word.
const (
	writerBit = 1 // a writer has announced itself (fast mode)
	slowBit   = 2 // slow mode: readers take rw
	lockedBit = 4 // locked mode: readers use atomic instructions on counts
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
	for {
		// In fast mode this load hits the writer word's line, shared
		// read-only between the CPUs while no writer comes.
		w := atomic.LoadUintptr(&st.writer)
		if w == 0 {
			// One section: the calling CPU's count grows by 1 unless the
			// writer word is set (a writer announced, or slow mode).
			if rseq.IncCPUIfZero(st.counts, &st.writer) {
				acquireAfterRLock(&st.writer)
				return
			}
			continue // a writer came: look again
		}
		if w == slowBit {
			// Slow mode: a read lock of rw, kept if the mutex is still in
			// slow mode once it is held (the mode changes only under rw's
			// write lock, so it cannot change while the read lock is
			// held); else let it go and look again.
			st.rw.RLock()
			if atomic.LoadUintptr(&st.writer) == slowBit {
				return
			}
			st.rw.RUnlock()
			continue
		}
		if st.rlockWait(w) {
			return
		}
		// The writer left already, or the mode changed: try again.
	}
}

// rlockWait is RLock's way out of line, for a writer word w that is
// neither 0 nor slowBit: in locked mode it takes the read lock with atomic
// instructions; with a writer announced it waits for it (waitWriter). It
// reports whether the read lock is held.
func (st *rwState) rlockWait(w uintptr) bool {
	if w&lockedBit != 0 {
		st.rlockLocked()
		return true
	}
	return w&writerBit != 0 && st.waitWriter()
}

// TryRLock tries to lock m for reading without waiting, and reports
// whether it did. It fails while a writer holds the lock or has announced
// itself.
func (m *RWMutex) TryRLock() bool {
	st := m.state()
	for {
		w := atomic.LoadUintptr(&st.writer)
		if w&lockedBit != 0 {
			return st.tryAtomic(st.lockedCount())
		}
		if w == slowBit {
			// As in RLock.
			if !st.rw.TryRLock() {
				return false
			}
			if atomic.LoadUintptr(&st.writer) == slowBit {
				return true
			}
			st.rw.RUnlock()
			continue
		}
		if w == 0 && rseq.IncCPUIfZero(st.counts, &st.writer) {
			acquireAfterRLock(&st.writer)
			return true
		}
		if atomic.LoadUintptr(&st.writer)&writerBit != 0 {
			return false
		}
	}
}

// RUnlock undoes one RLock (or successful TryRLock), on whichever CPU the
// calling thread runs now.
//
// Which lock the reader holds is told by the writer word's slowBit: it is
// set only by an Unlock that found no reader counted (a fast-mode writer's,
// after it waited for them all), and cleared only under rw's write lock,
// which waits for every slow-mode reader. So it cannot change between a
// reader's RLock and its RUnlock.
func (m *RWMutex) RUnlock() {
	st := m.st.Load()
	if st == nil {
		fatal("percpu: RUnlock of unlocked RWMutex")
	}
	if w := atomic.LoadUintptr(&st.writer); w&(slowBit|lockedBit) == 0 {
		runlockSection(st)
	} else if w&slowBit != 0 {
		st.rw.RUnlock()
		return
	} else {
		atomic.AddUintptr(st.lockedCount(), ^uintptr(0))
	}
	st.runlockDone(atomic.LoadUintptr(&st.writer))
}

// runlockDone ends RUnlock of a counted reader, given the writer word as
// the load after the decrement read it: a writer that announced itself
// may be waiting for this reader.
func (st *rwState) runlockDone(w uintptr) {
	if w&writerBit != 0 {
		st.readerLeft()
	}
}

// Lock locks m for writing: it waits until no writer holds the lock, then
// announces itself, which keeps new readers out, and waits until the
// readers holding the lock have released it. In fast mode it costs a
// membarrier system call besides the waiting.
func (m *RWMutex) Lock() {
	st := m.state()
	st.rw.Lock()
	if err := st.announce(); err != nil {
		st.release()
		panic("percpu: RWMutex.Lock: " + err.Error())
	}
	st.waitReaders()
	st.held = true
	st.slice = rseq.SliceRequest()
}

// TryLock tries to lock m for writing without waiting for other holders,
// and reports whether it did. Like Lock it costs a membarrier system call
// in fast mode, except where another holder is seen beforehand.
func (m *RWMutex) TryLock() bool {
	st := m.state()
	if st.readers() != 0 || !st.rw.TryLock() {
		return false
	}
	if err := st.announce(); err != nil || st.readers() != 0 {
		st.release()
		return false
	}
	st.held = true
	st.slice = rseq.SliceRequest()
	return true
}

// Unlock unlocks m for writing; the readers waiting for the writer get
// the lock. It panics if m is not locked for writing.
func (m *RWMutex) Unlock() {
	st := m.st.Load()
	if st == nil || !st.held {
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

// announce chooses the mode of the write (slowNext, for release), and
// excludes the readers that take sections: afterwards every such reader
// that took the read lock is counted where readers() sees it, and every
// other sees the writer bit. Called with rw held for writing, which
// excludes the readers of slow mode.
//
// The modes. In fast mode (the writer word's slowBit clear) readers take
// the read lock with a restartable section on counts, which commits only
// while the writer word is 0, so a writer must set the word and fence
// every CPU (excludeReaders: a membarrier system call, microseconds). In
// slow mode (slowBit set) no such section can commit, readers take rw for
// reading (an atomic add on one shared word, as for sync.RWMutex), and a
// writer needs nothing besides rw. The switch to slow mode is made by a
// fast-mode writer, which fences and waits for the counted readers like
// any other, and whose Unlock sets slowBit; the switch back needs no
// fence (no section committed since the word has been slowBit) and no
// wait (rw excluded every reader).
func (st *rwState) announce() error {
	st.slowNext = false
	if !st.fenced || !st.ops {
		st.setWriter(writerBit | st.idle)
		return st.excludeReaders()
	}
	gap := nanotime() - st.lastUnlock
	if atomic.LoadUintptr(&st.writer)&slowBit != 0 {
		if gap <= rwFastAfter {
			st.slowNext = true
			return nil
		}
		// Back to fast mode: readers that come now see writerBit, not
		// slowBit, and wait for this writer as in fast mode.
		st.setWriter(writerBit)
		return nil
	}
	st.setWriter(writerBit)
	if err := st.excludeReaders(); err != nil {
		return err
	}
	st.slowNext = gap < rwSlowAfter
	return nil
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

// readers returns the number of counted readers holding the lock (those
// of fast and locked mode; with a writer announced, an upper bound that
// only falls). Slow mode's readers hold rw instead.
func (st *rwState) readers() int {
	sum := st.handoff.Load()
	for i := 0; i < st.n; i++ {
		sum += atomic.LoadUintptr(st.count(i))
	}
	return int(sum)
}

// waitReaders waits, the writer word set and every counted reader ordered
// before the writer's reads (announce's fence, or the fallback's locks, or
// locked mode's atomic instructions), until no counted reader holds the
// lock: spinning briefly, then parking until a reader's RUnlock, which
// saw the writer bit, wakes it. A writer that stays in slow mode has no
// counted reader to wait for.
func (st *rwState) waitReaders() {
	if atomic.LoadUintptr(&st.writer)&writerBit == 0 {
		return
	}
	// A token left by a reader of an earlier writer means nothing now; a
	// token taken here was sent after its reader's decrement, which the
	// reads below see.
	select {
	case <-st.wake:
	default:
	}
	for spins := 0; st.readers() != 0; spins++ {
		if spins < rwWriterSpins {
			spinHint()
			continue
		}
		<-st.wake
	}
}

// readerLeft tells a waiting writer that a reader left.
func (st *rwState) readerLeft() {
	select {
	case st.wake <- struct{}{}:
	default: // a token is there already
	}
}

// waitWriter is called by a reader that found the writer bit set. It
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
	// Woken by the Unlock that made gen+1; a later one may have run
	// already (if that one handed nothing over, this reader holds nothing
	// that would hold it back).
	handed := st.handedGen == gen+1
	st.rmu.Unlock()
	return handed
}

// release clears the writer bit and sets the mode announce chose, hands
// the read lock to the readers parked meanwhile (or, if the mutex goes to
// slow mode, wakes them to take rw instead), and lets the next writer in.
func (st *rwState) release() {
	st.held = false
	st.lastUnlock = nanotime()
	w := st.idle
	if st.slowNext {
		w = slowBit
	}
	if atomic.LoadUintptr(&st.writer) != w {
		// A writer staying in slow mode left the word alone (and no
		// reader parks on it then).
		st.setWriter(w)
	}
	if st.rwaiting.Load() != 0 {
		st.rmu.Lock()
		if n := st.rwaiting.Load(); n != 0 {
			st.gen++
			if w&slowBit == 0 {
				// Before the next writer can read the sum (it needs rw).
				st.handoff.Add(uintptr(n))
				st.handedGen = st.gen
			}
			st.rwaiting.Store(0)
			st.rcond.Broadcast()
		}
		st.rmu.Unlock()
	}
	st.rw.Unlock()
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
// readers do in locked mode: an increment, then a check of the writer bit
// (sequentially consistent, like the writer's store and its reads of the
// counts: one sees the other). If a writer came it undoes the increment,
// tells the writer, and reports false.
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
