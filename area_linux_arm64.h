// Locating the calling thread's rseq area, shared by every assembly file of
// the package on linux/arm64. See runtime_linux.go and runtime_linux_arm64.go
// for the facts behind it.

// Offsets in the runtime's g and m structures (gMOffset and
// mThreadSlotOffset in Go): g.m, and m.tls[2] where own mode keeps the
// thread's area address. g is in R28 ("g" to the assembler).
#define G_M 48
#define M_THREAD_SLOT 144

// Values of ·areaMode (areaModeOwn, areaModeGlibc in Go; 0 is fallback).
#define MODE_OWN 1
#define MODE_GLIBC 2

// LOAD_AREA(mode, reg, tmp, fail) leaves the address of the calling thread's
// struct rseq in reg, or jumps to fail when the thread has no usable area.
// mode is the byte variable (·areaMode or ·opsMode) that says how areas are
// found. Own mode, the common case, falls straight through:
//   own mode:   reg = g.m.tls[2]; 0 means not registered yet, 1 fallback.
// The M belongs to the calling thread for as long as the goroutine runs
// assembly, so the slot proves itself: no other thread reads or writes it.
// (TPIDR_EL0 would not: without cgo a new thread inherits its creator's.)
// Glibc mode is handled out of line by GLIBC_AREA, which every function
// that uses LOAD_AREA must place after one of its RETs:
//   glibc mode: reg = TPIDR_EL0 + __rseq_offset, usable while cpu_id >= 0
//               (glibc writes -2 there when its registration failed).
// Both clobber only reg, tmp and the flags (and R27, the assembler's
// temporary, to load mode) and define the labels area_glibc and area_ok, so
// each can be used once per TEXT symbol.
#define LOAD_AREA(mode, reg, tmp, fail) \
	MOVBU	mode, tmp; \
	CMP	$MODE_OWN, tmp; \
	BNE	area_glibc; \
	MOVD	G_M(g), reg; \
	MOVD	M_THREAD_SLOT(reg), reg; \
	CMP	$1, reg; \
	BLS	fail; \
area_ok: NOP

#define GLIBC_AREA(mode, reg, tmp, fail) \
area_glibc: CMP	$MODE_GLIBC, tmp; \
	BNE	fail; \
	MRS	TPIDR_EL0, reg; \
	MOVD	·glibcOffset(SB), tmp; \
	ADD	tmp, reg, reg; \
	MOVW	4(reg), tmp; \
	TBNZ	$63, tmp, fail; \
	B	area_ok

// RSEQ_SIGNATURE emits the arm64 abort signature 0xd428bc00 as a data word
// (it decodes as "brk #0x45e0"). The kernel checks that the 4 bytes before
// a section's abort address equal the registered signature.
#define RSEQ_SIGNATURE \
	WORD	$0xd428bc00

// INDEX_FIELD(ix) turns the Index in ix into the offset of the struct rseq
// field it reads (Index.field), in ix. ByCPU (an even Index), the common
// case, falls straight through and gets cpu_id_start's offset, 0, from a
// move that does not wait for the load of ix, so that the section's read
// of its index waits only for the area (see area_linux_amd64.h for the
// measurement). ByConcurrencyID is handled out of line by INDEX_FIELD_CID,
// which every function that uses INDEX_FIELD must place after one of its
// RETs:
//
//	ix&1 == 0: ix = 0                    // offCPUIDStart
//	ix&1 == 1: ix = concurrencyIDField   // mm_cid's offset, or cpu_id_start's
//
// Both clobber only ix (and R27, the assembler's temporary, to load the
// variable), and define the labels index_cid and index_ok, so each can be
// used once per TEXT symbol.
#define INDEX_FIELD(ix) \
	TBNZ	$0, ix, index_cid; \
	MOVD	$0, ix; \
index_ok: NOP

// HANDLE_ARRAY(fail) starts a handle operation (handles.go): it loads the
// *HandleArray argument a into R10, a's base into R0 with LDAR (base is at
// offset 0: handlearray.h), an acquire, so that the loads of the other
// fields come after it (HandleArray.Publish stores base last, with a
// release), and jumps to fail if it is nil (the zero HandleArray, whose
// operations find nothing: the fallback says so); then a's stride into R1
// and the offset of its Index's field into R2 (INDEX_FIELD, so each TEXT
// symbol uses it once). The operations load the other fields they need
// from R10.
#define HANDLE_ARRAY(fail) \
	MOVD	a+0(FP), R10; \
	LDAR	(R10), R0; \
	CBZ	R0, fail; \
	MOVD	HandleArray_stride(R10), R1; \
	MOVBU	HandleArray_ix(R10), R2; \
	INDEX_FIELD(R2)

#define INDEX_FIELD_CID(ix) \
index_cid: MOVD	·concurrencyIDField(SB), ix; \
	B	index_ok

// COUNT_ABORT(addr, t1, t2) adds 1 to the uint64 at addr (a register) with
// a load-exclusive/store-exclusive loop, which every arm64 CPU has (LDADD
// needs ARMv8.1). It runs in the abort handler, outside the section, and
// defines the label count_retry, so it can be used once per TEXT symbol.
#define COUNT_ABORT(addr, t1, t2) \
count_retry: LDAXR	(addr), t1; \
	ADD	$1, t1, t1; \
	STLXR	t1, (addr), t2; \
	CBNZW	t2, count_retry
