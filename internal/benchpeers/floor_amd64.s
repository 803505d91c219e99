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

// func asmFloorAddMem(p unsafe.Pointer, n int64)
// The shape of rseq.AddCPU, with its add but no section: *p += n, a plain
// read-modify-write (not atomic), at the same address each call.
TEXT ·asmFloorAddMem(SB), NOSPLIT, $0-16
	MOVQ	p+0(FP), DI
	MOVQ	n+8(FP), BX
	ADDQ	BX, (DI)
	RET

// func asmFloorTake(a unsafe.Pointer) (v unsafe.Pointer)
// The shape of rseq.TakeHandle (Pool.Get); returns nil.
TEXT ·asmFloorTake(SB), NOSPLIT, $0-16
	MOVQ	$0, v+8(FP)
	RET

// func asmFloorIncCPU(base unsafe.Pointer, guard *uintptr) bool
// The shape of rseq.IncCPUIfZero (RWMutex.RLock); returns true.
TEXT ·asmFloorIncCPU(SB), NOSPLIT, $0-17
	MOVB	$1, ret+16(FP)
	RET

// func asmFloorRestore(a, v unsafe.Pointer) bool
// The shape of rseq.RestoreHandle (Pool.Put's common case); returns true.
TEXT ·asmFloorRestore(SB), NOSPLIT, $0-17
	MOVB	$1, ret+16(FP)
	RET

// func asmFloorLockCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool)
// The shape of rseq.CompareAndStoreCPU (Histogram.Observe's and
// Value.Update's lock); returns 0, true.
TEXT ·asmFloorLockCPU(SB), NOSPLIT, $0-41
	MOVQ	$0, slot+32(FP)
	MOVB	$1, ok+40(FP)
	RET
