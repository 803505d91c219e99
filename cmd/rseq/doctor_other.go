//go:build !linux

package main

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"syscall"
)

// errnoName returns the errno's number: the names are Linux's.
func errnoName(e syscall.Errno) string { return strconv.Itoa(int(e)) }

// uname names the operating system: rseq is a Linux feature, so there is no
// kernel release to report.
func uname() (release, machine string) {
	return runtime.GOOS + " (not Linux: no rseq)", runtime.GOARCH
}

// haveGetcpu: no getcpu system call outside Linux.
const haveGetcpu = false

func getcpuLoop(int) {}

// membarrierQuery: membarrier is a Linux system call.
func membarrierQuery() (int, error) {
	return 0, fmt.Errorf("membarrier: not supported on %s", runtime.GOOS)
}

// probePtraceRseqConfig: PTRACE_GET_RSEQ_CONFIGURATION is Linux's.
func probePtraceRseqConfig() (bool, error) {
	return false, fmt.Errorf("PTRACE_GET_RSEQ_CONFIGURATION: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
