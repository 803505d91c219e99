// Thread-pointer access for the rseq package on linux/amd64. The facts these
// routines rely on are documented in runtime_linux_amd64.go.

#include "textflag.h"
#include "area_linux_amd64.h"

// func tlsG() uintptr
// Returns the current g as the linker's TLS model finds it.
TEXT ·tlsG(SB), NOSPLIT, $0-8
	MOVQ	(TLS), AX
	MOVQ	AX, ret+0(FP)
	RET

// func threadSlot() uintptr
// Returns the calling thread's area address, or the marker 0 or 1, from
// m.tls[2] (valid only without cgo). The slot holds the area's offset from
// the FS base, &m.tls[1], which is neither 0 nor 1 (the area lies outside
// m and is 32-byte aligned where m.tls is 8-byte aligned):
//
//	v = *(FS + THREAD_SLOT)
//	if v > 1 { v += g.m + M_FS_BASE }
TEXT ·threadSlot(SB), NOSPLIT, $0-8
	MOVQ	THREAD_SLOT(FS), AX
	CMPQ	AX, $1
	JLS	done
	OWN_FS_BASE(CX)
	ADDQ	CX, AX
done:
	MOVQ	AX, ret+0(FP)
	RET

// func setThreadSlot(v uintptr)
// Stores the area address v (or the marker 0 or 1) in m.tls[2] of the
// calling thread as threadSlot reads it (valid only without cgo):
//
//	if v > 1 { v -= g.m + M_FS_BASE }
//	*(FS + THREAD_SLOT) = v
TEXT ·setThreadSlot(SB), NOSPLIT, $0-8
	MOVQ	v+0(FP), AX
	CMPQ	AX, $1
	JLS	store
	OWN_FS_BASE(CX)
	SUBQ	CX, AX
store:
	MOVQ	AX, THREAD_SLOT(FS)
	RET

// func ownFSBase() uintptr
// Returns OWN_FS_BASE, the FS base as threadSlot, setThreadSlot and FS_BASE
// compute it without cgo, for checkPlatformLayout to compare with the
// kernel's.
TEXT ·ownFSBase(SB), NOSPLIT, $0-8
	OWN_FS_BASE(AX)
	MOVQ	AX, ret+0(FP)
	RET

// func threadPointer() uintptr
// Returns the word at 0(FS): glibc's TCB self-pointer under cgo.
TEXT ·threadPointer(SB), NOSPLIT, $0-8
	MOVQ	0(FS), AX
	MOVQ	AX, ret+0(FP)
	RET

// func peek64(addr uintptr) uint64
TEXT ·peek64(SB), NOSPLIT, $0-16
	MOVQ	addr+0(FP), AX
	MOVQ	(AX), AX
	MOVQ	AX, ret+8(FP)
	RET

// func peek32(addr uintptr) uint32
TEXT ·peek32(SB), NOSPLIT, $0-12
	MOVQ	addr+0(FP), AX
	MOVL	(AX), AX
	MOVL	AX, ret+8(FP)
	RET

// func currentArea() uintptr
// Returns the calling thread's registered area, or 0 when the thread has
// none yet or uses the fallback. It never registers.
TEXT ·currentArea(SB), NOSPLIT, $0-8
	LOAD_THREAD_AREA(AX, none)
	FS_BASE(CX)
	ADDQ	CX, AX
	MOVQ	AX, ret+0(FP)
	RET
none:
	MOVQ	$0, ret+0(FP)
	RET
	GLIBC_THREAD_AREA(AX, none)

// func CPU() int
// Reads cpu_id from the calling thread's area; without one it tail-calls
// cpuSlow, which registers the thread or asks getcpu.
TEXT ·CPU(SB), NOSPLIT, $0-8
	LOAD_THREAD_AREA(AX, slow)
	SEG_FS; MOVL	4(AX), AX
	MOVQ	AX, ret+0(FP)
	RET
slow:
	JMP	·cpuSlow(SB)
	GLIBC_THREAD_AREA(AX, slow)

// func areaField(off uintptr) (v uint32, ok bool)
// Reads the 32-bit field at off in the calling thread's area.
TEXT ·areaField(SB), NOSPLIT, $0-13
	LOAD_THREAD_AREA(AX, none)
	MOVQ	off+0(FP), CX
	SEG_FS; MOVL	(AX)(CX*1), AX
	MOVL	AX, v+8(FP)
	MOVB	$1, ok+12(FP)
	RET
none:
	MOVL	$0, v+8(FP)
	MOVB	$0, ok+12(FP)
	RET
	GLIBC_THREAD_AREA(AX, none)

// func peek8(addr uintptr) uint8
TEXT ·peek8(SB), NOSPLIT, $0-9
	MOVQ	addr+0(FP), AX
	MOVB	(AX), AX
	MOVB	AX, ret+8(FP)
	RET
