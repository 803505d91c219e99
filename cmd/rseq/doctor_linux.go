//go:build linux

package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errnoName returns the name of an errno ("ENOSYS"), or "".
func errnoName(e syscall.Errno) string { return unix.ErrnoName(e) }

// uname returns the kernel release and the machine.
func uname() (release, machine string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", ""
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
}

// haveGetcpu: the getcpu system call exists, getcpuLoop calls it n times.
const haveGetcpu = true

func getcpuLoop(n int) {
	var c, node uint32
	for range n {
		unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&node)), 0)
	}
	runtime.KeepAlive(c)
}

// membarrierQuery returns the bitmask of the membarrier commands the kernel
// supports.
func membarrierQuery() (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_MEMBARRIER, membarrierCmdQuery, 0, 0)
	if e != 0 {
		return 0, fmt.Errorf("membarrier(MEMBARRIER_CMD_QUERY): %s (%v)", unix.ErrnoName(e), e)
	}
	return int(r), nil
}

// ptraceGetRseqConfiguration is PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13).
const ptraceGetRseqConfiguration = 0x420f

// probePtraceRseqConfig starts a copy of this program under ptrace, which
// stops it before it runs any instruction of its own, makes the request on
// it, and kills it. It returns whether the kernel answered the request, or
// an error when the probe could not be made.
func probePtraceRseqConfig() (bool, error) {
	// All ptrace requests must come from the thread that traces the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"rseq-doctor-ptrace-probe"}
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return false, err
	}
	pid := cmd.Process.Pid
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("wait4: %w", err)
		}
		break
	}
	if !ws.Stopped() {
		return false, fmt.Errorf("traced child did not stop (wait status %#x)", uint32(ws))
	}
	// struct ptrace_rseq_configuration: u64 rseq_abi_pointer, u32
	// rseq_abi_size, u32 signature, u32 flags, u32 pad.
	var conf [3]uint64
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceGetRseqConfiguration, uintptr(pid),
		unsafe.Sizeof(conf), uintptr(unsafe.Pointer(&conf)), 0, 0)
	switch e {
	case 0:
		return true, nil
	case unix.EIO:
		return false, nil
	}
	return false, fmt.Errorf("ptrace(PTRACE_GET_RSEQ_CONFIGURATION): %s", unix.ErrnoName(e))
}
