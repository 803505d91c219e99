#include "textflag.h"

// Empty assembly functions with the arguments and results of the rseq
// sections the structures call, one per call shape: calling one measures
// what a Go call into an assembly function of that shape costs on this
// machine, the floor under the structure's operation (floor.go).

// func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
// The shape of rseq.Add.
TEXT ·asmFloor(SB), NOSPLIT, $0-40
	MOVQ	$0, slot+32(FP)
	RET

// func asmFloorAddCPU(base unsafe.Pointer, n int64)
// The shape of rseq.AddCPU (Counter.Add).
TEXT ·asmFloorAddCPU(SB), NOSPLIT, $0-16
	RET

// func asmFloorTake(base unsafe.Pointer, stride uintptr, ix uint8, table unsafe.Pointer) (slot int, h uint32, v unsafe.Pointer, ok bool)
// The shape of rseq.TakeHandle (Pool.Get); returns ok = false.
TEXT ·asmFloorTake(SB), NOSPLIT, $0-57
	MOVQ	$0, slot+32(FP)
	MOVL	$0, h+40(FP)
	MOVQ	$0, v+48(FP)
	MOVB	$0, ok+56(FP)
	RET

// func asmFloorClaim(base unsafe.Pointer, stride uintptr, ix uint8, capacity uint32) (slot int, h uint32, ok bool)
// The shape of rseq.ClaimHandle (Pool.Put, first section).
TEXT ·asmFloorClaim(SB), NOSPLIT, $0-37
	MOVQ	$0, slot+24(FP)
	MOVL	$0, h+32(FP)
	MOVB	$1, ok+36(FP)
	RET

// func asmFloorPut(base unsafe.Pointer, stride uintptr, ix uint8, h uint32) (slot int, ok bool)
// The shape of rseq.PutHandle (Pool.Put, second section).
TEXT ·asmFloorPut(SB), NOSPLIT, $0-33
	MOVQ	$0, slot+24(FP)
	MOVB	$1, ok+32(FP)
	RET

// func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool
// The shape of rseq.IncCPUIfZero (RWMutex.RLock); returns true.
TEXT ·asmFloorIncCPU(SB), NOSPLIT, $0-17
	MOVB	$1, ret+16(FP)
	RET
