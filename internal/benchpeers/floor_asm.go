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
func asmFloorTake(base unsafe.Pointer, stride uintptr, ix uint8, table unsafe.Pointer) (slot int, h uint32, v unsafe.Pointer, ok bool)

//go:noescape
func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool

//go:noescape
func asmFloorRestore(base unsafe.Pointer, stride uintptr, ix uint8, table, v unsafe.Pointer, capacity uint32) bool
