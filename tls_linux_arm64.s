// Thread-slot and thread-pointer access for the rseq package on
// linux/arm64. The facts these routines rely on are documented in
// runtime_linux.go and runtime_linux_arm64.go.

#include "textflag.h"
#include "area_linux_arm64.h"

// func tlsG() uintptr
// Returns the current g (R28).
TEXT ·tlsG(SB), NOSPLIT, $0-8
	MOVD	g, R0
	MOVD	R0, ret+0(FP)
	RET

// func threadSlot() uintptr
// Returns g.m.tls[2] of the calling thread.
TEXT ·threadSlot(SB), NOSPLIT, $0-8
	MOVD	G_M(g), R0
	MOVD	M_THREAD_SLOT(R0), R0
	MOVD	R0, ret+0(FP)
	RET

// func setThreadSlot(v uintptr)
// Stores v in g.m.tls[2] of the calling thread.
TEXT ·setThreadSlot(SB), NOSPLIT, $0-8
	MOVD	v+0(FP), R1
	MOVD	G_M(g), R0
	MOVD	R1, M_THREAD_SLOT(R0)
	RET

// func threadPointer() uintptr
// Returns TPIDR_EL0: glibc's thread pointer under cgo; without cgo whatever
// the thread inherited from the thread that created it.
TEXT ·threadPointer(SB), NOSPLIT, $0-8
	MRS	TPIDR_EL0, R0
	MOVD	R0, ret+0(FP)
	RET

// func peek64(addr uintptr) uint64
TEXT ·peek64(SB), NOSPLIT, $0-16
	MOVD	addr+0(FP), R0
	MOVD	(R0), R0
	MOVD	R0, ret+8(FP)
	RET

// func peek32(addr uintptr) uint32
TEXT ·peek32(SB), NOSPLIT, $0-12
	MOVD	addr+0(FP), R0
	MOVWU	(R0), R0
	MOVW	R0, ret+8(FP)
	RET

// func peek8(addr uintptr) uint8
TEXT ·peek8(SB), NOSPLIT, $0-9
	MOVD	addr+0(FP), R0
	MOVBU	(R0), R0
	MOVB	R0, ret+8(FP)
	RET

// func currentArea() uintptr
// Returns the calling thread's registered area, or 0 when the thread has
// none yet or uses the fallback. It never registers.
TEXT ·currentArea(SB), NOSPLIT, $0-8
	LOAD_AREA(·areaMode(SB), R0, R1, none)
	MOVD	R0, ret+0(FP)
	RET
	GLIBC_AREA(·areaMode(SB), R0, R1, none)
none:
	MOVD	ZR, ret+0(FP)
	RET

// func CPU() int
// Reads cpu_id from the calling thread's area; without one it tail-calls
// cpuSlow, which registers the thread or asks getcpu.
TEXT ·CPU(SB), NOSPLIT, $0-8
	LOAD_AREA(·areaMode(SB), R0, R1, slow)
	MOVWU	4(R0), R0
	MOVD	R0, ret+0(FP)
	RET
	GLIBC_AREA(·areaMode(SB), R0, R1, slow)
slow:
	B	·cpuSlow(SB)

// func areaField(off uintptr) (v uint32, ok bool)
// Reads the 32-bit field at off in the calling thread's area.
TEXT ·areaField(SB), NOSPLIT, $0-13
	LOAD_AREA(·areaMode(SB), R0, R1, none)
	MOVD	off+0(FP), R2
	MOVWU	(R0)(R2), R0
	MOVW	R0, v+8(FP)
	MOVD	$1, R1
	MOVB	R1, ok+12(FP)
	RET
	GLIBC_AREA(·areaMode(SB), R0, R1, none)
none:
	MOVW	ZR, v+8(FP)
	MOVB	ZR, ok+12(FP)
	RET
