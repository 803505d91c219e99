//go:build linux

// Command seccompexec runs a program with the rseq system call refused by a
// seccomp filter, so that tests can watch the rseq package fall back for real.
//
// Usage:
//
//	seccompexec -errno NAME|NUMBER PROGRAM [ARG...]
//
// It sets no_new_privs, installs a filter (synchronised to all of its
// threads) that makes rseq fail with the given errno and allows every other
// system call, and executes PROGRAM in its place. The filter is inherited
// across execve, so it is in force before the dynamic loader, glibc, the Go
// runtime or the rseq package of PROGRAM run.
//
// It exits with status 2 on bad usage or a failed exec, and with status 3
// when the kernel cannot install the filter (no seccomp filter support), so
// that a test can tell a missing precondition from a failure.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"github.com/gorseq/rseq/internal/seccomp"
	"golang.org/x/sys/unix"
)

func main() {
	errnoFlag := flag.String("errno", "ENOSYS", "errno the rseq system call fails with (name such as EPERM, or number)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: seccompexec -errno NAME|NUMBER PROGRAM [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	errno, err := parseErrno(*errnoFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seccompexec:", err)
		os.Exit(2)
	}
	path, err := exec.LookPath(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "seccompexec:", err)
		os.Exit(2)
	}
	runtime.LockOSThread()
	if err := refuseRseq(errno); err != nil {
		fmt.Fprintln(os.Stderr, "seccompexec:", err)
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			os.Exit(3)
		}
		os.Exit(2)
	}
	err = syscall.Exec(path, flag.Args(), os.Environ())
	fmt.Fprintf(os.Stderr, "seccompexec: exec %s: %v\n", path, err)
	os.Exit(2)
}

// parseErrno accepts an errno name (EPERM) or a number from 1 to 4095.
func parseErrno(s string) (syscall.Errno, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 4095 {
			return 0, fmt.Errorf("errno %d out of range 1..4095", n)
		}
		return syscall.Errno(n), nil
	}
	for e := syscall.Errno(1); e < 4096 && s != ""; e++ {
		if unix.ErrnoName(e) == s {
			return e, nil
		}
	}
	return 0, fmt.Errorf("unknown errno name %q", s)
}

// refuseRseq installs the seccomp filter on every thread of the process.
func refuseRseq(errno syscall.Errno) error { return seccomp.Refuse(unix.SYS_RSEQ, errno) }
