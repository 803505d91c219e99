//go:build linux

// Command ids is a test program (built and run by process_test.go in the
// module root): it prints rseq.Features() and checks the package's ids
// against the getcpu system call on its main thread and on further locked
// threads, on every CPU it may run on. It exits 1 when an id disagrees.
//
// Usage:
//
//	ids [-threads N] [-hold]
//
// With -hold it waits, after printing its report and with every checked
// thread still alive, until its standard input is closed.
package main

import (
	"flag"
	"io"
	"os"
	"runtime"

	"github.com/gorseq/rseq/internal/testprog/idcheck"
)

// Run main on the process's initial thread, the one the dynamic loader may
// have registered in a PIE binary.
func init() { runtime.LockOSThread() }

func main() {
	threads := flag.Int("threads", 3, "extra locked threads to check")
	hold := flag.Bool("hold", false, "wait for standard input to close before exiting")
	flag.Parse()
	o := idcheck.Options{Threads: *threads}
	if *hold {
		o.Hold = func(r *idcheck.Report) {
			idcheck.Print(os.Stdout, r)
			io.Copy(io.Discard, os.Stdin)
		}
	}
	r := idcheck.Run(o)
	if *hold {
		if !r.OK() {
			os.Exit(1)
		}
		return
	}
	os.Exit(idcheck.Print(os.Stdout, r))
}
