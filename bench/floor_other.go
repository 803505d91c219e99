//go:build !amd64

package bench

import "unsafe"

// asmFloor stands in for the amd64 assembly function of the same name: a
// call that does nothing and cannot be inlined.
//
//go:noinline
func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int) { return 0 }
