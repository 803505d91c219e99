#include "textflag.h"

// The arm64 twins of floor_amd64.s: empty functions of each call shape.

// func asmFloor(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
TEXT ·asmFloor(SB), NOSPLIT, $0-40
	MOVD	ZR, slot+32(FP)
	RET

// func asmFloorAddCPU(base unsafe.Pointer, n int64)
TEXT ·asmFloorAddCPU(SB), NOSPLIT, $0-16
	RET

// func asmFloorAddMem(p unsafe.Pointer, n int64)
// *p += n: a plain load, add and store (not atomic).
TEXT ·asmFloorAddMem(SB), NOSPLIT, $0-16
	MOVD	p+0(FP), R0
	MOVD	n+8(FP), R1
	MOVD	(R0), R2
	ADD	R1, R2, R2
	MOVD	R2, (R0)
	RET

// func asmFloorTake(a unsafe.Pointer) (v unsafe.Pointer)
// The shape of rseq.TakeHandle (Pool.Get); returns nil.
TEXT ·asmFloorTake(SB), NOSPLIT, $0-16
	MOVD	ZR, v+8(FP)
	RET

// func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool
// The shape of rseq.IncCPUIfZero (RWMutex.RLock); returns true.
TEXT ·asmFloorIncCPU(SB), NOSPLIT, $0-17
	MOVD	$1, R0
	MOVB	R0, ret+16(FP)
	RET

// func asmFloorRestore(a, v unsafe.Pointer) bool
// The shape of rseq.RestoreHandle (Pool.Put's common case); returns true.
TEXT ·asmFloorRestore(SB), NOSPLIT, $0-17
	MOVD	$1, R0
	MOVB	R0, ret+16(FP)
	RET

// func asmFloorLockCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool)
// The shape of rseq.CompareAndStoreCPU (Histogram.Observe's and
// Value.Update's lock); returns 0, true.
TEXT ·asmFloorLockCPU(SB), NOSPLIT, $0-41
	MOVD	ZR, slot+32(FP)
	MOVD	$1, R0
	MOVB	R0, ok+40(FP)
	RET
