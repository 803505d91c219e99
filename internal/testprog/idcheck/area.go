//go:build linux

package idcheck

import (
	"sync/atomic"
	"unsafe"

	"github.com/gorseq/rseq"
)

// areaAddress is the calling thread's rseq area as the package sees it.
func areaAddress() uintptr { return rseq.AreaAddress() }

// loadUint32 reads a field the kernel writes, from memory outside the Go heap.
func loadUint32(addr uintptr) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Add(unsafe.Pointer(nil), addr)))
}
