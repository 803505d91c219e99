// Time-slice extension requests on linux/amd64 (slice_linux.go). Neither
// function is a restartable section: they set and clear the user-writable
// slice_ctrl.request byte of the calling thread's area and read the
// kernel's slice_ctrl.granted byte, which is all the kernel allows
// (Documentation/userspace-api/rseq.rst). They never write the flags or
// granted.

#include "textflag.h"
#include "area_linux_amd64.h"

// struct rseq: flags at 16, slice_ctrl at 28 (u8 request, u8 granted).
#define OFF_FLAGS 16
#define OFF_REQUEST 28
#define OFF_GRANTED 29
// RSEQ_CS_FLAG_SLICE_EXT_ENABLED
#define FLAG_SLICE_ENABLED 0x20
// __NR_rseq_slice_yield (arch/x86/entry/syscalls/syscall_64.tbl)
#define SYS_RSEQ_SLICE_YIELD 471

// func sliceRequestFast() uintptr
TEXT ·sliceRequestFast(SB), NOSPLIT, $0-8
	LOAD_THREAD_AREA(AX, none)
	SEG_FS; MOVL	OFF_FLAGS(AX), CX
	TESTL	$FLAG_SLICE_ENABLED, CX
	JZ	none
	// request and granted both 0: nothing pending on this thread.
	SEG_FS; MOVWLZX	OFF_REQUEST(AX), CX
	TESTL	CX, CX
	JNZ	pending
	SEG_FS; MOVB	$1, OFF_REQUEST(AX)
	// Return the area's address, which names the thread.
	FS_BASE(CX)
	ADDQ	CX, AX
	MOVQ	AX, ret+0(FP)
	RET
pending:
	MOVQ	$1, ret+0(FP)
	RET
none:
	MOVQ	$0, ret+0(FP)
	RET
	GLIBC_THREAD_AREA(AX, none)

// func sliceEndFast(area uintptr) (granted, yielded bool)
TEXT ·sliceEndFast(SB), NOSPLIT, $0-10
	LOAD_THREAD_AREA(AX, other)
	FS_BASE(CX)
	ADDQ	AX, CX
	CMPQ	CX, area+0(FP)
	JNE	other
	SEG_FS; MOVB	$0, OFF_REQUEST(AX)
	SEG_FS; MOVBLZX	OFF_GRANTED(AX), CX
	TESTL	CX, CX
	JZ	other
	MOVB	$1, granted+8(FP)
	// Give the CPU back: the kernel reschedules at the system call's entry
	// and returns 1 if the grant was still in force.
	MOVQ	$SYS_RSEQ_SLICE_YIELD, AX
	SYSCALL
	CMPQ	AX, $1
	SETEQ	yielded+9(FP)
	RET
other:
	MOVB	$0, granted+8(FP)
	MOVB	$0, yielded+9(FP)
	RET
	GLIBC_THREAD_AREA(AX, other)
