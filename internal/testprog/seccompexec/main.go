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
	"unsafe"

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

// auditArch is the AUDIT_ARCH_* value of the architecture the filter allows
// through to the rseq check; system calls of any other ABI are allowed.
var auditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}

// refuseRseq installs the seccomp filter on every thread of the process.
func refuseRseq(errno syscall.Errno) error {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("no seccomp audit architecture known for %s", runtime.GOARCH)
	}
	const (
		offNr   = 0 // struct seccomp_data: int nr; u32 arch; ...
		offArch = 4
	)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, Jf: 0, K: arch},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offNr},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_RSEQ},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(errno)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): thread %d could not be synchronised", r)
	}
	return nil
}
