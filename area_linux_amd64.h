// Locating the calling thread's rseq area, shared by every assembly file of
// the package. See runtime_linux_amd64.go for the facts behind it.

// FS-relative offset of m.tls[2] (threadSlotOffset in Go).
#define THREAD_SLOT 8

// LOAD_AREA(mode, slot, bias, reg, fail) leaves the address of the calling
// thread's struct rseq in reg, or jumps to fail when the thread has no
// usable area. mode is the byte variable (·areaMode or ·opsMode) that says
// whether areas are used at all; slot and bias (·areaSlot and ·areaBias, or
// ·opsSlot and ·opsBias, set with the mode: see areaLocation) say where the
// area is, one formula for both modes, so that neither takes a branch:
//
//	reg = *(FS + slot)     // the load carries an FS segment prefix
//	if reg <= 1 { fail }   // own mode: 0 not registered yet, 1 fallback
//	reg += bias
//	if cpu_id < 0 { fail } // glibc mode: -2 when its registration failed
//
//	own mode:   slot = THREAD_SLOT (m.tls[2] holds the area), bias = 0
//	glibc mode: slot = 0 (the TCB's pointer to itself), bias = __rseq_offset
//
// It clobbers only reg and the flags: 5 loads (mode, slot, FS slot, bias,
// cpu_id), 3 branches never taken on the fast path.
#define LOAD_AREA(mode, slot, bias, reg, fail) \
	CMPB	mode, $0; \
	JEQ	fail; \
	MOVQ	slot, reg; \
	BYTE	$0x64; MOVQ	(reg), reg; \
	CMPQ	reg, $1; \
	JLS	fail; \
	ADDQ	bias, reg; \
	CMPL	4(reg), $0; \
	JLT	fail

// LOAD_OPS_AREA is LOAD_AREA for the operations (sections), which run
// where ·opsMode says; LOAD_THREAD_AREA is LOAD_AREA for reads of the area
// (CPU, areaField), which work wherever ·areaMode says.
#define LOAD_OPS_AREA(reg, fail) LOAD_AREA(·opsMode(SB), ·opsSlot(SB), ·opsBias(SB), reg, fail)
#define LOAD_THREAD_AREA(reg, fail) LOAD_AREA(·areaMode(SB), ·areaSlot(SB), ·areaBias(SB), reg, fail)

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
