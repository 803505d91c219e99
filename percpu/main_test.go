package percpu

import (
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// mainThread, when not nil, runs functions on the process's main thread
// (testenv.LockMainThread): TestMixedModeProcess's child lends it, and
// parallel hands its first worker to it. In a PIE binary the dynamic loader
// registered rseq on the main thread before Go started, so that worker runs
// the fallback on the shared slot while the others run sections.
var mainThread = testenv.LockMainThread()

// ledger keeps the aborts of a qemu guest's whole run (underFire, in
// helpers_test.go): with sections running, the fire of the run must have
// aborted one section at least, so that a guest where restarts never
// happen (or are never counted) fails. Elsewhere the floors are per test
// and per section. Each section alone is not required here: an exactness
// test runs its sections a small part of its time, and the root package's
// scenarios prove every section's restart in the guest.
var ledger testenv.AbortLedger

func TestMain(m *testing.M) { testenv.MainServing(ledger.Wrap(m), mainThread) }
