// Locating the calling thread's rseq area, shared by every assembly file of
// the package. See runtime_linux_amd64.go for the facts behind it.

// FS-relative offset of m.tls[2] (threadSlotOffset in Go).
#define THREAD_SLOT 8

// Values of ·areaMode (areaModeOwn, areaModeGlibc in Go; 0 is fallback).
#define MODE_OWN 1
#define MODE_GLIBC 2

// LOAD_AREA(mode, reg, fail) leaves the address of the calling thread's
// struct rseq in reg, or jumps to fail when the thread has no usable area.
// mode is the byte variable (·areaMode or ·opsMode) that says how areas are
// found. Own mode, the common case, falls straight through:
//   own mode:   reg = m.tls[2]; 0 means not registered yet, 1 fallback.
// Glibc mode is handled out of line by GLIBC_AREA, which every function
// that uses LOAD_AREA must place after one of its RETs:
//   glibc mode: reg = 0(FS) + __rseq_offset, usable while cpu_id >= 0
//               (glibc writes -2 there when its registration failed).
// Both clobber only reg and the flags and define the labels area_glibc and
// area_ok, so each can be used once per TEXT symbol.
#define LOAD_AREA(mode, reg, fail) \
	CMPB	mode, $MODE_OWN; \
	JNE	area_glibc; \
	MOVQ	THREAD_SLOT(FS), reg; \
	CMPQ	reg, $1; \
	JLS	fail; \
area_ok: NOP

#define GLIBC_AREA(mode, reg, fail) \
area_glibc: CMPB	mode, $MODE_GLIBC; \
	JNE	fail; \
	MOVQ	0(FS), reg; \
	ADDQ	·glibcOffset(SB), reg; \
	CMPL	4(reg), $0; \
	JLT	fail; \
	JMP	area_ok

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
