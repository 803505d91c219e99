package percpu

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorseq/rseq"
	"github.com/gorseq/rseq/internal/testenv"
)

// mainThread, when not nil, runs functions on the process's main thread
// (testenv.LockMainThread): TestMixedModeProcess's child lends it, and
// parallel hands its first worker to it. In a PIE binary the dynamic loader
// registered rseq on the main thread before Go started, so that worker runs
// the fallback on the shared slot while the others run sections.
var mainThread = testenv.LockMainThread()

func TestMain(m *testing.M) { testenv.MainServing(qemuAborts{m}, mainThread) }

// qemuShortfall counts the sections that missed their abort floor within
// the time budget of a qemu guest (helpers_test.go).
var qemuShortfall atomic.Int64

// ranFire records that an exactness test ran, under fire, sections that
// can abort where it runs.
var ranFire atomic.Bool

// qemuAborts wraps the test run in a qemu guest: with sections running,
// the fire of the whole run must have aborted sections, so that a guest
// where restarts never happen (or are never counted) fails. Elsewhere the
// floors are per test and per section.
type qemuAborts struct{ m *testing.M }

func (q qemuAborts) Run() int {
	before := abortsByName()
	code := q.m.Run()
	if code != 0 || !inQemu() || !rseq.Features().Operations {
		return code
	}
	var total uint64
	var parts []string
	for name, n := range abortsByName() {
		if d := n - before[name]; d != 0 && abortableHere(name) {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%d", name, d))
		}
	}
	sort.Strings(parts)
	if total == 0 && ranFire.Load() {
		fmt.Fprintln(os.Stderr, "FAIL: no section aborted over the whole run under fire in this guest")
		return 1
	}
	fmt.Fprintf(os.Stderr, "qemu: aborts over the run: %s (%d sections short of a per-test floor)\n", strings.Join(parts, " "), qemuShortfall.Load())
	return code
}
