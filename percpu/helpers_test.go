package percpu

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/stress"
)

// burn is how long each exactness test keeps its goroutines busy under
// fire.
func burn() time.Duration {
	if testing.Short() {
		return 250 * time.Millisecond
	}
	return 1500 * time.Millisecond
}

// until runs f(g, i) for i = 0, 1, ... in G goroutines until burn() has
// passed (f returning false stops that goroutine early) and returns the
// number of calls each goroutine made.
func until(G int, f func(g, i int) bool) []int {
	counts := make([]int, G)
	deadline := time.Now().Add(burn())
	parallel(G, func(g int) {
		i := 0
		for ; ; i++ {
			if i%256 == 0 && time.Now().After(deadline) {
				break
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

// underFire runs body under the stress package's fire and logs the abort
// and fallback counts of the sections the package used.
func underFire(t *testing.T, body func()) {
	underFireAborts(t, false, body)
}

// underFireAborts is underFire; with wantAborts it also fails the test if
// no section was aborted while the operations ran as sections (not under
// -short, where the fire burns too briefly to be sure).
func underFireAborts(t *testing.T, wantAborts bool, body func()) {
	t.Helper()
	before := rseq.Stats()
	stop := stress.Start(t, stress.Options{})
	body()
	st := stop()
	if st.AffinityCalls == 0 && st.ThreadsKilled == 0 {
		t.Errorf("the fire did not burn: %+v", st)
	}
	var aborts, fallbacks uint64
	for i, s := range rseq.Stats() {
		aborts += s.Aborts - before[i].Aborts
		fallbacks += s.Fallbacks - before[i].Fallbacks
	}
	t.Logf("operations: %v (%s); aborts %d, fallbacks %d", rseq.Features().Operations, rseq.Features().OperationsReason, aborts, fallbacks)
	if wantAborts && !testing.Short() && rseq.Features().Operations && fallbacks == 0 && aborts == 0 {
		t.Errorf("no section was aborted under fire: the test did not exercise the restart path")
	}
}

// parallel runs f(g) in n goroutines and waits for them.
func parallel(n int, f func(g int)) {
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(g)
		}()
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
	cmd := exec.Command(exe, "-test.run=^(TestFallbackProcess|Test.*Exact.*)$", "-test.short", "-test.count=1", "-test.v")
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

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func rseqSlots() int { return rseq.Slots() }

func rseqAdd(base unsafe.Pointer) { rseq.Add(base, line, rseq.ByCPU, 1) }
