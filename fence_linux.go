package rseq

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// membarrier commands and flags (include/uapi/linux/membarrier.h).
const (
	membarrierCmdPrivateExpeditedRseq         = 1 << 7
	membarrierCmdRegisterPrivateExpeditedRseq = 1 << 8
	membarrierCmdFlagCPU                      = 1 << 0
)

var fenceInit struct {
	once sync.Once
	err  error
}

func registerFence() error {
	fenceInit.once.Do(func() {
		_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdRegisterPrivateExpeditedRseq, 0, 0)
		if e != 0 {
			fenceInit.err = fmt.Errorf("rseq: membarrier(REGISTER_PRIVATE_EXPEDITED_RSEQ): %w (the membarrier rseq command needs Linux 5.10)", e)
		}
	})
	return fenceInit.err
}

// Fence waits until no restartable section of this process runs on the
// given CPU past the instant of the call: the kernel aborts any section
// running there (membarrier's PRIVATE_EXPEDITED_RSEQ command). Sections that
// commit afterwards have started afterwards and read memory as it is now.
// Where the process runs no sections, Fence returns nil at once: the
// fallback's locks already order every update.
func Fence(cpu int) error {
	if cpu < 0 || cpu >= possibleCPUs {
		return fmt.Errorf("rseq: Fence: CPU %d out of range [0, %d)", cpu, possibleCPUs)
	}
	if opsMode == areaModeNone {
		return nil
	}
	if err := registerFence(); err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdPrivateExpeditedRseq, membarrierCmdFlagCPU, uintptr(cpu))
	if e != 0 {
		return fmt.Errorf("rseq: membarrier(PRIVATE_EXPEDITED_RSEQ, cpu %d): %w", cpu, e)
	}
	return nil
}

// FenceAll is Fence for every CPU at once.
func FenceAll() error {
	if opsMode == areaModeNone {
		return nil
	}
	if err := registerFence(); err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdPrivateExpeditedRseq, 0, 0)
	if e != 0 {
		return fmt.Errorf("rseq: membarrier(PRIVATE_EXPEDITED_RSEQ): %w", e)
	}
	return nil
}
