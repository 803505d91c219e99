package rseq_test

import (
	"sync"
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// mainThreadWork, when not nil, runs functions on the process's main
// thread (testenv.LockMainThread): parallel sends worker 0 of a scenario's
// first batch there, so that TestScenariosInFallbackModes's PIE child,
// whose main thread alone uses the fallback, mixes the two paths in every
// scenario rather than when the scheduler happens to use that thread.
var mainThreadWork = testenv.LockMainThread()

func TestMain(m *testing.M) { testenv.MainServing(m, mainThreadWork) }

// onMainThread runs body on the main thread when mainThreadWork is set,
// and on a new goroutine otherwise; wg is done when body returns.
func onMainThread(wg *sync.WaitGroup, body func()) {
	if mainThreadWork == nil {
		go func() {
			defer wg.Done()
			body()
		}()
		return
	}
	mainThreadWork <- func() {
		defer wg.Done()
		if err := testenv.OnProcessMainThread(); err != nil {
			panic("mainThreadWork: " + err.Error())
		}
		body()
	}
}
