// Package stress applies "fire" to a test while it runs: the conditions
// under which restartable sequences abort and threads change, so that tests
// of per-CPU code can show their results stay exact.
//
// Start turns on, until the returned stop function is called:
//
//   - a CPU profile at a high rate (SIGPROF on every thread, many times per
//     scheduler tick), written to io.Discard, where signals are cheap (see
//     SlowSignal);
//   - an affinity storm: a goroutine that keeps moving every thread of the
//     process between CPUs with sched_setaffinity, using random non-empty
//     subsets of the CPUs the process was allowed at the start;
//   - forced garbage collections, back to back;
//   - thread churn: goroutines that lock their thread and exit without
//     unlocking it, so that the runtime kills the thread and creates new
//     ones;
//   - GOMAXPROCS above the CPU count (2*NumCPU+1 unless told otherwise), so
//     the scheduler preempts and moves goroutines between threads;
//   - a signal storm: SIGURG (the signal Go's runtime uses for preemption,
//     which it ignores when no preemption was asked for) sent to every
//     thread of the process, thousands of times a second. The CPU profile's
//     SIGPROF comes at most once per kernel tick per thread, whatever the
//     rate asked; this storm is what interrupts short sections often.
//     Interrupted system calls are restarted by the kernel (Go installs
//     its handlers with SA_RESTART) except those Linux never restarts,
//     such as nanosleep and epoll_wait, which fail with EINTR: code under
//     test that makes raw system calls must retry them, or run with
//     NoSignals.
//
// The affinity and signal storms are Linux's (sched_setaffinity, tgkill);
// elsewhere they stay off (the test log says so) and the rest burns.
//
// Each part can be switched off in Options. The stop function undoes
// everything (profile stopped, affinity masks and GOMAXPROCS restored),
// waits for the goroutines it started, and returns what happened. It is
// also registered with t.Cleanup, so a test that fails early still
// restores the process; calling it twice is harmless.
//
// Only one fire burns at a time in a process: Start waits until an earlier
// fire is stopped. Do not call Start twice from the same test without
// stopping the first.
//
// Typical use:
//
//	stop := stress.Start(t, stress.Options{})
//	... run the workload ...
//	st := stop()
//	if st.AffinityCalls == 0 { ... }
package stress

import (
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options selects the parts of the fire. The zero value turns everything
// on with the defaults.
type Options struct {
	// NoProfile, NoAffinity, NoGC, NoThreadChurn, NoGOMAXPROCS and
	// NoSignals switch off the CPU profile, the affinity storm, the forced
	// GCs, the thread churn, the raised GOMAXPROCS and the signal storm.
	NoProfile     bool
	NoAffinity    bool
	NoGC          bool
	NoThreadChurn bool
	NoGOMAXPROCS  bool
	NoSignals     bool

	// ProfileRate is the CPU profile's rate in Hz (default 5000). Set,
	// it also keeps the profile on where signals are slow (SlowSignal).
	ProfileRate int
	// GOMAXPROCS is the value set while the fire burns (default
	// 2*runtime.NumCPU()+1).
	GOMAXPROCS int
	// AffinityInterval is the pause between two rounds of the affinity
	// storm (default 200µs); each round moves every thread.
	AffinityInterval time.Duration
	// GCInterval is the pause between forced GCs (default 1ms).
	GCInterval time.Duration
	// ChurnInterval is the pause between two threads killed by the churn
	// (default 500µs).
	ChurnInterval time.Duration
	// SignalInterval is the pause between two rounds of the signal storm
	// (default 100µs); each round signals every thread once.
	SignalInterval time.Duration
}

// Stats reports what the fire did.
type Stats struct {
	// Profiling reports whether the CPU profile ran (false when switched
	// off, or when profiling was already in use, e.g. go test -cpuprofile).
	Profiling bool
	// AffinityCalls counts successful sched_setaffinity calls made by the
	// storm (restoring calls not included); AffinityRounds counts rounds.
	AffinityCalls  int64
	AffinityRounds int64
	// GCs counts forced garbage collections.
	GCs int64
	// ThreadsKilled counts goroutines that exited with their thread locked
	// (each takes its thread with it); DistinctTIDs counts the different
	// thread ids they ran on. Where threads really die, the two are equal.
	ThreadsKilled int64
	DistinctTIDs  int
	// GOMAXPROCS is the value set during the fire (0 if left alone).
	GOMAXPROCS int
	// Signals counts the signals the storm delivered.
	Signals int64
	// SignalCost is what one signal to the calling thread cost at the
	// start (0 where not measured): see SlowSignal.
	SignalCost time.Duration
	// Duration is how long the fire burned.
	Duration time.Duration
}

// SlowSignal is the cost of a signal above which the fire runs no CPU
// profile unless a rate is asked for (Options.ProfileRate). A signal to
// the calling thread costs about 3 µs on x86-64 hardware, and 40 to 60 µs
// in an arm64 guest under qemu's TCG on a 2-core x86-64 host. There the
// profile starved the process whenever the host gave the guest less CPU:
// with it, an exactness test ran 54k operations in 60 s and its fire's
// own goroutines almost never ran (1 GC, 7 affinity calls, 9 signals);
// without it, 228k operations in 0.8 s, with 32 affinity calls and 105
// signals (the signal storm interrupts sections there instead). Even at
// 100 Hz the profile made that test take 30 s.
const SlowSignal = 20 * time.Microsecond

var one sync.Mutex // held while a fire burns

// Start applies the fire selected by opts until the returned function is
// called; see the package documentation.
func Start(t testing.TB, opts Options) (stop func() Stats) {
	t.Helper()
	one.Lock()
	f := &fire{opts: opts, t: t, done: make(chan struct{}), start: time.Now(), tids: map[int]bool{}}
	f.begin()
	var once sync.Once
	var st Stats
	stop = func() Stats {
		once.Do(func() {
			st = f.end()
			one.Unlock()
		})
		return st
	}
	t.Cleanup(func() { stop() })
	return stop
}

type fire struct {
	opts  Options
	t     testing.TB
	done  chan struct{}
	wg    sync.WaitGroup
	start time.Time

	profiling  bool
	signalCost time.Duration
	oldProcs   int
	setProcs   int
	origMask   cpuSet
	haveMask   bool
	affCalls   atomic.Int64
	affRounds  atomic.Int64
	gcs        atomic.Int64
	killed     atomic.Int64
	signals    atomic.Int64
	tidMu      sync.Mutex
	tids       map[int]bool
}

func (f *fire) begin() {
	o := f.opts
	if !o.NoGOMAXPROCS {
		n := o.GOMAXPROCS
		if n <= 0 {
			n = 2*runtime.NumCPU() + 1
		}
		f.setProcs = n
		f.oldProcs = runtime.GOMAXPROCS(n)
	}
	if !o.NoProfile && o.ProfileRate == 0 {
		if f.signalCost = signalCost(); f.signalCost > SlowSignal {
			f.t.Logf("stress: CPU profile off: a signal costs %v here, more than %v (an emulator): profiling would starve the test", f.signalCost, SlowSignal)
			o.NoProfile = true
		}
	}
	if !o.NoProfile {
		rate := o.ProfileRate
		if rate <= 0 {
			rate = 5000
		}
		// pprof.StartCPUProfile sets its own rate (100 Hz); a rate set
		// before it wins (the runtime then prints a warning about the
		// second rate, which is expected).
		runtime.SetCPUProfileRate(rate)
		if err := pprof.StartCPUProfile(io.Discard); err != nil {
			// Profiling already in use (go test -cpuprofile): our rate
			// request was ignored as well. Run without.
			f.t.Logf("stress: CPU profile not started: %v", err)
		} else {
			f.profiling = true
		}
	}
	if !o.NoAffinity {
		if err := getAffinity(&f.origMask); err != nil {
			f.t.Logf("stress: sched_getaffinity: %v; affinity storm off", err)
		} else {
			f.haveMask = true
			f.wg.Add(1)
			go f.affinityStorm()
		}
	}
	if !o.NoGC {
		f.wg.Add(1)
		go f.gcLoop()
	}
	if !o.NoThreadChurn {
		f.wg.Add(1)
		go f.churn()
	}
	if !o.NoSignals {
		if err := canSignal(); err != nil {
			f.t.Logf("stress: %v; signal storm off", err)
		} else {
			f.wg.Add(1)
			go f.signalStorm()
		}
	}
}

func (f *fire) end() Stats {
	// A body that ended before the storms got the CPU (a stalled qemu
	// guest, a short run) would leave the fire unburnt: let the affinity
	// storm or the thread churn do one step first, for at most 2 seconds.
	if f.haveMask || !f.opts.NoThreadChurn {
		for deadline := time.Now().Add(2 * time.Second); f.affCalls.Load() == 0 && f.killed.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	close(f.done)
	f.wg.Wait()
	if f.profiling {
		pprof.StopCPUProfile()
	}
	if f.haveMask {
		// Threads created during the storm inherited their creator's
		// mask; two passes catch threads created during the first.
		for i := 0; i < 2; i++ {
			for _, tid := range tasks() {
				_ = setAffinity(tid, &f.origMask)
			}
		}
	}
	if f.setProcs != 0 {
		runtime.GOMAXPROCS(f.oldProcs)
	}
	f.tidMu.Lock()
	distinct := len(f.tids)
	f.tidMu.Unlock()
	st := Stats{
		Profiling:      f.profiling,
		AffinityCalls:  f.affCalls.Load(),
		AffinityRounds: f.affRounds.Load(),
		GCs:            f.gcs.Load(),
		ThreadsKilled:  f.killed.Load(),
		DistinctTIDs:   distinct,
		GOMAXPROCS:     f.setProcs,
		Signals:        f.signals.Load(),
		SignalCost:     f.signalCost,
		Duration:       time.Since(f.start),
	}
	f.t.Logf("stress: %v: profile=%v affinity calls=%d gcs=%d threads killed=%d (distinct tids %d) gomaxprocs=%d signals=%d (a signal cost %v)",
		st.Duration.Round(time.Millisecond), st.Profiling, st.AffinityCalls, st.GCs, st.ThreadsKilled, st.DistinctTIDs, st.GOMAXPROCS, st.Signals, st.SignalCost)
	return st
}

func (f *fire) stopped() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func pause(d, def time.Duration) {
	if d <= 0 {
		d = def
	}
	time.Sleep(d)
}

// tasks lists the thread ids of the process.
func tasks() []int {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

func (f *fire) gcLoop() {
	defer f.wg.Done()
	for !f.stopped() {
		runtime.GC()
		f.gcs.Add(1)
		pause(f.opts.GCInterval, time.Millisecond)
	}
}

func (f *fire) churn() {
	defer f.wg.Done()
	for !f.stopped() {
		ch := make(chan int)
		go func() {
			runtime.LockOSThread()
			// Exiting without UnlockOSThread makes the runtime
			// terminate this thread.
			ch <- gettid()
		}()
		tid := <-ch
		f.killed.Add(1)
		if tid != 0 { // 0: no thread ids on this system
			f.tidMu.Lock()
			f.tids[tid] = true
			f.tidMu.Unlock()
		}
		pause(f.opts.ChurnInterval, 500*time.Microsecond)
	}
}
