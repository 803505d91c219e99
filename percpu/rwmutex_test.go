package percpu

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/testenv"
)

// rwSections are the restartable sections RLock and RUnlock use, whose
// aborts the exactness test requires. In slow mode readers use none (they
// take the mutex's sync.RWMutex).
func rwSections() []string {
	if rwTestMode == "slow" {
		return nil
	}
	unlock := "storeCommit"
	if runtime.GOARCH == "amd64" {
		unlock = "addCPU"
	}
	return []string{"incCPUIfZero", unlock}
}

// rwTestMode is the mode withRWModes runs a test in: "fast" (never slow
// mode), "slow" (slow mode from the first Lock on) or "switching" (every
// Lock switches).
var rwTestMode = "fast"

// withRWModes runs f in each of RWMutex's modes (see rwState.announce).
func withRWModes(t *testing.T, f func(t *testing.T)) {
	for _, mode := range []string{"fast", "slow", "switching"} {
		t.Run(mode, func(t *testing.T) {
			setRWMode(t, mode)
			f(t)
		})
	}
}

// setRWMode puts the mutexes in mode ("fast", "slow" or "switching") for
// the rest of the test, by setting the gaps that decide the switches.
func setRWMode(t *testing.T, mode string) {
	slowAfter, fastAfter := rwSlowAfter, rwFastAfter
	t.Cleanup(func() {
		rwSlowAfter, rwFastAfter, rwSwitchEveryLock, rwTestMode = slowAfter, fastAfter, false, "fast"
	})
	switch mode {
	case "fast":
		rwSlowAfter = -1 // no gap is shorter
	case "slow":
		rwSlowAfter, rwFastAfter = math.MaxInt64, math.MaxInt64
	case "switching":
		rwSlowAfter, rwFastAfter, rwSwitchEveryLock = math.MaxInt64, math.MaxInt64, true
	default:
		t.Fatalf("no RWMutex mode %q", mode)
	}
	rwTestMode = mode
}

// TestRWMutexModes: the modes switch as announced, and the slow one takes
// no fence after the switch.
func TestRWMutexModes(t *testing.T) {
	if !fenced() || !rseq.Features().Operations {
		t.Skip("the modes are those of the mutex with sections and fences")
	}
	var fences atomic.Int64
	saved := fenceAllCPUs
	fenceAllCPUs = func() error { fences.Add(1); return saved() }
	defer func() { fenceAllCPUs = saved }()
	withRWModes(t, func(t *testing.T) {
		var m RWMutex
		fences.Store(0)
		var slowSeen []bool
		var d guarded
		for i := 0; i < 4; i++ {
			m.Lock()
			d.writes++
			m.Unlock()
			slowSeen = append(slowSeen, atomic.LoadUintptr(&m.writer)&slowBit != 0)
			m.RLock()
			if d.writes != int64(i+1) {
				t.Errorf("read %d writes under the read lock, want %d", d.writes, i+1)
			}
			m.RUnlock()
		}
		want := map[string]struct {
			slow   []bool
			fences int64
		}{
			"fast":      {[]bool{false, false, false, false}, 4},
			"slow":      {[]bool{true, true, true, true}, 1},
			"switching": {[]bool{true, false, true, false}, 2},
		}[rwTestMode]
		if fmt.Sprint(slowSeen) != fmt.Sprint(want.slow) || fences.Load() != want.fences {
			t.Errorf("slow mode after each Unlock %v, %d fences; want %v, %d", slowSeen, fences.Load(), want.slow, want.fences)
		}
		if n := m.state().readers(); n != 0 {
			t.Errorf("%d readers counted after every RUnlock", n)
		}
	})
}

// guarded is what the exactness test protects: a writer changes a and b in
// two steps with work between them, so a reader (or another writer) that
// got in while a writer held the lock sees a != b. Plain fields: under the
// race detector the lock's happens-before edges are what keeps them clean.
type guarded struct {
	a, b   int64
	writes int64
}

// work spends a little time in a critical section, adding to *acc (the
// caller's, so that it is not optimized away).
//
//go:noinline
func work(n int, acc *int) {
	x := n
	for i := 0; i < n; i++ {
		x = x*31 + i
	}
	*acc += x
}

func testRWMutexExact(t *testing.T) {
	var m RWMutex // the zero RWMutex, set up on first use
	var d guarded
	var inside atomic.Int64  // readers between RLock and RUnlock
	var writing atomic.Int64 // writers between Lock and Unlock
	var bad atomic.Int64
	var writes, reads, tryR, tryW atomic.Int64
	const G = 6
	var counts []int
	underFire(t, rwSections(), func() {
		counts = until(G, func(g, i int) bool {
			acc := 0
			switch k := (i + 7*g) % 64; {
			case k == 0 || k == 32:
				m.Lock()
				if writing.Add(1) != 1 || inside.Load() != 0 {
					bad.Add(1)
				}
				d.a++
				work(20, &acc)
				d.b++
				d.writes++
				writing.Add(-1)
				m.Unlock()
				writes.Add(1)
			case k == 17:
				if !m.TryLock() {
					return true
				}
				if writing.Add(1) != 1 || inside.Load() != 0 {
					bad.Add(1)
				}
				d.a++
				d.b++
				d.writes++
				writing.Add(-1)
				m.Unlock()
				writes.Add(1)
				tryW.Add(1)
			default:
				// Bare pairs first: the sections are most of their time,
				// so that the fire (and the writers' fences) abort them.
				for j := 0; j < 32; j++ {
					m.RLock()
					acc += int(d.writes & 1)
					m.RUnlock()
				}
				reads.Add(32)
				if k == 5 {
					if !m.TryRLock() {
						return true
					}
					tryR.Add(1)
				} else {
					m.RLock()
				}
				inside.Add(1)
				if writing.Load() != 0 {
					bad.Add(1)
				}
				a := d.a
				work(10, &acc)
				if b := d.b; a != b {
					bad.Add(1)
				}
				inside.Add(-1)
				m.RUnlock()
				reads.Add(1)
			}
			return true
		})
	})
	t.Logf("%d calls: %d read locks (%d by TryRLock), %d write locks (%d by TryLock)",
		total(counts), reads.Load(), tryR.Load(), writes.Load(), tryW.Load())
	if bad.Load() != 0 {
		t.Errorf("%d times a reader and a writer, or two writers, held the lock together", bad.Load())
	}
	m.Lock()
	if d.writes != writes.Load() || d.a != d.b || d.a != d.writes {
		t.Errorf("guarded %+v after %d write locks", d, writes.Load())
	}
	if n := m.st.Load().readers(); n != 0 {
		t.Errorf("readers' sum %d with the write lock held", n)
	}
	m.Unlock()
	if writes.Load() == 0 || reads.Load() == 0 {
		t.Errorf("%d write and %d read locks: the test did not exercise both", writes.Load(), reads.Load())
	}
}

// TestRWMutexExact: readers and writers (Lock, TryLock, RLock, TryRLock)
// under fire never hold the lock together; in locked mode too. Its name
// makes TestFallbackProcess (GORSEQ=off) and TestMixedModeProcess (the PIE
// main thread on the fallback, as parallel's worker 0) run it again.
func TestRWMutexExact(t *testing.T) {
	withRWModes(t, testRWMutexExact)
	withLocked(t, testRWMutexExact)
}

// forceParking makes every wait park at once, for the test.
func forceParking(t *testing.T) {
	r, w := rwReaderSpins, rwWriterSpins
	rwReaderSpins, rwWriterSpins = 0, 0
	t.Cleanup(func() { rwReaderSpins, rwWriterSpins = r, w })
}

// watchdog fails the test with every goroutine's stack if done is not
// closed within d: a lost wake-up shows as a hang.
func watchdog(t *testing.T, d time.Duration, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("no progress in %v (a lost wake-up?); goroutines:\n%s", d, buf)
	}
}

func testRWMutexNoLostWakeups(t *testing.T) {
	forceParking(t)
	var m RWMutex
	var d guarded
	const G, N = 8, 2000
	n := N
	if testing.Short() {
		n = N / 4
	}
	done := make(chan struct{})
	var bad atomic.Int64
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := 0; g < G; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					if (i+g)%4 == 0 {
						m.Lock()
						d.a++
						runtime.Gosched() // readers arrive, find the writer, park
						d.b++
						m.Unlock()
					} else {
						m.RLock()
						a := d.a
						if i%3 == 0 {
							runtime.Gosched() // a writer arrives, waits, parks
						}
						if d.b != a {
							bad.Add(1)
						}
						m.RUnlock()
					}
				}
			}()
		}
		wg.Wait()
	}()
	watchdog(t, 60*time.Second, done)
	if bad.Load() != 0 {
		t.Fatalf("%d readers saw a writer's half-done update", bad.Load())
	}
}

// TestRWMutexNoLostWakeups: with spinning off, every reader that meets a
// writer parks and every writer that meets readers parks; all of them are
// woken (the test would hang otherwise).
func TestRWMutexNoLostWakeups(t *testing.T) {
	withRWModes(t, testRWMutexNoLostWakeups)
	withLocked(t, testRWMutexNoLostWakeups)
}

func testRWMutexWriterProgress(t *testing.T) {
	var m RWMutex
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	readers := 2*runtime.GOMAXPROCS(0) + 1
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := 0
			for !stop.Load() {
				// Overlapping read locks: there is never a moment without a
				// reader unless writers get their turn.
				m.RLock()
				work(200, &acc)
				m.RUnlock()
				reads.Add(1)
			}
		}()
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	// Let the flood start.
	for reads.Load() < 100 {
		runtime.Gosched()
	}
	const W = 50
	done := make(chan struct{})
	var worst time.Duration
	var readsBetween []int64
	go func() {
		defer close(done)
		for i := 0; i < W; i++ {
			r0 := reads.Load()
			start := time.Now()
			m.Lock()
			if d := time.Since(start); d > worst {
				worst = d
			}
			m.Unlock()
			// Readers get their turn between writers, too.
			for reads.Load() == r0 {
				runtime.Gosched()
			}
			readsBetween = append(readsBetween, reads.Load()-r0)
		}
	}()
	watchdog(t, 60*time.Second, done)
	t.Logf("%d readers in a flood: %d write locks, the slowest took %v; %d read locks in all", readers, W, worst, reads.Load())
}

// TestRWMutexWriterProgress: a flood of overlapping readers does not starve
// a writer (writer preference), and readers go on between writes.
func TestRWMutexWriterProgress(t *testing.T) {
	withRWModes(t, testRWMutexWriterProgress)
	withLocked(t, testRWMutexWriterProgress)
}

// eventually waits until cond holds, failing the test after a while.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func testRWMutexSemantics(t *testing.T) {
	var m RWMutex
	if !m.TryRLock() {
		t.Fatal("TryRLock failed on a free mutex")
	}
	if !m.TryRLock() {
		t.Fatal("TryRLock failed on a mutex held by a reader")
	}
	if m.TryLock() {
		t.Fatal("TryLock succeeded with readers")
	}
	m.RUnlock()
	m.RUnlock()
	if !m.TryLock() {
		t.Fatal("TryLock failed on a free mutex")
	}
	if m.TryLock() || m.TryRLock() {
		t.Fatal("TryLock or TryRLock succeeded with a writer")
	}
	m.Unlock()
	l := m.RLocker()
	l.Lock()
	if m.TryLock() {
		t.Fatal("TryLock succeeded with RLocker's lock held")
	}
	l.Unlock()
	m.Lock()
	if m.TryRLock() {
		t.Fatal("TryRLock succeeded with the write lock held")
	}
	m.Unlock()

	// Writer preference: with a reader in and a writer waiting, new
	// readers wait; when the writer is done, the readers that waited get
	// the lock before the next writer. Twice, with one more write between:
	// in switching mode the first writer enters slow mode (its readers
	// wait in waitWriter), the second leaves it (they wait in slowWait).
	st := m.st.Load()
	for round := 0; round < 2; round++ {
		m.RLock()
		wGot := make(chan struct{})
		go func() {
			m.Lock()
			close(wGot)
		}()
		eventually(t, "the writer announced itself", func() bool { return writerWaits(st) })
		if m.TryRLock() {
			t.Fatal("TryRLock succeeded with a writer waiting")
		}
		rGot := make(chan struct{})
		go func() {
			m.RLock()
			close(rGot)
		}()
		eventually(t, "the second reader parked", func() bool { return readerParked(st) })
		select {
		case <-wGot:
			t.Fatal("the writer got the lock while a reader held it")
		case <-rGot:
			t.Fatal("a reader got in while a writer waited")
		default:
		}
		m.RUnlock()
		<-wGot
		w2Got := make(chan struct{})
		go func() {
			m.Lock() // waits for the writer, then for the handed-over reader
			close(w2Got)
		}()
		// Let the next writer block on the writers' lock first: Unlock then
		// wakes it after the reader, and with one P it runs before the reader.
		time.Sleep(time.Millisecond)
		m.Unlock() // hands the lock to the parked reader
		select {
		case <-rGot:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the reader parked behind the writer did not get the lock when it unlocked (the next writer got in first?)", round)
		}
		select {
		case <-w2Got:
			t.Fatal("the next writer got in before the reader the last one released")
		case <-time.After(20 * time.Millisecond):
		}
		m.RUnlock()
		<-w2Got
		m.Unlock()
		if n := st.readers(); n != 0 {
			t.Fatalf("round %d: readers' sum %d at the end", round, n)
		}
		if err := slowLockIdle(st); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// One more write, so that the next round starts in the other
		// mode in switching mode.
		m.Lock()
		//lint:ignore SA2001 the write lock alone switches the mode
		m.Unlock()
	}

	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "Unlock of unlocked") {
				t.Errorf("Unlock of an unlocked RWMutex: recovered %v", r)
			}
		}()
		m.Unlock()
	}()
}

// TestRWMutexSemantics: TryLock, TryRLock, RLocker, writer preference and
// the hand-over to parked readers, and the misuse check of Unlock, in every
// mode.
//
// With one P ("oneP"), a reader woken by Unlock runs only after the
// goroutine that unlocked blocks, by which time the next writer has run:
// the hand-over must have given the reader its lock already (the one that
// left it to the reader lost it to the next writer in switching mode).
func TestRWMutexSemantics(t *testing.T) {
	withRWModes(t, testRWMutexSemantics)
	withLocked(t, testRWMutexSemantics)
	t.Run("spinless", func(t *testing.T) {
		forceParking(t)
		withRWModes(t, testRWMutexSemantics)
	})
	t.Run("oneP", func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		forceParking(t)
		withRWModes(t, testRWMutexSemantics)
	})
}

// writerWaits reports whether a writer waits in Lock for the readers of
// st: announced in the writer word (fast and locked modes), or waiting in
// slowLock for readers to leave (slow mode).
func writerWaits(st *rwState) bool {
	return atomic.LoadUintptr(&st.m.writer)&writerBit != 0 || st.m.slowDeparting.Load() > 0
}

// readerParked reports whether a reader parked behind a writer: in
// waitWriter (fast and locked modes) or in slowWait (slow mode).
func readerParked(st *rwState) bool {
	return st.rwaiting.Load() == 1 || st.slowWaiting.Load() == 1
}

// slowLockIdle checks that nothing holds the slow lock or waits for it,
// with the mutex unlocked: slowReaders is rwMaxReaders in slow mode and 0
// (the write lock held by no one) in the others, and no reader is owed a
// hand-over or a departure.
func slowLockIdle(st *rwState) error {
	want := int32(0)
	if atomic.LoadUintptr(&st.m.writer) == slowBit {
		want = rwMaxReaders
	}
	st.rmu.Lock()
	handed := st.slowHanded
	st.rmu.Unlock()
	if r, d := atomic.LoadInt32(&st.m.slowReaders), st.m.slowDeparting.Load(); r != want || d != 0 || handed != 0 {
		return fmt.Errorf("slow lock: readers count %d (want %d), %d departing, %d hand-overs left", r, want, d, handed)
	}
	return nil
}

// TestRWMutexSliceRequest: the writer asks for a time-slice extension from
// Lock to Unlock where the kernel offers them, and not elsewhere.
func TestRWMutexSliceRequest(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var m RWMutex
	m.Lock()
	st := m.st.Load()
	got := st.slice.Requested()
	m.Unlock()
	ok, err := rseq.SliceAvailable()
	if got != ok {
		t.Fatalf("writer's extension requested %v, but SliceAvailable() = %v, %v", got, ok, err)
	}
	if st.slice.Requested() {
		t.Fatal("Unlock left the request in place")
	}
	t.Logf("slice extension requested by Lock: %v", got)
}

func TestRWMutexZeroUnlockPanics(t *testing.T) {
	for name, f := range map[string]func(m *RWMutex){
		"Unlock":  (*RWMutex).Unlock,
		"RUnlock": (*RWMutex).RUnlock,
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s of a zero RWMutex did not panic", name)
				}
			}()
			var m RWMutex
			f(&m)
		}()
	}
}

func testRWMutexLastReaderWakes(t *testing.T) {
	forceParking(t)
	var m RWMutex
	n := 200000
	switch {
	case inQemu():
		n = 10000
	case testing.Short():
		n = 50000
	}
	done := make(chan struct{})
	var bad atomic.Int64
	var shared int
	go func() {
		defer close(done)
		start, finished := make(chan struct{}), make(chan struct{})
		go func() {
			for range start {
				m.Lock()
				shared++
				m.Unlock()
				finished <- struct{}{}
			}
		}()
		for i := 0; i < n; i++ {
			m.RLock()
			before := shared
			start <- struct{}{} // the writer announces itself while this reader holds the lock
			for j := 0; j < i%1024; j++ {
				spinHint()
			}
			if shared != before {
				bad.Add(1)
			}
			m.RUnlock() // the only reader: its RUnlock alone can wake the writer
			<-finished  // no other reader comes to rescue a lost wake-up
		}
		close(start)
	}()
	watchdog(t, 120*time.Second, done)
	if bad.Load() != 0 || shared != n {
		t.Fatalf("%d reads saw a write under the read lock; %d of %d writes done", bad.Load(), shared, n)
	}
}

// TestRWMutexLastReaderWakes: a writer that waits for one reader, with
// nobody else around, is woken by that reader's RUnlock, in every mode,
// many times over (the decrement and the check of the writer word racing
// the writer's announcement and its reads of the counts).
func TestRWMutexLastReaderWakes(t *testing.T) {
	withRWModes(t, testRWMutexLastReaderWakes)
	withLocked(t, testRWMutexLastReaderWakes)
}

// TestRWMutexSwitchWithWaiters: the readers waiting for a writer that
// switches the mode end up holding the lock the new mode's RUnlock
// releases. Readers parked behind a writer that switches to slow mode are
// woken to take the slow lock, not handed a counted read lock; a reader
// queued on the slow lock behind a writer that switches back to fast mode
// lets it go and takes a counted one. Either mistake leaves a reader
// counted forever, or a read lock of rw held forever (or released twice:
// a fatal error of sync), which the checks at the end see.
func TestRWMutexSwitchWithWaiters(t *testing.T) {
	if !fenced() || !rseq.Features().Operations {
		t.Skip("the modes are those of the mutex with sections and fences")
	}
	forceParking(t)
	setRWMode(t, "switching") // every Lock switches: fast to slow, then back
	var m RWMutex
	var shared int
	st := m.state()
	for round := 0; round < 4; round++ {
		wasSlow := atomic.LoadUintptr(&st.m.writer)&slowBit != 0
		m.RLock()
		wrote := make(chan struct{})
		go func() {
			m.Lock()
			shared++
			m.Unlock()
			close(wrote)
		}()
		eventually(t, "the writer waits", func() bool { return writerWaits(st) })
		got := make(chan int)
		go func() {
			m.RLock()
			got <- shared
			m.RUnlock()
			close(got)
		}()
		eventually(t, "the second reader parked", func() bool { return readerParked(st) })
		handoff := st.handoff.Load()
		m.RUnlock()
		<-wrote
		// The writer's Unlock handed the waiting reader its read lock
		// (which it holds until the test takes its value), before the
		// next writer could come: a counted one if the mutex left slow
		// mode, a slow one if it entered it.
		handed, slow := st.handoff.Load()-handoff, atomic.LoadInt32(&st.m.slowReaders)
		switch {
		case wasSlow && (handed != 1 || slow >= rwMaxReaders):
			t.Fatalf("round %d, from slow mode: Unlock handed %d counted read locks, want 1 (slow count %#x, want its write lock held)", round, handed, slow)
		case !wasSlow && (handed != 0 || slow != rwMaxReaders+1):
			t.Fatalf("round %d, to slow mode: Unlock handed %d counted read locks and the slow count is %#x, want 0 and rwMaxReaders+1", round, handed, slow)
		}
		if v := <-got; v != round+1 {
			t.Fatalf("round %d: the waiting reader read %d, want %d", round, v, round+1)
		}
		<-got
		if slow := atomic.LoadUintptr(&st.m.writer)&slowBit != 0; slow == wasSlow {
			t.Fatalf("round %d: slow mode %v before and after the write", round, slow)
		}
		if n := st.readers(); n != 0 {
			t.Fatalf("round %d (from slow mode: %v): %d readers counted after every RUnlock", round, wasSlow, n)
		}
		if err := slowLockIdle(st); err != nil {
			t.Fatalf("round %d (from slow mode: %v): %v", round, wasSlow, err)
		}
	}
}

// TestRWMutexSlowModeEnds: in slow mode the timer (slowTick) keeps the
// mode while writes go on, switches back to fast mode once they stop, and,
// if a reader holds the lock at that moment, leaves the switch to the next
// Lock.
func TestRWMutexSlowModeEnds(t *testing.T) {
	if !fenced() || !rseq.Features().Operations {
		t.Skip("the modes are those of the mutex with sections and fences")
	}
	setRWMode(t, "slow")
	// The timer's period: long beside the 2 ms between writes below, and
	// longer in a guest, whose sleeps can take several times longer.
	period := 20 * time.Millisecond
	if testenv.InQemu() {
		period = 100 * time.Millisecond
	}
	rwFastAfter = int64(period)
	slow := func(m *RWMutex) bool { return atomic.LoadUintptr(&m.writer) == slowBit }

	// Writes every 2 ms for ten periods, none without a write.
	var m RWMutex
	var writes int
	var lastWrite time.Time
	for end := time.Now().Add(10 * period); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		m.Lock()
		writes++
		m.Unlock()
		lastWrite = time.Now()
		if !slow(&m) {
			t.Fatalf("the mutex left slow mode while writes went on every 2 ms (period %v)", period)
		}
	}
	// Then none: back to fast mode, not before a whole period has passed
	// since the last write (the tick after it sees that write).
	eventually(t, "the mutex is back in fast mode", func() bool { return !slow(&m) })
	if d := time.Since(lastWrite); d < period {
		t.Errorf("back in fast mode %v after the last write, before a whole period", d)
	}
	if err := slowLockIdle(m.st.Load()); err != nil {
		t.Fatal(err)
	}
	m.RLock() // a counted read lock now
	if n := m.st.Load().readers(); n != 1 {
		t.Fatalf("%d counted readers after an RLock in fast mode", n)
	}
	m.RUnlock()

	// A reader holds the slow read lock through the periods without a
	// write: the mutex stays slow, and the next Lock switches it back.
	var m2 RWMutex
	m2.Lock()
	writes++
	m2.Unlock()
	m2.RLock()
	st := m2.st.Load()
	eventually(t, "a tick found no write", func() bool {
		st.wmu.Lock()
		defer st.wmu.Unlock()
		return st.slowIdle
	})
	if !slow(&m2) {
		t.Fatal("the timer left slow mode while a reader held the slow lock")
	}
	m2.RUnlock()
	m2.Lock()
	writes++
	m2.Unlock()
	if slow(&m2) {
		t.Fatal("the Lock after an idle period left the mutex in slow mode")
	}
	if err := slowLockIdle(st); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes", writes)
}

// TestRWMutexInlined: RLock and RUnlock are inlined (their slow-mode cost
// is sync.RWMutex's only so), which a new Go release's inliner could
// change: their cost is at the budget's edge (see RLock).
func TestRWMutexInlined(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package again")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	// The two architectures whose restartable sections the library runs.
	for _, arch := range []string{"amd64", "arm64"} {
		cmd := exec.Command(goTool, "build", "-gcflags=-m", "-o", os.DevNull, ".")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("GOARCH=%s go build -gcflags=-m: %v\n%s", arch, err, out)
		}
		for _, f := range []string{"(*RWMutex).RLock", "(*RWMutex).RUnlock"} {
			if !strings.Contains(string(out), "can inline "+f+"\n") && !strings.Contains(string(out), "can inline "+f+" ") {
				t.Errorf("%s is not inlined any more on linux/%s with %s: the slow mode's reads pay a call (go build -gcflags=-m=2 says why)", f, arch, runtime.Version())
			}
		}
	}
}

// TestRWMutexTryLockKeepsMode: a TryLock that finds a counted reader after
// its fence (one that committed before it) fails and leaves the mode as it
// was, even where its write would have switched to slow mode: the reader
// holds a counted read lock, which slow mode's RUnlock would release on
// the slow count.
func TestRWMutexTryLockKeepsMode(t *testing.T) {
	if !fenced() || !rseq.Features().Operations {
		t.Skip("the modes are those of the mutex with sections and fences")
	}
	setRWMode(t, "switching") // a write in fast mode switches to slow mode
	var m RWMutex
	st := m.state()
	saved := fenceAllCPUs
	defer func() { fenceAllCPUs = saved }()
	// A reader that read the writer word as 0 and commits its increment
	// before the fence, after TryLock's first look at the counts.
	fenceAllCPUs = func() error {
		atomic.AddUintptr(st.count(0), 1)
		return saved()
	}
	if m.TryLock() {
		t.Fatal("TryLock succeeded with a reader counted before its fence")
	}
	fenceAllCPUs = saved
	if w := atomic.LoadUintptr(&m.writer); w != 0 {
		t.Fatalf("writer word %#x after a failed TryLock in fast mode, want 0 (fast, no writer)", w)
	}
	atomic.AddUintptr(st.count(0), ^uintptr(0)) // the reader leaves
	if err := slowLockIdle(st); err != nil {
		t.Fatal(err)
	}
	if !m.TryLock() {
		t.Fatal("TryLock failed on a free mutex")
	}
	m.Unlock()
	if w := atomic.LoadUintptr(&m.writer); w != slowBit {
		t.Fatalf("writer word %#x after a write in switching mode, want slowBit", w)
	}
}

// TestRWMutexStalePeek: a reader that read the writer word as slowBit
// after the mutex left slow mode (its RLock added to the slow count and
// found the count's write lock held, by no one) withdraws its increment
// and takes a counted read lock, without waiting for anyone.
func TestRWMutexStalePeek(t *testing.T) {
	if !fenced() || !rseq.Features().Operations {
		t.Skip("the modes are those of the mutex with sections and fences")
	}
	setRWMode(t, "fast")
	var m RWMutex
	st := m.state()
	atomic.AddInt32(&m.slowReaders, 1) // what RLock's inlined code did
	done := make(chan struct{})
	go func() {
		rlock(&m, true)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a reader whose look at the mode was out of date waits with no writer there")
	}
	if n := st.readers(); n != 1 {
		t.Fatalf("%d counted readers, want 1", n)
	}
	m.RUnlock()
	if err := slowLockIdle(st); err != nil {
		t.Fatal(err)
	}
	if n := st.readers(); n != 0 {
		t.Fatalf("%d counted readers after RUnlock", n)
	}
}
