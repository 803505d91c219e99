#include "textflag.h"

// The arm64 twins of floor_amd64.s: empty functions of each call shape.

// func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
TEXT ·asmFloor(SB), NOSPLIT, $0-40
	MOVD	ZR, slot+32(FP)
	RET

// func asmFloorAddCPU(base unsafe.Pointer, n int64)
TEXT ·asmFloorAddCPU(SB), NOSPLIT, $0-16
	RET

// func asmFloorTake(base unsafe.Pointer, stride uintptr, ix uint8, table unsafe.Pointer) (slot int, h uint32, v unsafe.Pointer, ok bool)
TEXT ·asmFloorTake(SB), NOSPLIT, $0-57
	MOVD	ZR, slot+32(FP)
	MOVW	ZR, h+40(FP)
	MOVD	ZR, v+48(FP)
	MOVB	ZR, ok+56(FP)
	RET

// func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool
// The shape of rseq.IncCPUIfZero (RWMutex.RLock); returns true.
TEXT ·asmFloorIncCPU(SB), NOSPLIT, $0-17
	MOVD	$1, R0
	MOVB	R0, ret+16(FP)
	RET

// func asmFloorRestore(base unsafe.Pointer, stride uintptr, ix uint8, table, v unsafe.Pointer, capacity uint32) bool
// The shape of rseq.RestoreHandle (Pool.Put's common case); returns true.
TEXT ·asmFloorRestore(SB), NOSPLIT, $0-49
	MOVD	$1, R0
	MOVB	R0, ret+48(FP)
	RET
