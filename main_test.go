package rseq_test

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// mainThreadWork is set when GORSEQ_TEST_MAIN_THREAD is: the main
// goroutine, which init locks to the process's main thread, then runs the
// functions sent on it while the tests run elsewhere. parallel sends its
// worker 0 there, so that TestScenariosInFallbackModes's PIE child, whose
// main thread alone uses the fallback, mixes the two paths in every
// scenario rather than when the scheduler happens to use that thread.
var mainThreadWork chan func()

func init() {
	// init runs on the main thread, and a LockOSThread made in init
	// keeps the main goroutine there after init returns.
	if os.Getenv("GORSEQ_TEST_MAIN_THREAD") != "" {
		runtime.LockOSThread()
		mainThreadWork = make(chan func())
	}
}

func TestMain(m *testing.M) {
	if mainThreadWork == nil {
		testenv.Main(m)
	}
	if err := onProcessMainThread(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: GORSEQ_TEST_MAIN_THREAD:", err)
		os.Exit(1)
	}
	if err := testenv.CheckOperations(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := make(chan int)
	go func() { code <- m.Run() }()
	for {
		select {
		case f := <-mainThreadWork:
			f()
		case c := <-code:
			os.Exit(c)
		}
	}
}

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
		if err := onProcessMainThread(); err != nil {
			panic("mainThreadWork: " + err.Error())
		}
		body()
	}
}
