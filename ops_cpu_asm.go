//go:build linux && (amd64 || arm64)

package rseq

import "unsafe"

// AddCPU adds n to the int64 at the start of the calling CPU's slot of a
// per-CPU array of CPUStride-byte slots indexed ByCPU:
//
//	*(*int64)(base + cpu*CPUStride) += n
//
// It is Add(base, CPUStride, ByCPU, n) without the slot result, in a
// restartable section of its own that a call reaches directly (the
// exported function is the assembly): the shape of a per-CPU counter's
// increment, which costs little more than an empty call with two
// arguments. The array must be indexed ByCPU everywhere (see Index).
//
//go:noescape
func AddCPU(base unsafe.Pointer, n int64)

// AddFloat64CPU adds x to the float64 at the start of the calling CPU's
// slot of a per-CPU array of CPUStride-byte slots indexed ByCPU:
//
//	*(*float64)(base + cpu*CPUStride) += x
//
// The addition runs inside the section, so a restart recomputes it from
// the slot: no compare-and-retry loop.
//
//go:noescape
func AddFloat64CPU(base unsafe.Pointer, x float64)

// IncCPUIfZero adds 1 to the int64 at the start of the calling CPU's slot
// of a per-CPU array of CPUStride-byte slots indexed ByCPU, unless the word
// at guard is not 0, and reports whether it added:
//
//	if *guard != 0 { return false }
//	*(*int64)(base + cpu*CPUStride) += 1
//	return true
//
// The check and the increment are one restartable section: a thread that
// stores a non-zero guard and then fences every CPU (rseq membarrier) knows
// that each increment the guard did not stop has committed where its
// next loads see it. That is a reader's entry into a per-CPU
// reader-writer lock (percpu.RWMutex.RLock): one call, no atomic
// instruction. Where the thread has no usable area, the check and the
// increment run under the fallback's lock of the slot's word, which a
// writer takes to order itself after such readers (CompareAndStoreRemote).
// The load of the guard is not an acquire on arm64: callers that need one
// load the guard again with sync/atomic.
//
//go:noescape
func IncCPUIfZero(base unsafe.Pointer, guard *uintptr) bool
