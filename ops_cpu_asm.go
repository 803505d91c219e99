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
