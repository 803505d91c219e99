// Locating the calling thread's rseq area, shared by every assembly file of
// the package. See runtime_linux_amd64.go for the facts behind it.

// FS-relative offset of m.tls[2] (threadSlotOffset in Go), and the offset in
// the runtime's m of the FS base without cgo, &m.tls[1] (mTLSOffset + 8),
// with g.m's offset in g (gMOffset).
#define THREAD_SLOT 8
#define M_FS_BASE 136
#define G_M 48

// Values of ·areaMode and ·opsMode (areaModeOwn, areaModeGlibc in Go; 0 is
// fallback).
#define MODE_OWN 1
#define MODE_GLIBC 2

// SEG_FS is the FS segment-override prefix. The assembly reaches the area
// through its offset from the thread pointer (the FS base), so every access
// to the area carries it: SEG_FS; MOVL (R8), CX reads the word at FS base +
// R8.
#define SEG_FS BYTE $0x64

// LOAD_AREA(mode, reg, fail) leaves in reg the offset of the calling
// thread's struct rseq from its FS base, or jumps to fail when the thread has
// no usable area. mode is the byte variable (·areaMode or ·opsMode) that
// says how areas are found. Own mode, the common case, falls straight
// through:
//
//	own mode:   reg = *(FS + THREAD_SLOT)  // m.tls[2]: area - FS base
//	            if reg <= 1 { fail }        // 0 not registered yet, 1 fallback
//
// Glibc mode is handled out of line by GLIBC_AREA, which every function that
// uses LOAD_AREA must place after one of its RETs:
//
//	glibc mode: reg = __rseq_offset         // the same for every thread
//	            if *(FS + reg + 4) < 0 { fail } // cpu_id -2: glibc's registration failed
//
// Both modes thus give the area's address in one load, and the same code
// (SEG_FS accesses) works in both. This matters for speed: a section's
// store address waits on that load and then on the index read from the
// area, and the next call's loads (its arguments, which the caller has just
// stored) are held up until it resolves. With the area address two loads
// deep (a slot variable, then the slot) Counter.Add took 3.7 ns on AMD Zen
// 3, with one 2.5 ns.
//
// Both clobber only reg and the flags, and define the labels area_glibc and
// area_ok, so each can be used once per TEXT symbol.
#define LOAD_AREA(mode, reg, fail) \
	CMPB	mode, $MODE_OWN; \
	JNE	area_glibc; \
	MOVL	$THREAD_SLOT, reg; \
	SEG_FS; MOVQ	(reg), reg; \
	CMPQ	reg, $1; \
	JLS	fail; \
area_ok: NOP

#define GLIBC_AREA(mode, reg, fail) \
area_glibc: CMPB	mode, $MODE_GLIBC; \
	JNE	fail; \
	MOVQ	·glibcOffset(SB), reg; \
	SEG_FS; CMPL	4(reg), $0; \
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

// OWN_FS_BASE(reg) leaves in reg the calling thread's FS base without cgo,
// &m.tls[1] of the thread's m (the runtime's settls): g.m + M_FS_BASE.
#define OWN_FS_BASE(reg) \
	MOVQ	(TLS), reg; \
	MOVQ	G_M(reg), reg; \
	ADDQ	$M_FS_BASE, reg

// FS_BASE(reg) leaves the calling thread's FS base in reg, in the mode
// ·areaMode says (areas in use): glibc's thread pointer, which 0(FS) holds,
// or OWN_FS_BASE. It clobbers reg and the flags and defines the labels
// fs_glibc and fs_ok.
#define FS_BASE(reg) \
	CMPB	·areaMode(SB), $MODE_GLIBC; \
	JEQ	fs_glibc; \
	OWN_FS_BASE(reg); \
	JMP	fs_ok; \
fs_glibc: XORL	reg, reg; \
	SEG_FS; MOVQ	(reg), reg; \
fs_ok: NOP

// RSEQ_SIGNATURE emits the x86 abort signature 0x53053053 as the bytes
// 0f b9 3d 53 30 05 53 (one ud1 instruction). The kernel checks that the 4
// bytes before a section's abort address equal the registered signature.
#define RSEQ_SIGNATURE \
	BYTE	$0x0f; BYTE $0xb9; BYTE $0x3d; \
	LONG	$0x53053053

// INDEX_FIELD(ix) turns the Index in ix into the offset of the struct rseq
// field it reads (Index.field), in ix. ByCPU (an even Index), the common
// case, falls straight through and gets cpu_id_start's offset, 0, from an
// instruction that does not wait for the load of ix: the section's read of
// its index then waits only for the area, not for a load of the argument
// and of a variable after it (a chain that cost Pool's Get+Put 18.2 ns
// against 12.9 without it, on AMD Zen 3). ByConcurrencyID is handled out of
// line by INDEX_FIELD_CID, which every function that uses INDEX_FIELD must
// place after one of its RETs:
//
//	ix&1 == 0: ix = 0                    // offCPUIDStart
//	ix&1 == 1: ix = concurrencyIDField   // mm_cid's offset, or cpu_id_start's
//
// Both clobber only ix and the flags, and define the labels index_cid and
// index_ok, so each can be used once per TEXT symbol.
#define INDEX_FIELD(ix) \
	TESTB	$1, ix; \
	JNE	index_cid; \
	XORL	ix, ix; \
index_ok: NOP

// HANDLE_ARRAY(fail) starts a handle operation (handles.go): it loads the
// *HandleArray argument a into AX, a's base into DI, first, so that the loads
// of the other fields come after it (HandleArray.Publish stores base last;
// amd64 loads are acquires), and jumps to fail if it is nil (the zero
// HandleArray, whose operations find nothing: the fallback says so); then
// a's stride into SI and the offset of its Index's field into DX
// (INDEX_FIELD, so each TEXT symbol uses it once). The operations load the
// other fields they need from AX.
#define HANDLE_ARRAY(fail) \
	MOVQ	a+0(FP), AX; \
	MOVQ	HandleArray_base(AX), DI; \
	TESTQ	DI, DI; \
	JEQ	fail; \
	MOVQ	HandleArray_stride(AX), SI; \
	MOVBQZX	HandleArray_ix(AX), DX; \
	INDEX_FIELD(DX)

#define INDEX_FIELD_CID(ix) \
index_cid: MOVQ	·concurrencyIDField(SB), ix; \
	JMP	index_ok
