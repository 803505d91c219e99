package percpu

import (
	"errors"
	"math"
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
// use. Unlock of an unlocked RWMutex panics, and so does RUnlock of a zero
// one; any other RUnlock without its RLock corrupts the mutex, undetected
// (sync.RWMutex detects some).
//
// # How it works
//
// Each CPU has a reader count. In fast mode RLock is one call and one
// restartable section, rseq.IncCPUIfZero: on the CPU the thread runs on,
// check that the writer word is 0 and commit count+1. RUnlock decrements
// the count of the CPU it runs on then (rseq.AddCPU on amd64; a
// store-release commit on arm64), which may be another CPU: single counts
// may go negative, their sum is the number of readers.
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
// Writes that come often switch the mutex to its slow mode, where it works
// as sync.RWMutex does: readers see the mode in the writer word and add to
// one shared reader count (two atomic additions per RLock+RUnlock, where a
// write costs more than sharing that word), and writers take the count's
// write lock (subtracting a large constant, as sync.RWMutex does), with no
// fence. RLock and RUnlock are inlined into their callers, as
// sync.RWMutex's are: in slow mode, with no writer there, each is a load
// and an atomic addition, with no call (in fast mode, each makes one call).
// The count's write lock stays held outside slow mode, so a reader that
// read the mode wrong finds it held, and the mode changes only while a
// writer holds it. A Lock that comes less than 20 µs after the previous
// Unlock switches to slow mode (that writer fences and waits for the
// counted readers like any fast-mode writer, and its Unlock sets the mode).
// An Unlock that switches the mode hands the readers that waited for it
// the read lock of the new mode, so that they still come before the next
// writer (see rwState.release).
// In slow mode a timer looks every millisecond: after a whole millisecond
// without a write it switches the mutex back (no fence: no section has
// committed since), or leaves that to the next Lock if readers hold the
// lock at that moment. Slow-mode writes read no clock. So the fence is paid
// only by writes far apart, where it costs little per operation. See
// rwState.announce and rwState.slowTick.
//
// Cost, measured on a 2-CPU x86-64 VM on an AMD Zen 5 host (medians of one
// benchmark run): RLock+RUnlock 6.7 ns in one goroutine (sync.RWMutex: 12.2
// ns), and 4.3 ns per pair with a goroutine on each CPU (sync.RWMutex's
// shared reader count: 27.4 ns). On a Zen 3 host, whose uncontended atomics
// cost 2.4 ns rather than 6.3, sync.RWMutex wins in one goroutine (4.73
// against 10.3 ns) and still loses 6 to 1 with two (33.8 against 5.32). In
// fast mode Lock costs one membarrier system call
// (MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: an interrupt to every CPU running
// a thread of the process; about 2 µs there) plus a read of every CPU's
// count, besides waiting for the readers; Unlock a few atomic operations,
// and waking readers that parked. With one write in 100 operations the
// mutex runs in slow mode, at sync.RWMutex's cost: on the Zen 3 host 4.88
// against 4.90 ns in one goroutine, 5.21 against 5.76 in two. While in
// slow mode, the timer costs a wake-up a millisecond.
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
// orderings are sync.RWMutex's: sequentially consistent additions to the
// shared count.
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
// Memory: rseq.Slots() counts of 128 bytes each, plus about 600 bytes (a
// timer among them); the RWMutex value itself takes 144 bytes, the first
// 24 of them (the words readers load) on the cache line of whatever comes
// before it, which should not be written often.
//
// If membarrier starts failing after the RWMutex was first used (a seccomp
// filter installed later), Lock cannot exclude the readers' sections: it
// then gives the mutex back as it was and panics with the error (TryLock
// returns false).
type RWMutex struct {
	// The words readers load in every RLock and RUnlock, in the RWMutex
	// itself, so that the inlined RLock and RUnlock reach them with no
	// pointer to follow, and first, which costs their code the least of
	// the inliner's budget. They share their cache line with the fields
	// that come before the RWMutex, which should not be written often;
	// the padding keeps the fields after it off the line.

	// slowReaders is the slow mode's reader count, kept much as
	// sync.RWMutex keeps its own: the readers that hold the slow read lock
	// or wait for it, plus rwMaxReaders while the slow write lock is free
	// (slowLock takes it off). Outside slow mode the slow write lock is
	// held, by no one (the zero RWMutex's 0 is that), so the count alone
	// says whether a reader may take the slow read lock: it may while the
	// count is rwMaxReaders or more. In fast mode readers do not touch it,
	// but for one that read the mode wrong, which adds to it and withdraws.
	slowReaders int32
	// slowDeparting counts the readers a writer in slowLock still waits
	// for; the last one out sends on slowWake.
	slowDeparting atomic.Int32
	// writer is 0 while no writer has announced itself and readers take
	// their sections; bit 0 (writerBit) is set while a writer has
	// announced itself in fast mode, bit 1 (slowBit) while the mutex is in
	// its slow mode (see announce), bit 2 (lockedBit) always in locked
	// mode. Readers load it in every RLock and RUnlock, whose fast paths
	// need it 0; only writers store it (and setUp), and only while they
	// hold wmu.
	writer uintptr
	// counts is st's counts, nil until set up: the fast paths of rlock and
	// runlock reach them with one load fewer.
	counts unsafe.Pointer
	_      [line - 24]byte

	st atomic.Pointer[rwState] // nil until first use
	mu sync.Mutex              // serializes the set-up of a zero RWMutex
}

type rwState struct {
	m *RWMutex // whose state this is

	// Set up once; read by the readers of fast and locked mode (counts,
	// n) and by writers.
	mem    []uint64       // keeps the counts alive
	counts unsafe.Pointer // rseq.Slots() counts, line bytes apart
	n      int            // rseq.Slots()
	fenced bool           // false: locked mode (see fenced)
	ops    bool           // restartable sections run (else the fallback)
	idle   uintptr        // the writer word of fast mode with no writer: lockedBit in locked mode, else 0
	_      [line]byte

	// The rest is the writers' (under wmu) and the parked readers'.

	// wmu excludes writers from each other in every mode: a writer holds
	// it from Lock to Unlock.
	wmu sync.Mutex
	// held is true from Lock (or TryLock) to Unlock: Unlock's misuse check.
	held bool
	// slowHeld is true while the slow write lock is held: by the writer
	// in slow mode, by no one in the other modes (see slowReaders).
	slowHeld bool
	// slowNext is the mode announce chose: the writer word Unlock leaves
	// is slowBit if it is true, idle if not.
	slowNext bool
	// lastUnlock is when the last writer of fast mode unlocked (nanotime).
	lastUnlock int64
	// In slow mode, slowWrites counts the writes (Locks), tickWrites is
	// the count slowTick saw last, and slowIdle is set by a slowTick that
	// saw none for a whole period but could not switch to fast mode.
	slowWrites, tickWrites uint64
	slowIdle               bool
	// slowTimer runs slowTick every rwFastAfter while the mutex is in slow
	// mode; stopped otherwise.
	slowTimer *time.Timer
	slice     rseq.Slice // the writer's time-slice extension request

	// handoff counts the read locks Unlock gave to parked readers (they
	// release them on a CPU's count); part of the readers' sum. Written by
	// the writer only.
	handoff atomic.Uintptr

	wake     chan struct{} // capacity 1: a counted reader left while a writer waits
	slowWake chan struct{} // capacity 1: the last reader slowLock waited for left

	rmu      sync.Mutex // guards the parked readers
	rcond    sync.Cond  // on rmu: Unlock broadcasts
	rwaiting atomic.Int32
	// gen counts, under rmu, the Unlocks that handed the read lock to
	// readers parked in waitWriter; they wait for a change.
	gen uint64

	// The readers waiting in slowWait, under rmu. slowHanded is the
	// number of slow read locks slowUnlock handed to readers that have
	// not taken theirs yet (the mutex stays in slow mode). slowGen counts
	// the Unlocks that left slow mode with readers waiting there: each
	// hands a counted read lock to the slowFresh readers that came since
	// the previous one (see release). slowWaiting counts them all, for
	// release's look without rmu (and for tests).
	slowHanded  int32
	slowGen     uint64
	slowFresh   int32
	slowWaiting atomic.Int32
}

// rwMaxReaders is what slowLock takes off slowReaders and slowUnlock adds
// back: more than the readers there can ever be, so that the count is
// below it while the slow write lock is held (sync.RWMutex's
// rwmutexMaxReaders).
const rwMaxReaders = 1 << 30

// Spin limits before parking (tests set them to 0 to force the slow paths).
var (
	rwReaderSpins = 64
	rwWriterSpins = 64
)

// fenceAllCPUs is rseq.FenceAll; tests replace it.
var fenceAllCPUs = rseq.FenceAll

func newRWState(m *RWMutex) *rwState {
	// slowHeld: outside slow mode the slow write lock is held, by no one
	// (the zero RWMutex's slowReaders, 0, says so too).
	st := &rwState{m: m, n: rseq.Slots(), fenced: fenced(), ops: rseq.Features().Operations, slowHeld: true}
	if !st.fenced {
		st.idle = lockedBit
	}
	st.mem, st.counts = words(st.n, line)
	st.wake = make(chan struct{}, 1)
	st.slowWake = make(chan struct{}, 1)
	st.rcond.L = &st.rmu
	// Made here, stopped, so that it exists before any writer resets it.
	st.slowTimer = time.AfterFunc(math.MaxInt64, st.slowTick)
	st.slowTimer.Stop()
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
	st := newRWState(m)
	atomic.StoreUintptr(&m.writer, st.idle)
	atomic.StorePointer(&m.counts, st.counts)
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
// after the previous Unlock switches to it; a whole rwFastAfter without a
// write switches back (slowTick). Tests change them, and set
// rwSwitchEveryLock to make every Lock in slow mode switch back.
var (
	rwSlowAfter       int64 = 20e3 // ns
	rwFastAfter       int64 = 1e6  // ns
	rwSwitchEveryLock       = false
)

// rlock is RLock's way out of line: the read lock in fast and locked mode,
// and in slow mode when the slow write lock is held. added says whether
// RLock incremented slowReaders (and found the write lock held). A plain
// function rather than a method: its call then fits in RLock's inlining
// budget.
func rlock(m *RWMutex, added bool) {
	// Fast mode: one section, which commits the increment of the calling
	// CPU's count only while the writer word is 0 (no writer announced,
	// not slow mode). The word is loaded first, which keeps the sections
	// out of locked mode. A writer may announce itself between that load
	// and the section: the section's own check of the word, made again at
	// every restart, is what excludes it. (rlockPeeked, a test hook there,
	// is compiled only with the gorseq_hooks tag.)
	if c := atomic.LoadPointer(&m.counts); c != nil && !added && atomic.LoadUintptr(&m.writer) == 0 {
		if rwHooks {
			rlockPeeked()
		}
		if rseq.IncCPUIfZero(c, &m.writer) {
			acquireAfterRLock(&m.writer)
			return
		}
	}
	rlockOther(m, added)
}

// rlockOther is rlock's way out of line: the read lock of a zero RWMutex,
// in locked and slow mode, and in fast mode with a writer there.
func rlockOther(m *RWMutex, added bool) {
	st := m.state()
	if added && st.slowWait() {
		return
	}
	for {
		// In fast mode this load hits the writer word's line, shared
		// read-only between the CPUs while no writer comes.
		w := atomic.LoadUintptr(&m.writer)
		if w == 0 {
			// One section: the calling CPU's count grows by 1 unless the
			// writer word is set (a writer announced, or slow mode).
			if rseq.IncCPUIfZero(st.counts, &m.writer) {
				acquireAfterRLock(&m.writer)
				return
			}
			continue // a writer came: look again
		}
		if w == slowBit {
			if st.rlockSlow() {
				return
			}
			continue
		}
		if st.rlockWait(w) {
			return
		}
		// The writer left already, or the mode changed: try again.
	}
}

// rlockSlow takes the slow read lock, as sync.RWMutex's RLock does: it
// increments slowReaders, and has the read lock if the count is then above
// rwMaxReaders; if not, slowWait. It reports whether the read lock is
// held; if not, try again.
func (st *rwState) rlockSlow() bool {
	return atomic.AddInt32(&st.m.slowReaders, 1) > rwMaxReaders || st.slowWait()
}

// slowWait is called by a reader whose increment of slowReaders found the
// slow write lock held. In slow mode a writer holds it, and the reader
// waits for that writer: if the mutex stays in slow mode, slowUnlock hands
// it the slow read lock; if the writer's Unlock leaves slow mode, release
// hands it a counted read lock instead, and the reader withdraws its
// increment (the slow write lock stays held outside slow mode). Either way
// it gets the lock before the next writer, as for sync.RWMutex. Outside
// slow mode (the writer word read as slowBit was out of date) the reader
// withdraws its increment, unless a writer that went to slow mode has
// already counted it and hands it the slow read lock. It reports whether
// a read lock is held (of the mode the writer word says now).
func (st *rwState) slowWait() bool {
	st.rmu.Lock()
	st.slowWaiting.Add(1)
	gen := st.slowGen
	st.slowFresh++
	defer func() {
		if st.slowGen == gen {
			st.slowFresh--
		}
		st.slowWaiting.Add(-1)
		st.rmu.Unlock()
	}()
	// Release changes the writer word before it looks at slowWaiting and
	// wakes the readers that wait here: either the load below sees the
	// word changed, or release sees this reader.
	for {
		switch {
		case st.slowHanded > 0:
			st.slowHanded--
			return true
		case st.slowGen != gen:
			// Handed a counted read lock by the Unlock that left slow
			// mode: no writer can have come since (the next one waits
			// for this reader), so the slow write lock is held still.
			if !st.slowWithdraw() {
				fatal("percpu: RWMutex: slow write lock free outside slow mode")
			}
			return true
		case atomic.LoadUintptr(&st.m.writer) != slowBit && st.slowWithdraw():
			return false
		}
		st.rcond.Wait()
	}
}

// slowWithdraw takes back a waiting reader's increment of slowReaders if
// the slow write lock is still held, and reports whether it did. If not,
// the slowUnlock that released it counted the reader and hands it the read
// lock (it cannot have done so yet: that needs rmu, which the reader
// holds).
func (st *rwState) slowWithdraw() bool {
	for {
		c := atomic.LoadInt32(&st.m.slowReaders)
		if c >= rwMaxReaders {
			return false
		}
		if atomic.CompareAndSwapInt32(&st.m.slowReaders, c, c-1) {
			return true
		}
	}
}

// slowReaderLeft ends the release of a slow read lock whose decrement
// left slowReaders below rwMaxReaders: a writer holds the slow write lock
// or waits for it, and waits for this reader if the reader held the read
// lock when the writer came. As for sync.RWMutex, the count of departing
// readers may fall below zero for a while: readers can leave before the
// writer has added those it waits for.
func (st *rwState) slowReaderLeft() {
	if st.m.slowDeparting.Add(-1) == 0 {
		st.slowWake <- struct{}{}
	}
}

// rlockWait is rlock's way to wait, for a writer word w that is neither 0
// nor slowBit: in locked mode it takes the read lock with atomic
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
		w := atomic.LoadUintptr(&st.m.writer)
		if w&lockedBit != 0 {
			return st.tryAtomic(st.lockedCount())
		}
		if w == slowBit {
			// As in RLock, the count alone says whether the read lock
			// is free: it is while the count is rwMaxReaders or more.
			for c := atomic.LoadInt32(&st.m.slowReaders); c >= rwMaxReaders; c = atomic.LoadInt32(&st.m.slowReaders) {
				if atomic.CompareAndSwapInt32(&st.m.slowReaders, c, c+1) {
					return true
				}
			}
			if atomic.LoadUintptr(&st.m.writer) == slowBit {
				return false // a writer holds the slow lock
			}
			continue // the mode changed: look again
		}
		if w == 0 && rseq.IncCPUIfZero(st.counts, &st.m.writer) {
			acquireAfterRLock(&st.m.writer)
			return true
		}
		if atomic.LoadUintptr(&st.m.writer)&writerBit != 0 {
			return false
		}
	}
}

// runlock is RUnlock's way out of line: the release of a counted read lock
// (fast and locked mode), or the end of a slow one's that found a writer
// (slowReaderLeft). The writer word tells which: for a counted reader it
// cannot be slowBit, and for a slow one it stays slowBit at least until
// the writer it found has seen it leave.
func runlock(m *RWMutex) {
	w := atomic.LoadUintptr(&m.writer)
	if c := atomic.LoadPointer(&m.counts); c != nil && w&(slowBit|lockedBit) == 0 {
		runlockSection(c)
		if atomic.LoadUintptr(&m.writer)&writerBit != 0 {
			m.st.Load().readerLeft() // a writer announced: it may wait for this reader
		}
		return
	}
	runlockOther(m, w)
}

// runlockOther is runlock's way out of line, for a writer word w that has
// slowBit or lockedBit set (or an RWMutex never set up).
func runlockOther(m *RWMutex, w uintptr) {
	st := m.st.Load()
	if st == nil {
		fatal("percpu: RUnlock of unlocked RWMutex")
	}
	if w == slowBit {
		st.slowReaderLeft()
		return
	}
	atomic.AddUintptr(st.lockedCount(), ^uintptr(0))
	st.runlockDone(atomic.LoadUintptr(&m.writer))
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
	st.wmu.Lock()
	if err := st.announce(false); err != nil {
		st.release()
		panic("percpu: RWMutex.Lock: " + err.Error())
	}
	if atomic.LoadUintptr(&m.writer)&writerBit != 0 {
		st.waitReaders() // a writer staying in slow mode has none to wait for
	}
	st.held = true
	st.slice = rseq.SliceRequest()
}

// TryLock tries to lock m for writing without waiting for other holders,
// and reports whether it did. Like Lock it costs a membarrier system call
// in fast mode, except where another holder is seen beforehand.
func (m *RWMutex) TryLock() bool {
	st := m.state()
	if st.readers() != 0 || atomic.LoadInt32(&st.m.slowReaders) > rwMaxReaders || !st.wmu.TryLock() {
		return false
	}
	if err := st.announce(true); err != nil || st.readers() != 0 {
		// A TryLock that fails switches no mode: slow mode stays (the
		// slow readers it found hold their lock), and fast mode stays, as
		// the counted readers that came before its fence still hold
		// theirs; slow mode would release them on the slow count.
		st.slowNext = err == errReaders
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
// excludes the readers: afterwards every reader that takes sections and
// took the read lock is counted where readers() sees it, and every other
// sees the writer bit; in slow mode, the writer holds the slow write lock.
// Called with wmu held. With try set (TryLock) it waits for no reader of
// slow mode, and fails with errReaders if there is one.
//
// The modes. In fast mode (the writer word's slowBit clear) readers take
// the read lock with a restartable section on counts, which commits only
// while the writer word is 0, so a writer must set the word and fence
// every CPU (excludeReaders: a membarrier system call, microseconds). In
// slow mode (slowBit set) no such section can commit, readers take the
// slow read lock (an atomic add on slowReaders, one shared word, as for
// sync.RWMutex), and a writer takes the slow write lock (slowLock). The
// switch to slow mode is made by a fast-mode writer, which fences and
// waits for the counted readers like any other, and whose Unlock sets
// slowBit; the switch back needs no fence (no section committed since the
// word has been slowBit) and no wait besides slowLock's.
func (st *rwState) announce(try bool) error {
	st.slowNext = false
	if !st.fenced || !st.ops {
		st.setWriter(writerBit | st.idle)
		return st.excludeReaders()
	}
	if atomic.LoadUintptr(&st.m.writer) == slowBit {
		if !st.slowLock(try) {
			st.slowNext = true // as it was
			return errReaders
		}
		// No clock here: reading one would cost a slow-mode write more
		// than the rest of it. slowTick watches the writes instead.
		st.slowWrites++
		if !st.slowIdle && !rwSwitchEveryLock {
			st.slowNext = true
			return nil
		}
		// Back to fast mode: readers that come now see writerBit, not
		// slowBit, and wait for this writer as in fast mode. The slow
		// write lock stays held (see slowReaders).
		st.slowIdle = false
		st.setWriter(writerBit)
		return nil
	}
	gap := nanotime() - st.lastUnlock
	st.setWriter(writerBit)
	if err := st.excludeReaders(); err != nil {
		return err
	}
	st.slowNext = gap < rwSlowAfter
	return nil
}

// errReaders is announce's failure in TryLock: readers hold the slow lock.
var errReaders = errors.New("readers hold the lock")

// slowLock takes the slow mode's write lock, as sync.RWMutex's Lock does
// once it holds its writers' mutex: slowReaders falls by rwMaxReaders, so
// that new readers wait (slowWait), and the writer waits until the
// readers that held the read lock then have left. With try set it takes
// the lock only if no reader holds it, and reports whether it did.
func (st *rwState) slowLock(try bool) bool {
	if try {
		if !atomic.CompareAndSwapInt32(&st.m.slowReaders, rwMaxReaders, 0) {
			return false
		}
	} else if r := atomic.AddInt32(&st.m.slowReaders, -rwMaxReaders); r != 0 && st.m.slowDeparting.Add(r) != 0 {
		<-st.slowWake
	}
	st.slowHeld = true
	return true
}

// slowUnlock releases the slow write lock, with the writer word slowBit,
// counting the parked readers release hands the slow read lock to, and
// returns the number of readers that came meanwhile (they wait in
// slowWait, and release hands them the read lock).
func (st *rwState) slowUnlock(parked int32) int32 {
	st.slowHeld = false
	return atomic.AddInt32(&st.m.slowReaders, rwMaxReaders+parked) - rwMaxReaders - parked
}

// setWriter stores the writer word with an atomic swap: a full barrier on
// every architecture, between the store and the loads that follow it
// (readers' counts in Lock, rwaiting in release), each half of a Dekker
// pair whose other half is an atomic read-modify-write and a load. A
// store-release and a later load-acquire (arm64's STLR and LDAR, what
// atomic.StoreUintptr and LoadUintptr are there) are ordered on the
// hardware, but not by every emulator that translates them for an x86
// host; the swap is ordered by all.
func (st *rwState) setWriter(w uintptr) { atomic.SwapUintptr(&st.m.writer, w) }

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
// saw the writer bit, wakes it. Lock calls it only with the writer bit
// set: a writer that stays in slow mode has no counted reader to wait for.
func (st *rwState) waitReaders() {
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
// returns true when the reader parked and Unlock handed it the read lock
// (a counted one, or a slow one if the mutex went to slow mode: either way
// RUnlock releases it as the writer word then says), false when it should
// try RLock again.
func (st *rwState) waitWriter() bool {
	for i := 0; i < rwReaderSpins; i++ {
		if atomic.LoadUintptr(&st.m.writer)&writerBit == 0 {
			return false
		}
		spinHint()
	}
	st.rmu.Lock()
	st.rwaiting.Add(1)
	// Unlock clears the writer word before it looks for parked readers:
	// either this load sees it cleared, or Unlock sees this reader.
	if atomic.LoadUintptr(&st.m.writer)&writerBit == 0 {
		st.rwaiting.Add(-1)
		st.rmu.Unlock()
		return false
	}
	gen := st.gen
	for st.gen == gen {
		st.rcond.Wait()
	}
	// Handed the read lock by the Unlock that made gen+1 (no later one
	// can have run: the next writer waits for this reader).
	st.rmu.Unlock()
	return true
}

// release clears the writer bit and sets the mode announce chose, releases
// the slow write lock if the writer holds it and the mutex stays in slow
// mode, and lets the next writer in. The readers that waited for this
// writer get the read lock first, of the mode the mutex is in now, before
// the next writer can come (it needs wmu), as sync.RWMutex's Unlock hands
// it to its waiting readers:
//
//   - those parked in waitWriter (with the writer bit set): a counted read
//     lock (handoff, which the next writer's sum includes), or in slow mode
//     a slow one (slowReaders, which the next writer's slowLock waits for);
//   - those waiting in slowWait: the slow read lock if the mutex stays in
//     slow mode (slowHanded, as slowUnlock found them); a counted one if it
//     leaves slow mode (handoff and slowGen).
func (st *rwState) release() {
	st.held = false
	w := st.idle
	if st.slowNext {
		w = slowBit
	}
	if atomic.LoadUintptr(&st.m.writer) != w {
		// A writer staying in slow mode left the word alone (and no
		// reader parks in waitWriter then).
		st.setWriter(w)
		if w == slowBit {
			st.slowWrites, st.tickWrites, st.slowIdle = 0, 0, false
			st.slowTimer.Reset(time.Duration(rwFastAfter))
		}
	}
	// The writer word is stored (a swap: a full barrier) before these
	// loads; a reader registers before it loads the word.
	rmuHeld := st.rwaiting.Load() != 0 || w != slowBit && st.slowWaiting.Load() != 0
	var parked int32
	if rmuHeld {
		st.rmu.Lock()
		if parked = st.rwaiting.Load(); parked != 0 {
			st.gen++
			st.rwaiting.Store(0)
		}
	}
	if w == slowBit {
		// The parked readers' slow read locks, counted with the release
		// of the slow write lock, before any of them runs (it needs
		// rmu). Readers park only behind a fast-mode writer, which
		// holds the slow write lock (by no one's account); a failed
		// TryLock in slow mode did not take it, and has none parked.
		if st.slowHeld {
			// After the word is slowBit, as readers check.
			if late := st.slowUnlock(parked); late > 0 {
				if !rmuHeld {
					st.rmu.Lock()
					rmuHeld = true
				}
				st.slowHanded += late
			}
		}
	} else {
		st.lastUnlock = nanotime()
		var fresh int32
		if rmuHeld && st.slowFresh > 0 {
			fresh = st.slowFresh
			st.slowFresh = 0
			st.slowGen++
		}
		if n := parked + fresh; n != 0 {
			// Before the next writer can read the sum.
			st.handoff.Add(uintptr(n))
		}
	}
	if rmuHeld {
		st.rcond.Broadcast()
		st.rmu.Unlock()
	}
	st.wmu.Unlock()
}

// wakeSlowWaiters wakes the readers that wait in slowWait, once the writer
// word is no longer slowBit and no writer holds the lock (slowTick): the
// slow write lock stays held outside slow mode, and they withdraw.
func (st *rwState) wakeSlowWaiters() {
	if st.slowWaiting.Load() != 0 {
		st.rmu.Lock()
		st.rcond.Broadcast()
		st.rmu.Unlock()
	}
}

// slowTick runs every rwFastAfter while the mutex is in slow mode (the
// AfterFunc of slowTimer, in a goroutine of its own). After a whole period
// without a write it switches the mutex back to fast mode, as a writer
// would, if no reader holds the slow read lock at that moment; if one
// does, it leaves the switch to the next Lock (slowIdle), and tries again
// a period later. So writes that stop leave slow mode within two periods,
// with no clock read in any Lock of slow mode. It holds wmu meanwhile, as
// a writer, but never waits for one.
func (st *rwState) slowTick() {
	period := time.Duration(rwFastAfter)
	if !st.wmu.TryLock() {
		// A writer holds it: writes go on. (slowTimer is set before st
		// is published, and never changes.)
		st.slowTimer.Reset(period)
		return
	}
	defer st.wmu.Unlock()
	if atomic.LoadUintptr(&st.m.writer) != slowBit {
		return // left slow mode already: the timer stops
	}
	switch {
	case st.slowWrites != st.tickWrites:
		st.tickWrites = st.slowWrites
	case st.slowLock(true):
		// Back to fast mode with no writer: the slow write lock stays
		// held, and no section has committed since the word was slowBit.
		st.setWriter(st.idle)
		st.lastUnlock = nanotime()
		st.wakeSlowWaiters()
		return
	default:
		st.slowIdle = true
	}
	st.slowTimer.Reset(period)
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
	if atomic.LoadUintptr(&st.m.writer)&writerBit == 0 {
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
