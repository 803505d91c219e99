//go:build linux

package stress

import (
	"io"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFire(t *testing.T) {
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	stop := Start(t, Options{})
	if got, want := runtime.GOMAXPROCS(0), 2*runtime.NumCPU()+1; got != want {
		t.Errorf("GOMAXPROCS during the fire = %d, want %d", got, want)
	}
	// Some work for the scheduler to preempt and move around.
	var wg sync.WaitGroup
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for time.Now().Before(deadline) {
				x++
				_ = make([]byte, 64)
			}
		}()
	}
	wg.Wait()
	st := stop()

	switch {
	case st.SignalCost <= 0:
		t.Errorf("signal cost not measured: %v", st.SignalCost)
	case !st.Profiling && st.SignalCost <= SlowSignal:
		t.Errorf("CPU profile did not run (a signal cost %v)", st.SignalCost)
	case st.Profiling && st.SignalCost > SlowSignal:
		t.Errorf("CPU profile ran where a signal costs %v", st.SignalCost)
	}
	if st.AffinityCalls == 0 || st.AffinityRounds == 0 {
		t.Errorf("affinity storm made %d calls in %d rounds", st.AffinityCalls, st.AffinityRounds)
	}
	if st.GCs == 0 {
		t.Errorf("no forced GC")
	}
	if st.Signals < 100 {
		t.Errorf("signal storm delivered only %d signals", st.Signals)
	}
	if st.ThreadsKilled < 5 {
		t.Errorf("only %d threads killed", st.ThreadsKilled)
	}
	// Each churn goroutine ran on a thread that then died, so no thread
	// id can come back (the kernel does not reuse ids this fast).
	if int64(st.DistinctTIDs) != st.ThreadsKilled {
		t.Errorf("threads did not die: %d churn goroutines ran on %d distinct threads", st.ThreadsKilled, st.DistinctTIDs)
	}

	// Everything restored.
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS after stop = %d, want %d", got, procs)
	}
	for _, tid := range tasks() {
		var m unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &m); err != nil {
			continue // exited meanwhile
		}
		if m != orig {
			t.Errorf("thread %d keeps affinity %v after stop, want %v", tid, m, orig)
		}
	}
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Errorf("CPU profile still running after stop: %v", err)
	} else {
		pprof.StopCPUProfile()
	}
	if again := stop(); again != st {
		t.Errorf("second stop returned %+v, want %+v", again, st)
	}
}

func TestAllOff(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	stop := Start(t, Options{NoProfile: true, NoAffinity: true, NoGC: true, NoThreadChurn: true, NoGOMAXPROCS: true, NoSignals: true})
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS changed to %d with NoGOMAXPROCS", got)
	}
	time.Sleep(20 * time.Millisecond)
	st := stop()
	if st.Profiling || st.AffinityCalls != 0 || st.GCs != 0 || st.ThreadsKilled != 0 || st.GOMAXPROCS != 0 || st.Signals != 0 {
		t.Errorf("parts switched off ran: %+v", st)
	}
}

func TestSequential(t *testing.T) {
	// A second Start waits for the first fire to stop instead of
	// overlapping it.
	quiet := Options{NoProfile: true, NoAffinity: true, NoThreadChurn: true, NoSignals: true}
	stop1 := Start(t, quiet)
	started := make(chan func() Stats)
	go func() { started <- Start(t, quiet) }()
	select {
	case <-started:
		t.Fatal("second fire started while the first burned")
	case <-time.After(50 * time.Millisecond):
	}
	stop1()
	select {
	case stop2 := <-started:
		stop2()
	case <-time.After(5 * time.Second):
		t.Fatal("second fire never started")
	}
}
