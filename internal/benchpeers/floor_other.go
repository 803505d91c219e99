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
func asmFloorAddMem(p unsafe.Pointer, n int64) { *(*int64)(p) += n }

//go:noinline
func asmFloorTake(a unsafe.Pointer) (v unsafe.Pointer) { return nil }

//go:noinline
func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool { return true }

//go:noinline
func asmFloorRestore(a, v unsafe.Pointer) bool { return true }

//go:noinline
func asmFloorLockCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool) {
	return 0, true
}
