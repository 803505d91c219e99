package rseq

import "sync/atomic"

// Time-slice extension (Linux 7.0 and later, built with
// CONFIG_RSEQ_SLICE_EXTENSION; see Documentation/userspace-api/rseq.rst).
//
// A thread that holds a lock others wait for (a spin lock, a per-CPU lock
// taken from outside, a writer's lock) should not be scheduled out while it
// holds it. With the extension the thread sets slice_ctrl.request in its
// rseq area before the critical section; if the kernel then wants to
// reschedule it (an interrupt with a reschedule pending), it may instead
// return to the thread for a little longer (5 µs by default, at most 50 µs:
// /sys/kernel/debug/rseq/slice_ext_nsec) and says so by clearing request
// and setting slice_ctrl.granted. After the critical section the thread
// clears request, and if granted is set it gives the CPU back at once with
// the rseq_slice_yield system call. The kernel enforces the grant with a
// timer, and any other system call made while it is granted ends it and
// reschedules the thread there and then.
//
// SliceRequest and Slice.End do this for the calling thread:
//
//	s := rseq.SliceRequest()
//	... short critical section, no system calls ...
//	s.End()
//
// Where the kernel lacks the extension (Features().SliceExtension false:
// older kernels, kernels built without the option (Debian's 7.x among
// them), rseq_slice_ext=0 on the kernel command line, 32-byte (legacy)
// registrations, arm64 up to 7.3 at least, the fallback) SliceRequest
// returns the zero Slice after one load and End does nothing: both cost
// about a nanosecond.
//
// Enabling. The kernel grants extensions only to threads that enabled them,
// with prctl(PR_RSEQ_SLICE_EXTENSION, PR_RSEQ_SLICE_EXTENSION_SET,
// PR_RSEQ_SLICE_EXT_ENABLE) or by registering with
// RSEQ_FLAG_SLICE_EXT_DEFAULT_ON. The package does the former, once per
// thread, the first time the thread asks for an extension (the kernel then
// sets RSEQ_CS_FLAG_SLICE_EXT_ENABLED in the area's flags, which later
// requests read): threads that never ask are never enabled, and so cost
// the kernel nothing on their reschedules; glibc's areas (under cgo) get
// it the same way as the package's own; and the registration stays valid on
// kernels before 7.0, which reject unknown registration flags. If the prctl
// fails (a seccomp filter, say), extensions are off for the whole process
// from then on, and SliceAvailable says why.

// Bits of struct rseq's flags that the kernel sets (read-only for user
// space); flagSliceExtAvailable is in abi.go.
const flagSliceExtEnabled = 1 << 5 // RSEQ_CS_FLAG_SLICE_EXT_ENABLED

// Slice is a time-slice extension request made by SliceRequest. The zero
// Slice is a request that was not made (the kernel lacks the extension, or
// one is already pending on the thread): its End does nothing.
type Slice struct {
	area uintptr // the area whose slice_ctrl.request was set, or 0
}

// SliceRequest asks the kernel not to schedule the calling thread out for
// a short while (a time-slice extension): call it right before a short
// critical section in which the thread holds what other threads wait for,
// and call End on the result right after. The critical section should be
// short (well under the grant, 5 µs by default) and make no system call:
// a system call made while the extension is granted ends it and lets the
// kernel reschedule the thread at that point.
//
// Requests do not nest: while one is pending on the thread (set and not
// yet ended), SliceRequest returns the zero Slice and the outer request
// covers the inner section. The request belongs to the thread, not the
// goroutine: if the Go scheduler moves the goroutine to another thread
// before End, End finds another thread's area and does nothing, and the
// kernel clears the request it left behind the next time that thread is
// scheduled out. Lock the goroutine to its thread (runtime.LockOSThread)
// where that matters.
//
// Where the kernel does not offer the extension it returns the zero Slice.
func SliceRequest() Slice {
	if !features.SliceExtension || sliceOff.Load() {
		return Slice{}
	}
	return sliceRequest()
}

// End clears the request and, if the kernel granted an extension meanwhile,
// gives the CPU back with the rseq_slice_yield system call. It reports
// whether an extension was granted (and so yielded). It does nothing for the
// zero Slice, and nothing when called on another thread than the one that
// made the request (see SliceRequest).
func (s Slice) End() (granted bool) {
	if s.area == 0 {
		return false
	}
	return s.end()
}

// Requested reports whether the request was made (the Slice is not zero).
func (s Slice) Requested() bool { return s.area != 0 }

// SliceCounts counts what End found, since the process started.
type SliceCounts struct {
	// Granted counts the Ends that found an extension granted, and
	// Yielded those whose rseq_slice_yield reported that the thread gave
	// the CPU back within the grant (the others found the grant revoked
	// meanwhile: an interrupt rescheduled the thread, or the grant's timer
	// expired, between the check and the system call).
	Granted, Yielded uint64
}

// SliceStats returns the counts of granted and yielded time-slice
// extensions. Requests themselves are not counted: that would cost an
// atomic add in every one.
func SliceStats() SliceCounts {
	return SliceCounts{Granted: sliceGranted.Load(), Yielded: sliceYielded.Load()}
}

// SliceAvailable reports whether SliceRequest can obtain extensions in
// this process: the kernel offers them (Features().SliceExtension) and
// enabling them on a thread has not failed. When enabling failed, err says
// how, and extensions stay off for the rest of the process.
func SliceAvailable() (ok bool, err error) {
	if e := sliceErr.Load(); e != nil {
		return false, *e
	}
	return features.SliceExtension, nil
}

var (
	sliceOff     atomic.Bool // enabling failed: no more requests
	sliceErr     atomic.Pointer[error]
	sliceGranted atomic.Uint64
	sliceYielded atomic.Uint64
)

// disableSlices turns extensions off for the process after err.
func disableSlices(err error) {
	sliceErr.CompareAndSwap(nil, &err)
	sliceOff.Store(true)
}

// countSliceEnd records what one End found.
func countSliceEnd(granted, yielded bool) {
	if granted {
		sliceGranted.Add(1)
		if yielded {
			sliceYielded.Add(1)
		}
	}
}
