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

func TestMain(m *testing.M) { testenv.MainServing(m, mainThread) }
