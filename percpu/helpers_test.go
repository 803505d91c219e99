package percpu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/stress"
	"github.com/gorseq/rseq/internal/testenv"
)

// burn is how long each exactness test keeps its goroutines busy under
// fire at least; they go on (up to maxBurn) until every section the test
// uses has aborted abortFloor times.
func burn() time.Duration {
	if testing.Short() {
		return 250 * time.Millisecond
	}
	return 1500 * time.Millisecond
}

func maxBurn() time.Duration {
	switch {
	case inQemu():
		return 8 * time.Second
	case testing.Short():
		return 5 * time.Second
	}
	return 15 * time.Second
}

func inQemu() bool { return testenv.InQemu() }

// abortFloor is how many aborts each section an exactness test uses must
// see under fire, so that its restart path is proven under load.
func abortFloor() uint64 {
	switch {
	case inQemu():
		return 1
	case testing.Short():
		return 1
	}
	return 3
}

// abortableHere reports whether section can be aborted where the test runs
// (testenv.Abortable: not a straight-line section under qemu's TCG).
func abortableHere(section string) bool { return testenv.Abortable(section) }

// fire is what until keeps burning for: the sections of the running
// exactness test and their abort counts when it began.
var fire struct {
	sync.Mutex
	sections []string
	before   map[string]uint64
}

// floorsApply reports whether the running test must see its sections
// abort: not without sections, not for structures made in locked mode, and
// not in TestMixedModeProcess's child, which checks exactness with the
// shared slot in use (its main thread takes the fallback, and the floors
// are proven by the normal run).
func floorsApply() bool {
	return rseq.Features().Operations && !forceLocked.Load() && mainThread == nil
}

// floorsMet reports whether every section of the running test that can
// abort here has aborted abortFloor times (or sections do not run).
func floorsMet() bool {
	if !floorsApply() {
		return true
	}
	fire.Lock()
	defer fire.Unlock()
	now := testenv.AbortCounts()
	for _, s := range fire.sections {
		if abortableHere(s) && now[s]-fire.before[s] < abortFloor() {
			return false
		}
	}
	return true
}

// untilBatch is how many calls each goroutine of until makes between two
// looks at the clock, and at least. In a TCG guest a call can take
// milliseconds (an RWMutex writer's fence, a slow-mode reader), and 256 of
// them kept TestRWMutexExact/slow at work 55 s past its 8 s budget on
// arm64.
func untilBatch() int {
	if inQemu() {
		return 64
	}
	return 256
}

// until runs f(g, i) for i = 0, 1, ... in G goroutines until burn() has
// passed and floorsMet, or maxBurn() has, and each goroutine made
// untilBatch calls at least (f returning false stops that goroutine
// early), and returns the number of calls each goroutine made.
func until(G int, f func(g, i int) bool) []int {
	counts := make([]int, G)
	start := time.Now()
	deadline, hard := start.Add(burn()), start.Add(maxBurn())
	batch := untilBatch()
	parallel(G, func(g int) {
		i := 0
		for ; ; i++ {
			// Every goroutine makes one batch at least, however late it
			// starts (a qemu guest can stall for a second).
			if i%batch == 0 && i > 0 {
				if now := time.Now(); now.After(hard) || now.After(deadline) && floorsMet() {
					break
				}
			}
			if !f(g, i) {
				i++
				break
			}
		}
		counts[g] = i
	})
	return counts
}

func total(counts []int) int {
	t := 0
	for _, c := range counts {
		t += c
	}
	return t
}

// underFire runs body under the stress package's fire. sections are the
// restartable sections body uses: until, inside body, keeps going until
// each has aborted abortFloor times (where it can abort here), and
// underFire fails the test if one has not, when the operations run as
// sections. It logs every section's aborts and fallbacks.
func underFire(t *testing.T, sections []string, body func()) {
	t.Helper()
	before := rseq.Stats()
	fire.Lock()
	fire.sections, fire.before = sections, testenv.AbortCounts()
	fire.Unlock()
	stop := stress.Start(t, stress.Options{})
	body()
	st := stop()
	if st.AffinityCalls == 0 && st.ThreadsKilled == 0 {
		t.Errorf("the fire did not burn: %+v", st)
	}
	ops := rseq.Features().Operations
	t.Logf("operations: %v (%s); fire: %+v", ops, rseq.Features().OperationsReason, st)
	for i, s := range rseq.Stats() {
		a, f := s.Aborts-before[i].Aborts, s.Fallbacks-before[i].Fallbacks
		if a != 0 || f != 0 {
			t.Logf("section %s: %d aborts, %d fallbacks", s.Name, a, f)
		}
	}
	if !floorsApply() {
		return
	}
	ledger.Target(sections...) // a qemu guest's run must abort some
	after := testenv.AbortCounts()
	for _, s := range sections {
		a := after[s] - fire.before[s]
		switch {
		case !abortableHere(s):
			t.Logf("section %s cannot abort under qemu's TCG (no branch inside); %d aborts", s, a)
		case a < abortFloor() && inQemu():
			// Under TCG an interrupt lands only between translated
			// blocks, and an arm64 guest runs few enough passes that a
			// section can go a whole budget without one. The floor is
			// a target here; TestMain requires aborts over the run,
			// and torture forces one at every point of every section.
			ledger.Short()
			t.Logf("section %s aborted %d times under fire in the qemu budget (%v), target %d", s, a, maxBurn(), abortFloor())
		case a < abortFloor():
			t.Errorf("section %s aborted %d times under fire, want at least %d: its restart path is not proven", s, a, abortFloor())
		}
	}
}

// parallel runs f(g) in n goroutines and waits for them. With mainThread
// set, f(0) runs on the main thread instead.
func parallel(n int, f func(g int)) {
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		run := func() {
			defer wg.Done()
			f(g)
		}
		if g == 0 {
			mainThread.Go(run)
		} else {
			go run()
		}
	}
	wg.Wait()
}

// withLocked runs f with new structures made in locked mode.
func withLocked(t *testing.T, f func(t *testing.T)) {
	t.Run("locked", func(t *testing.T) {
		forceLocked.Store(true)
		defer forceLocked.Store(false)
		f(t)
	})
}

// TestFallbackProcess runs the exactness tests again in a child process
// with GORSEQ=off, where every operation takes package rseq's fallback.
func TestFallbackProcess(t *testing.T) {
	if os.Getenv("GORSEQ") == "off" {
		if rseq.Features().Operations {
			t.Fatal("GORSEQ=off but the operations run as sections")
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-test.run=^(TestFallbackProcess|Test.*Exact.*)$", "-test.short", "-test.count=1", "-test.v"}
	if inQemu() {
		// Locked mode takes the same atomic compare-and-swap with or
		// without sections, and this process's locked subtests ran it;
		// a TCG guest (arm64's above all) has no time to spare for it
		// twice (the child took 170 s of percpu's 370 s on arm64/6.12).
		args = append(args, "-test.skip=/locked$")
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "GORSEQ=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests with GORSEQ=off failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestFallbackProcess") || !strings.Contains(string(out), "--- PASS: TestCounterExact") {
		t.Fatalf("child ran the wrong tests:\n%s", out)
	}
	t.Logf("GORSEQ=off child passed:\n%s", lastLines(string(out), 12))
}

// TestMixedModeProcess runs the exactness tests again as a PIE binary
// whose main thread, registered by the dynamic loader, uses the fallback
// on the shared slot while every other thread runs sections: the mix of
// plain section stores and locked fallback updates that readers and
// drainers must both see (a reader that skips the shared slot loses the
// main thread's updates).
func TestMixedModeProcess(t *testing.T) {
	if mainThread != nil {
		// The child: the main thread must really have taken the fallback.
		var fb uint64
		for _, s := range rseq.Stats() {
			fb += s.Fallbacks
		}
		if rseq.Features().Operations && fb == 0 {
			t.Fatal("no operation took the fallback on the main thread: the mix went untested")
		}
		t.Logf("fallbacks on the main thread: %d; notes %q", fb, rseq.Features().Notes)
		return
	}
	if testing.Short() && inQemu() {
		t.Skip("no Go toolchain in the guest")
	}
	if !rseq.Features().Operations {
		t.Skip("no sections: nothing to mix with the fallback")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "percpu-pie.test")
	build := exec.Command(goTool, "test", "-c", "-buildmode=pie", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a PIE test binary: %v\n%s", err, out)
	}
	// The exactness tests, then this test's child half, which checks that
	// fallbacks happened. The child has its own time limit: a hang must
	// not outlive this test's process.
	cmd := exec.Command(bin, "-test.run=^(Test.*Exact.*|TestUint64CounterWrapsAndCounts|TestMixedModeProcess)$", "-test.short", "-test.count=1", "-test.v", "-test.timeout=150s")
	cmd.Env = append(os.Environ(), testenv.MainThreadVar+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("exactness tests in mixed mode failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestMixedModeProcess") || !strings.Contains(string(out), "--- PASS: TestCounterExact") {
		t.Fatalf("child ran the wrong tests:\n%s", out)
	}
	t.Logf("mixed-mode child passed:\n%s", lastLines(string(out), 14))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func rseqSlots() int { return rseq.Slots() }

func rseqAdd(base unsafe.Pointer) { rseq.Add(base, line, rseq.ByCPU, 1) }
