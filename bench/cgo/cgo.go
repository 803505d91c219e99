//go:build cgo && linux && (amd64 || arm64)

// Package cgo holds the C per-CPU counter of the benchmarks: a critical
// section in C on the rseq area glibc registers for every thread, the
// near-hardware limit for a per-CPU counter. It is its own package because
// linking cgo changes how package rseq runs (it then shares glibc's areas
// instead of registering its own); its benchmarks also measure
// percpu.Counter in that mode.
package cgo

/*
#cgo CFLAGS: -O2
#include <stdlib.h>
#include "percpu.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/gorseq/rseq"
)

// Counter is the C per-CPU counter: one 128-byte slot per possible CPU.
type Counter struct {
	base  unsafe.Pointer
	slots int
}

// NewCounter allocates a Counter in C memory; it fails where glibc did not
// register rseq (glibc before 2.35, or glibc.pthread.rseq=0).
func NewCounter() (*Counter, error) {
	if C.cpc_available() == 0 {
		return nil, errors.New("glibc has no rseq registration on this thread (glibc < 2.35, or GLIBC_TUNABLES=glibc.pthread.rseq=0)")
	}
	n := rseq.PossibleCPUs()
	p := C.aligned_alloc(C.CPC_STRIDE, C.size_t(n*C.CPC_STRIDE))
	if p == nil {
		return nil, errors.New("aligned_alloc failed")
	}
	b := unsafe.Slice((*byte)(p), n*C.CPC_STRIDE)
	clear(b)
	return &Counter{base: p, slots: n}, nil
}

// AddLoop adds 1 to the calling CPU's slot n times, in one C call.
func (c *Counter) AddLoop(n int) { C.cpc_add_loop(c.base, C.int64_t(n)) }

// Load sums the slots.
func (c *Counter) Load() int64 { return int64(C.cpc_sum(c.base, C.int(c.slots))) }

// Free releases the C memory.
func (c *Counter) Free() { C.free(c.base) }
