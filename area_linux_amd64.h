// Locating the calling thread's rseq area, shared by every assembly file of
// the package. See runtime_linux_amd64.go for the facts behind it.

// FS-relative offset of m.tls[2] (threadSlotOffset in Go).
#define THREAD_SLOT 8

// Values of ·areaMode and ·opsMode (areaModeOwn, areaModeGlibc in Go; 0 is
// fallback).
#define MODE_OWN 1
#define MODE_GLIBC 2

// LOAD_AREA(mode, reg, fail) leaves the address of the calling thread's
// struct rseq in reg, or jumps to fail when the thread has no usable area.
// mode is the byte variable (·areaMode or ·opsMode) that says how areas are
// found. Own mode, the common case, falls straight through:
//
//	own mode:   reg = *(FS + THREAD_SLOT)   // m.tls[2]: one FS-relative load
//	            if reg <= 1 { fail }         // 0 not registered yet, 1 fallback
//
// Glibc mode is handled out of line by GLIBC_AREA, which every function that
// uses LOAD_AREA must place after one of its RETs:
//
//	glibc mode: reg = *(FS + 0) + __rseq_offset  // the TCB's pointer to itself
//	            if cpu_id < 0 { fail }           // -2: glibc's registration failed
//
// The offsets are immediates, not variables, so that the address of the
// area, and so the address a section writes, depends on one load (two in
// glibc mode, the second a variable read in parallel): a section's store
// address resolves late when it waits on a chain of loads, and the loads of
// the next call (its arguments, which the caller has just stored) then
// wait for it. On AMD Zen 3 a chain of three loads made Counter.Add 1.4x
// slower than with one.
//
// Both clobber only reg and the flags, and define the labels area_glibc and
// area_ok, so each can be used once per TEXT symbol.
#define LOAD_AREA(mode, reg, fail) \
	CMPB	mode, $MODE_OWN; \
	JNE	area_glibc; \
	MOVL	$THREAD_SLOT, reg; \
	BYTE	$0x64; MOVQ	(reg), reg; \
	CMPQ	reg, $1; \
	JLS	fail; \
area_ok: NOP

#define GLIBC_AREA(mode, reg, fail) \
area_glibc: CMPB	mode, $MODE_GLIBC; \
	JNE	fail; \
	XORL	reg, reg; \
	BYTE	$0x64; MOVQ	(reg), reg; \
	ADDQ	·glibcOffset(SB), reg; \
	CMPL	4(reg), $0; \
	JLT	fail; \
	JMP	area_ok

// LOAD_OPS_AREA and GLIBC_OPS_AREA are LOAD_AREA and GLIBC_AREA for the
// operations (sections), which run where ·opsMode says; LOAD_THREAD_AREA and
// GLIBC_THREAD_AREA for reads of the area (CPU, areaField), which work
// wherever ·areaMode says.
#define LOAD_OPS_AREA(reg, fail) LOAD_AREA(·opsMode(SB), reg, fail)
#define GLIBC_OPS_AREA(reg, fail) GLIBC_AREA(·opsMode(SB), reg, fail)
#define LOAD_THREAD_AREA(reg, fail) LOAD_AREA(·areaMode(SB), reg, fail)
#define GLIBC_THREAD_AREA(reg, fail) GLIBC_AREA(·areaMode(SB), reg, fail)

// RSEQ_SIGNATURE emits the x86 abort signature 0x53053053 as the bytes
// 0f b9 3d 53 30 05 53 (one ud1 instruction). The kernel checks that the 4
// bytes before a section's abort address equal the registered signature.
#define RSEQ_SIGNATURE \
	BYTE	$0x0f; BYTE $0xb9; BYTE $0x3d; \
	LONG	$0x53053053

// INDEX_FIELD(ix, tmp) turns the Index in ix into the offset of the struct
// rseq field it reads, indexField[ix&1], in ix.
#define INDEX_FIELD(ix, tmp) \
	ANDQ	$1, ix; \
	LEAQ	·indexField(SB), tmp; \
	MOVQ	(tmp)(ix*8), ix
