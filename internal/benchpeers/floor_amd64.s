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

// func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool
// The shape of rseq.IncCPUIfZero (RWMutex.RLock); returns true.
TEXT ·asmFloorIncCPU(SB), NOSPLIT, $0-17
	MOVB	$1, ret+16(FP)
	RET

// func asmFloorRestore(base unsafe.Pointer, stride uintptr, ix uint8, table, v unsafe.Pointer, capacity uint32) bool
// The shape of rseq.RestoreHandle (Pool.Put's common case); returns true.
TEXT ·asmFloorRestore(SB), NOSPLIT, $0-49
	MOVB	$1, ret+48(FP)
	RET
