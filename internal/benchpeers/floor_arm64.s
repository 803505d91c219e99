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

// func asmFloorClaim(base unsafe.Pointer, stride uintptr, ix uint8, capacity uint32) (slot int, h uint32, ok bool)
TEXT ·asmFloorClaim(SB), NOSPLIT, $0-37
	MOVD	ZR, slot+24(FP)
	MOVW	ZR, h+32(FP)
	MOVD	$1, R0
	MOVB	R0, ok+36(FP)
	RET

// func asmFloorPut(base unsafe.Pointer, stride uintptr, ix uint8, h uint32) (slot int, ok bool)
TEXT ·asmFloorPut(SB), NOSPLIT, $0-33
	MOVD	ZR, slot+24(FP)
	MOVD	$1, R0
	MOVB	R0, ok+32(FP)
	RET

// func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool
// The shape of rseq.IncCPUIfZero (RWMutex.RLock); returns true.
TEXT ·asmFloorIncCPU(SB), NOSPLIT, $0-17
	MOVD	$1, R0
	MOVB	R0, ret+16(FP)
	RET
