package bench

import "unsafe"

// asmFloor is an empty assembly function with the arguments and result of
// rseq's add section (floor_amd64.s): the cost of a Go call into assembly.
//
//go:noescape
func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
