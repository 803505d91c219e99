//go:build !amd64 && !arm64

package benchpeers

import "unsafe"

// Stand-ins for the assembly functions of floor_asm.go: calls that do
// nothing and cannot be inlined.

//go:noinline
func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int) { return 0 }

//go:noinline
func asmFloorAddCPU(base unsafe.Pointer, n int64) {}

//go:noinline
func asmFloorTake(base unsafe.Pointer, stride uintptr, ix uint8, table unsafe.Pointer) (slot int, h uint32, v unsafe.Pointer, ok bool) {
	return 0, 0, nil, false
}

//go:noinline
func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool { return true }

//go:noinline
func asmFloorRestore(base unsafe.Pointer, stride uintptr, ix uint8, table, v unsafe.Pointer, capacity uint32) bool {
	return true
}
