//go:build linux && (amd64 || arm64)

package rseq

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Implemented in slice_linux_GOARCH.s. Assembly is never preempted
// asynchronously, so each runs on one thread from its first instruction to
// its last: the area it reads is the one it writes.

// sliceRequestFast sets slice_ctrl.request in the calling thread's area and
// returns the area, when the area's flags say the extension is enabled on
// the thread and neither a request nor a grant is pending. It returns 1
// when one is pending (a nested request), and 0 when the thread has no
// usable area or the extension is not enabled on it.
func sliceRequestFast() uintptr

// sliceEndFast ends the request made on area: if area is the calling
// thread's area, it clears slice_ctrl.request, reads slice_ctrl.granted and,
// if set, makes the rseq_slice_yield system call (yielded: it returned 1).
// On another thread it does nothing.
func sliceEndFast(area uintptr) (granted, yielded bool)

func sliceRequest() Slice {
	switch a := sliceRequestFast(); a {
	case 0:
		return sliceEnable()
	case 1:
		return Slice{}
	default:
		return Slice{area: a}
	}
}

func (s Slice) end() bool {
	granted, yielded := sliceEndFast(s.area)
	if granted {
		countSliceEnd(granted, yielded)
	}
	return granted
}

// sliceEnable is SliceRequest on a thread whose area does not say the
// extension is enabled: a thread not registered yet (own mode), a thread
// that never asked (the prctl enables it), or one that cannot have it (no
// area, a 32-byte area: the zero Slice, at the cost of this check on every
// request from that thread).
func sliceEnable() Slice {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ensureArea() == 0 {
		return Slice{}
	}
	fl, ok := areaField(offFlags)
	if !ok || fl&flagSliceExtAvailable == 0 {
		return Slice{}
	}
	if fl&flagSliceExtEnabled == 0 {
		if err := sliceSetEnabled(true); err != nil {
			disableSlices(err)
			return Slice{}
		}
		if fl, _ := areaField(offFlags); fl&flagSliceExtEnabled == 0 {
			disableSlices(fmt.Errorf("rseq: prctl(PR_RSEQ_SLICE_EXTENSION_SET) succeeded but the area's flags (%#x) do not say the extension is enabled", fl))
			return Slice{}
		}
	}
	if a := sliceRequestFast(); a > 1 {
		return Slice{area: a}
	}
	return Slice{}
}

// sliceSetEnabled enables or disables the extension on the calling thread.
func sliceSetEnabled(on bool) error {
	var arg uintptr
	if on {
		arg = unix.PR_RSEQ_SLICE_EXT_ENABLE
	}
	if err := unix.Prctl(unix.PR_RSEQ_SLICE_EXTENSION, unix.PR_RSEQ_SLICE_EXTENSION_SET, arg, 0, 0); err != nil {
		return fmt.Errorf("rseq: prctl(PR_RSEQ_SLICE_EXTENSION_SET, %d): %w", arg, err)
	}
	return nil
}

// sliceEnabled asks the kernel whether the extension is enabled on the
// calling thread (PR_RSEQ_SLICE_EXTENSION_GET).
func sliceEnabled() (bool, error) {
	r, _, e := unix.Syscall6(unix.SYS_PRCTL, unix.PR_RSEQ_SLICE_EXTENSION, unix.PR_RSEQ_SLICE_EXTENSION_GET, 0, 0, 0, 0)
	if e != 0 {
		return false, e
	}
	return r&unix.PR_RSEQ_SLICE_EXT_ENABLE != 0, nil
}
