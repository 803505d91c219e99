//go:build amd64 || arm64

package benchpeers

import "unsafe"

// Empty assembly functions, one per call shape of the rseq sections the
// structures use (floor_GOARCH.s): the cost of a Go call into assembly of
// that shape, the floor under the operation.

//go:noescape
func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)

//go:noescape
func asmFloorAddCPU(base unsafe.Pointer, n int64)

//go:noescape
func asmFloorAddMem(p unsafe.Pointer, n int64)

//go:noescape
func asmFloorTake(a unsafe.Pointer) (v unsafe.Pointer)

//go:noescape
func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool

//go:noescape
func asmFloorRestore(a, v unsafe.Pointer) bool

//go:noescape
func asmFloorLockCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool)
