package rseq_test

import (
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// mainThread, when not nil, runs functions on the process's main
// thread (testenv.LockMainThread): parallel sends worker 0 of a scenario's
// first batch there, so that TestScenariosInFallbackModes's PIE child,
// whose main thread alone uses the fallback, mixes the two paths in every
// scenario rather than when the scheduler happens to use that thread.
var mainThread = testenv.LockMainThread()

// ledger keeps the aborts of a qemu guest's whole run: there a scenario's
// floor is a target, and every section a scenario put under fire must
// have aborted over the run (scenario, in ops_test.go).
var ledger = testenv.AbortLedger{EachSection: true}

func TestMain(m *testing.M) { testenv.MainServing(ledger.Wrap(m), mainThread) }
