//go:build linux

// Command cgoids is the cgo twin of internal/testprog/ids: a program that
// runs with cgo, so that glibc registers an rseq area on every thread. Besides
// the checks ids makes, it compares rseq.AreaAddress() on each thread with
// glibc's area on that thread (thread pointer + __rseq_offset, computed in C)
// and reports glibc's __rseq_offset and __rseq_size as C sees them.
//
// Usage:
//
//	cgoids [-threads N] [-hold]
package main

/*
#include <stddef.h>
#include <stdint.h>
#include <sys/rseq.h>

static ptrdiff_t rseq_offset(void) { return __rseq_offset; }
static unsigned int rseq_size(void) { return __rseq_size; }

// glibc's area of the calling thread: where glibc registered it, or would
// have (the address is computed even when __rseq_size is 0).
static uintptr_t glibc_area(void) {
	return (uintptr_t)((char *)__builtin_thread_pointer() + __rseq_offset);
}
*/
import "C"

import (
	"flag"
	"io"
	"os"
	"runtime"

	"github.com/gorseq/rseq/internal/testprog/idcheck"
)

func init() { runtime.LockOSThread() }

func main() {
	threads := flag.Int("threads", 3, "extra locked threads to check")
	hold := flag.Bool("hold", false, "wait for standard input to close before exiting")
	flag.Parse()
	cside := &idcheck.CSide{RseqOffset: int64(C.rseq_offset()), RseqSize: uint32(C.rseq_size())}
	o := idcheck.Options{Threads: *threads}
	if cside.RseqSize != 0 {
		// glibc registered its area on every thread: the package must use
		// exactly that one.
		o.Expected = func() uintptr { return uintptr(C.glibc_area()) }
	} else {
		// glibc did not register: the package must not use the area.
		o.Expected = func() uintptr { return 0 }
	}
	finish := func(r *idcheck.Report) { r.C = cside }
	if *hold {
		o.Hold = func(r *idcheck.Report) {
			finish(r)
			idcheck.Print(os.Stdout, r)
			io.Copy(io.Discard, os.Stdin)
		}
	}
	r := idcheck.Run(o)
	finish(r)
	if *hold {
		if !r.OK() {
			os.Exit(1)
		}
		return
	}
	os.Exit(idcheck.Print(os.Stdout, r))
}
