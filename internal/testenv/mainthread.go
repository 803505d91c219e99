package testenv

import (
	"fmt"
	"os"
	"runtime"
)

// MainThreadVar is the environment variable that asks a test binary to
// lend its process's main thread to its tests (see LockMainThread). The
// PIE children of the root and percpu tests set it to "1": in a PIE binary
// the dynamic loader registered rseq on the main thread before Go started,
// so work sent there runs the fallback while other threads run sections.
const MainThreadVar = "GORSEQ_MAIN_THREAD_WORKER"

// MainThread runs functions on the process's main thread, which a test
// binary lends its tests (LockMainThread, MainServing); nil where the
// binary does not lend it.
type MainThread chan func()

// LockMainThread, called from a package's init (which runs on the main
// thread), locks the main goroutine to the main thread when MainThreadVar
// is "1", and returns the MainThread that tests then use; nil otherwise. A
// LockOSThread made in init lasts after init returns.
func LockMainThread() MainThread {
	if os.Getenv(MainThreadVar) != "1" {
		return nil
	}
	runtime.LockOSThread()
	return make(MainThread)
}

// Go runs f on the main thread, or on a new goroutine where m is nil. It
// returns at once, without waiting for the main thread to be free.
func (m MainThread) Go(f func()) {
	if m == nil {
		go f()
		return
	}
	go func() { m <- f }()
}

// Run runs f on the main thread and returns when f has returned. m must
// not be nil.
func (m MainThread) Run(f func()) {
	done := make(chan struct{})
	m <- func() {
		defer close(done)
		f()
	}
	<-done
}

// MainServing is Main for a binary whose main thread was lent: it checks
// the operations, runs m on another goroutine, and runs the functions
// given to work on the calling goroutine (TestMain's, locked to the main
// thread by LockMainThread) until m is done; then it exits with m's code.
// With work nil it is Main.
func MainServing(m interface{ Run() int }, work MainThread) {
	if work == nil {
		Main(m)
		return
	}
	if err := onProcessMainThread(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %s=1, but TestMain is %v\n", MainThreadVar, err)
		os.Exit(1)
	}
	if err := CheckOperations(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	done := make(chan int)
	go func() { done <- m.Run() }()
	for {
		select {
		case f := <-work:
			f()
		case code := <-done:
			os.Exit(code)
		}
	}
}
