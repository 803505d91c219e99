// Time-slice extension requests on linux/arm64 (slice_linux.go). Linux 7.3
// does not offer the extension on arm64 (CONFIG_RSEQ_SLICE_EXTENSION needs
// GENERIC_ENTRY, which arm64 does not select yet), so the flags bit below
// stays clear there and sliceRequestFast returns 0; the code is the amd64
// code, ready for a kernel that does. Neither function is a restartable
// section, and neither writes the flags or slice_ctrl.granted.

#include "textflag.h"
#include "area_linux_arm64.h"

// struct rseq: flags at 16, slice_ctrl at 28 (u8 request, u8 granted).
#define OFF_FLAGS 16
#define OFF_REQUEST 28
#define OFF_GRANTED 29
// RSEQ_CS_FLAG_SLICE_EXT_ENABLED_BIT
#define FLAG_SLICE_ENABLED_BIT 5
// __NR_rseq_slice_yield (include/uapi/asm-generic/unistd.h)
#define SYS_RSEQ_SLICE_YIELD 471

// func sliceRequestFast() uintptr
TEXT ·sliceRequestFast(SB), NOSPLIT, $0-8
	LOAD_AREA(·areaMode(SB), R0, R1, none)
	MOVWU	OFF_FLAGS(R0), R2
	TBZ	$FLAG_SLICE_ENABLED_BIT, R2, none
	// request and granted both 0: nothing pending on this thread.
	MOVHU	OFF_REQUEST(R0), R2
	CBNZW	R2, pending
	MOVD	$1, R2
	MOVB	R2, OFF_REQUEST(R0)
	MOVD	R0, ret+0(FP)
	RET
pending:
	MOVD	$1, R2
	MOVD	R2, ret+0(FP)
	RET
	GLIBC_AREA(·areaMode(SB), R0, R1, none)
none:
	MOVD	ZR, ret+0(FP)
	RET

// func sliceEndFast(area uintptr) (granted, yielded bool)
TEXT ·sliceEndFast(SB), NOSPLIT, $0-10
	LOAD_AREA(·areaMode(SB), R0, R1, other)
	MOVD	area+0(FP), R2
	CMP	R0, R2
	BNE	other
	MOVB	ZR, OFF_REQUEST(R0)
	MOVBU	OFF_GRANTED(R0), R2
	CBZW	R2, other
	MOVD	$1, R2
	MOVB	R2, granted+8(FP)
	// Give the CPU back: the kernel reschedules at the system call's entry
	// and returns 1 if the grant was still in force.
	MOVD	$SYS_RSEQ_SLICE_YIELD, R8
	SVC
	CMP	$1, R0
	CSET	EQ, R2
	MOVB	R2, yielded+9(FP)
	RET
	GLIBC_AREA(·areaMode(SB), R0, R1, other)
other:
	MOVB	ZR, granted+8(FP)
	MOVB	ZR, yielded+9(FP)
	RET
