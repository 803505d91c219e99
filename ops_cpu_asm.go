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

// CompareAndStoreCPU stores new in the word at the start of the calling
// CPU's slot of a per-CPU array of stride-byte slots indexed ByCPU if it
// holds expect, and returns the slot either way:
//
//	slot = cpu
//	p := (*uintptr)(base + slot*stride)
//	if *p != expect { return slot, false }
//	*p = new
//	return slot, true
//
// It is CompareAndStore(ByCPU, ByCPU.Slot(), word of that slot, expect,
// new) in one call: the slot is read inside the section rather than by a
// call before it, so the result cannot be Moved. Taking a per-CPU lock
// (expect unlocked, new locked) is one call, which is how
// percpu.Histogram.Observe takes its shard. A lock so taken is released
// with an ordinary atomic store; CompareAndStoreRemote takes it from any
// CPU. The load of the word is an acquire on arm64 (amd64 loads all are).
// Where the thread has no usable area, the compare and the store run
// under the fallback's lock of the word, on the slot the fallback uses.
//
//go:noescape
func CompareAndStoreCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool)
