package percpu

import (
	"os"
	"runtime"
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

// mainThread, when not nil, runs functions on the process's main thread:
// TestMixedModeProcess's child sets GORSEQ_MAIN_THREAD_WORKER=1, and
// parallel hands its first worker to it. In a PIE binary the dynamic loader
// registered rseq on the main thread before Go started, so that worker runs
// the fallback on the shared slot while the others run sections.
var mainThread chan func()

func init() {
	if os.Getenv("GORSEQ_MAIN_THREAD_WORKER") == "1" {
		runtime.LockOSThread() // in init: the main goroutine keeps the main thread
		mainThread = make(chan func())
	}
}

func TestMain(m *testing.M) {
	if mainThread == nil {
		testenv.Main(m)
		return
	}
	if err := testenv.CheckOperations(); err != nil {
		panic(err)
	}
	done := make(chan int)
	go func() { done <- m.Run() }()
	for {
		select {
		case f := <-mainThread:
			f()
		case code := <-done:
			os.Exit(code)
		}
	}
}
