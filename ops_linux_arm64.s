// Restartable critical sections of the per-CPU operations, linux/arm64.
//
// The same ten sections as ops_linux_amd64.s, in the same order, with the
// same Go pseudocode (ops.go and handles.go document the contracts). Every
// section follows one shape:
//
//	LOAD_AREA               find the thread's struct rseq, or jump to the
//	                        operation's Go fallback
//	load arguments          into general-purpose registers only
//	restart:                (the abort handler jumps back here)
//	MOVD  $desc, R10        arm: rseq_cs = &this section's struct rseq_cs
//	MOVD  R10, 8(R8)
//	start:                  first instruction of the section (start_ip)
//	...                     read the index, compute, compare
//	commit store            the section's last instruction
//	post-commit:            results to the stack, RET
//	signature               the word 0xd428bc00
//	abort:                  count the abort, B restart
//	exits:                  compare-failed / moved / empty paths
//	GLIBC_AREA              glibc mode's way to the area, out of line
//
// Every instruction is 4 bytes, so the abort points of a section are the
// words from start_ip to the commit store. The sections have no calls,
// system calls or indirect branches, are entered only at the top, and only
// their commit store (and the speculative stores of storeCommit, copyCommit
// and the handle operations, into memory that means nothing until the
// commit) write memory. No section uses a literal pool: the assembler would
// place one after a RET, between the code and the signature.
//
// Memory ordering. arm64 is weakly ordered, but a section runs on one CPU:
// the CPU that later runs another section on the same slot sees its stores
// in order (the kernel's context switch is a full barrier). What other CPUs
// see is ordered as follows:
//
//   - storeCommit and copyCommit commit with STLR (store-release): a reader
//     on another CPU that loads the commit word with acquire semantics (Go's
//     sync/atomic loads are LDAR) sees the speculative stores that the
//     commit published. This serves StoreThenCommitRelease and
//     CopyThenCommitRelease; StoreThenCommit and CopyThenCommit use the same
//     sections, so they are release-ordered too.
//   - cmpStore and cmp2Store load *v with LDAR (load-acquire): once the
//     comparison sees a value another CPU stored with release semantics
//     (an unlock, say), every later load of the caller sees what that CPU
//     wrote before it. A per-CPU lock taken with CompareAndStore is an
//     acquire, as a lock must be.
//   - Every other commit is a plain store (STR): single-copy atomic for an
//     aligned word, so remote readers see the old or the new value, never a
//     torn one, but without ordering against the section's other stores.
//     Readers that need more (a drain, a remote lock, the handle table)
//     call Fence for the CPU first: membarrier makes the target CPU execute
//     a full barrier before it returns.
//
// The comments "// rseq:start NAME", "rseq:commit", "rseq:abort" and
// "rseq:exit" mark the instructions that internal/gensections measures to
// generate the descriptors in sections_linux_arm64.s; the package verifies
// them against the code bytes at start-up. R8 holds the area, R9 is
// LOAD_AREA's scratch, R10 is scratch; R18 (platform), R26-R29 and R30 (LR)
// are not used.

// Every function here starts on a 64-byte boundary (PCALIGN $64 as its
// first line): where the linker happened to put them moved the operations'
// cost by a fifth on an AMD Zen 3 host (Counter.Add, AddCPU, in glibc mode,
// whose path jumps to the end of the function and back: 3.75 ns at one
// address, 2.87 aligned; README, "Which machine").

#include "textflag.h"
#include "handlearray.h"
#include "area_linux_arm64.h"
#include "sections_arm64.h"

// func addSection(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
//
//	slot = *(area + field)
//	*(*int64)(base + slot*stride) += n    // commit: the store
TEXT ·addSection(SB), NOSPLIT, $0-40
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	MOVD	stride+8(FP), R1
	MOVD	field+16(FP), R2
	MOVD	n+24(FP), R3
restart:
	MOVD	$DESC_add, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start add
	MUL	R1, R4, R5
	MOVD	(R0)(R5), R6
	ADD	R3, R6, R6
	MOVD	R6, (R0)(R5)	// rseq:commit add
	MOVD	R4, slot+32(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_add, R10	// rseq:abort add
	COUNT_ABORT(R10, R11, R12)
	B	restart
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·addFallback(SB)

// func addIndirectSection(base unsafe.Pointer, stride, field, off uintptr, n int64) (slot int)
//
//	slot = *(area + field)
//	p := *(*uintptr)(base + slot*stride)
//	*(*int64)(p + off) += n                // commit: the store
TEXT ·addIndirectSection(SB), NOSPLIT, $0-48
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	MOVD	stride+8(FP), R1
	MOVD	field+16(FP), R2
	MOVD	off+24(FP), R3
	MOVD	n+32(FP), R6
restart:
	MOVD	$DESC_addIndirect, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start addIndirect
	MUL	R1, R4, R5
	MOVD	(R0)(R5), R11
	MOVD	(R11)(R3), R12
	ADD	R6, R12, R12
	MOVD	R12, (R11)(R3)	// rseq:commit addIndirect
	MOVD	R4, slot+40(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_addIndirect, R10	// rseq:abort addIndirect
	COUNT_ABORT(R10, R11, R12)
	B	restart
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·addIndirectFallback(SB)

// func popSection(base unsafe.Pointer, stride, field, empty, nextOff uintptr) (slot int, head uintptr, ok bool)
//
//	slot = *(area + field)
//	v := (*uintptr)(base + slot*stride)
//	if *v == empty { exit: ok = false }
//	head = *v
//	*v = *(*uintptr)(head + nextOff)       // commit: the store
TEXT ·popSection(SB), NOSPLIT, $0-57
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	MOVD	stride+8(FP), R1
	MOVD	field+16(FP), R2
	MOVD	empty+24(FP), R3
	MOVD	nextOff+32(FP), R6
restart:
	MOVD	$DESC_pop, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start pop
	MUL	R1, R4, R5
	ADD	R0, R5, R5
	MOVD	(R5), R11
	CMP	R3, R11
	BEQ	isempty
	MOVD	(R11)(R6), R12
	MOVD	R12, (R5)	// rseq:commit pop
	MOVD	R4, slot+40(FP)
	MOVD	R11, head+48(FP)
	MOVD	$1, R12
	MOVB	R12, ok+56(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_pop, R10	// rseq:abort pop
	COUNT_ABORT(R10, R11, R12)
	B	restart
isempty:
	MOVD	R4, slot+40(FP)	// rseq:exit pop
	MOVD	ZR, head+48(FP)
	MOVB	ZR, ok+56(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·popFallback(SB)

// func cmpStoreSection(field uintptr, slot int, v *uintptr, expect, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect { exit: CompareFailed } // *v: load-acquire (LDAR)
//	*v = new                               // commit
TEXT ·cmpStoreSection(SB), NOSPLIT, $0-41
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	field+0(FP), R2
	MOVD	slot+8(FP), R1
	MOVD	v+16(FP), R0
	MOVD	expect+24(FP), R3
	MOVD	new+32(FP), R6
restart:
	MOVD	$DESC_cmpStore, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start cmpStore
	CMP	R1, R4
	BNE	moved
	LDAR	(R0), R5
	CMP	R3, R5
	BNE	cmpfail
	MOVD	R6, (R0)	// rseq:commit cmpStore
	MOVB	ZR, ret+40(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_cmpStore, R10	// rseq:abort cmpStore
	COUNT_ABORT(R10, R11, R12)
	B	restart
cmpfail:
	MOVD	$1, R5	// rseq:exit cmpStore
	MOVB	R5, ret+40(FP)
	RET
moved:
	MOVD	$2, R5	// rseq:exit cmpStore
	MOVB	R5, ret+40(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·cmpStoreFallback(SB)

// func cmp2StoreSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect || *v2 != expect2 { exit: CompareFailed } // *v: LDAR
//	*v = new                               // commit
TEXT ·cmp2StoreSection(SB), NOSPLIT, $0-57
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	field+0(FP), R2
	MOVD	slot+8(FP), R1
	MOVD	v+16(FP), R0
	MOVD	expect+24(FP), R3
	MOVD	v2+32(FP), R11
	MOVD	expect2+40(FP), R12
	MOVD	new+48(FP), R6
restart:
	MOVD	$DESC_cmp2Store, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start cmp2Store
	CMP	R1, R4
	BNE	moved
	LDAR	(R0), R5
	CMP	R3, R5
	BNE	cmpfail
	MOVD	(R11), R5
	CMP	R12, R5
	BNE	cmpfail
	MOVD	R6, (R0)	// rseq:commit cmp2Store
	MOVB	ZR, ret+56(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_cmp2Store, R10	// rseq:abort cmp2Store
	COUNT_ABORT(R10, R13, R14)
	B	restart
cmpfail:
	MOVD	$1, R5	// rseq:exit cmp2Store
	MOVB	R5, ret+56(FP)
	RET
moved:
	MOVD	$2, R5	// rseq:exit cmp2Store
	MOVB	R5, ret+56(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·cmp2StoreFallback(SB)

// func storeCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect { exit: CompareFailed }
//	*v2 = new2                             // speculative store
//	*v = new                               // commit: store-release
TEXT ·storeCommitSection(SB), NOSPLIT, $0-57
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	field+0(FP), R2
	MOVD	slot+8(FP), R1
	MOVD	v+16(FP), R0
	MOVD	expect+24(FP), R3
	MOVD	v2+32(FP), R11
	MOVD	new2+40(FP), R12
	MOVD	new+48(FP), R6
restart:
	MOVD	$DESC_storeCommit, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start storeCommit
	CMP	R1, R4
	BNE	moved
	MOVD	(R0), R5
	CMP	R3, R5
	BNE	cmpfail
	MOVD	R12, (R11)
	STLR	R6, (R0)	// rseq:commit storeCommit
	MOVB	ZR, ret+56(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_storeCommit, R10	// rseq:abort storeCommit
	COUNT_ABORT(R10, R13, R14)
	B	restart
cmpfail:
	MOVD	$1, R5	// rseq:exit storeCommit
	MOVB	R5, ret+56(FP)
	RET
moved:
	MOVD	$2, R5	// rseq:exit storeCommit
	MOVB	R5, ret+56(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·storeCommitFallback(SB)

// func copyCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect { exit: CompareFailed }
//	copy(dst[:n], src[:n])                 // speculative stores, 8 then 1 byte at a time
//	*v = new                               // commit: store-release
TEXT ·copyCommitSection(SB), NOSPLIT, $0-65
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	field+0(FP), R2
	MOVD	slot+8(FP), R1
	MOVD	v+16(FP), R0
	MOVD	expect+24(FP), R3
	MOVD	dst+32(FP), R11
	MOVD	src+40(FP), R12
	MOVD	n+48(FP), R13
	MOVD	new+56(FP), R6
restart:
	MOVD	$DESC_copyCommit, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start copyCommit
	CMP	R1, R4
	BNE	moved
	MOVD	(R0), R5
	CMP	R3, R5
	BNE	cmpfail
	MOVD	R13, R14
	MOVD	ZR, R15
copy8:
	CMP	$8, R14
	BLO	copy1
	MOVD	(R12)(R15), R5
	MOVD	R5, (R11)(R15)
	ADD	$8, R15, R15
	SUB	$8, R14, R14
	B	copy8
copy1:
	CBZ	R14, copied
	MOVBU	(R12)(R15), R5
	MOVB	R5, (R11)(R15)
	ADD	$1, R15, R15
	SUB	$1, R14, R14
	B	copy1
copied:
	STLR	R6, (R0)	// rseq:commit copyCommit
	MOVB	ZR, ret+64(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_copyCommit, R10	// rseq:abort copyCommit
	COUNT_ABORT(R10, R14, R15)
	B	restart
cmpfail:
	MOVD	$1, R5	// rseq:exit copyCommit
	MOVB	R5, ret+64(FP)
	RET
moved:
	MOVD	$2, R5	// rseq:exit copyCommit
	MOVB	R5, ret+64(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·copyCommitFallback(SB)

// func TakeHandle(a *HandleArray) (v unsafe.Pointer)
//
// The exported function itself, so that callers reach the section with a
// single call (handles.go documents it).
//
//	base, stride, ix, table := a's fields  // a zero a: to the fallback
//	slot = *(area + ix.field())
//	hdr := (*uint64)(base + slot*stride); f, e := low, high half of *hdr
//	if f == 0 { exit: v = nil }
//	h = hs[f-1]; v = table[h]         // hs: the uint32s after the header
//	hs[e-1] = h                       // speculative: a hole until the commit
//	*hdr -= 1 | 1<<32                 // commit: the store
//
// The pointer v is loaded inside the section, while h is still full, and
// lives only in a register until it is written to the result.
TEXT ·TakeHandle(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	HANDLE_ARRAY(fallback)
	MOVD	HandleArray_table(R10), R3
	MOVD	$1, R7
	ORR	R7<<32, R7, R7	// 1 | 1<<32, without a literal pool
restart:
	MOVD	$DESC_takeHandle, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start takeHandle
	MUL	R1, R4, R5
	ADD	R0, R5, R5
	MOVD	(R5), R6
	CBZW	R6, isempty
	MOVWU	R6, R11
	LSR	$32, R6, R12
	ADD	$4, R5, R13
	MOVWU	(R13)(R11<<2), R14
	MOVD	(R3)(R14<<3), R15
	MOVW	R14, (R13)(R12<<2)
	SUB	R7, R6, R6
	MOVD	R6, (R5)	// rseq:commit takeHandle
	MOVD	R15, v+8(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_takeHandle, R10	// rseq:abort takeHandle
	COUNT_ABORT(R10, R11, R12)
	B	restart
isempty:
	MOVD	ZR, v+8(FP)	// rseq:exit takeHandle
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·takeHandleFallback(SB)
	INDEX_FIELD_CID(R2)

// func ClaimHandle(a *HandleArray) (slot int, h uint32, ok bool)
//
//	base, stride, ix, capacity := a's fields  // a zero a: to the fallback
//	slot = *(area + ix.field())
//	hdr := (*uint64)(base + slot*stride); e := high half of *hdr
//	if e >= capacity { exit: ok = false }
//	h = hs[e]
//	*hdr += 1<<32                     // commit: the store
TEXT ·ClaimHandle(SB), NOSPLIT, $0-21
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	HANDLE_ARRAY(fallback)
	MOVWU	HandleArray_capacity(R10), R3
	MOVD	$1, R7
	LSL	$32, R7, R7	// 1<<32
restart:
	MOVD	$DESC_claimHandle, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start claimHandle
	MUL	R1, R4, R5
	ADD	R0, R5, R5
	MOVD	(R5), R6
	LSR	$32, R6, R11
	CMP	R3, R11
	BHS	isfull
	ADD	$8, R5, R12
	MOVWU	(R12)(R11<<2), R13
	ADD	R7, R6, R6
	MOVD	R6, (R5)	// rseq:commit claimHandle
	MOVD	R4, slot+8(FP)
	MOVW	R13, h+16(FP)
	MOVD	$1, R11
	MOVB	R11, ok+20(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_claimHandle, R10	// rseq:abort claimHandle
	COUNT_ABORT(R10, R11, R12)
	B	restart
isfull:
	MOVD	R4, slot+8(FP)	// rseq:exit claimHandle
	MOVW	ZR, h+16(FP)
	MOVB	ZR, ok+20(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·claimHandleFallback(SB)
	INDEX_FIELD_CID(R2)

// func PutHandle(a *HandleArray, h uint32) (slot int, ok bool)
//
//	base, stride, ix := a's fields   // a zero a: to the fallback
//	slot = *(area + ix.field())
//	hdr := (*uint64)(base + slot*stride); f, e := low, high half of *hdr
//	if f == e { exit: ok = false }
//	hs[f] = h                         // speculative: a hole until the commit
//	*hdr += 1                         // commit: the store
TEXT ·PutHandle(SB), NOSPLIT, $0-25
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	HANDLE_ARRAY(fallback)
	MOVWU	h+8(FP), R3
restart:
	MOVD	$DESC_putHandle, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start putHandle
	MUL	R1, R4, R5
	ADD	R0, R5, R5
	MOVD	(R5), R6
	MOVWU	R6, R11
	LSR	$32, R6, R12
	CMP	R12, R11
	BEQ	nohole
	ADD	$8, R5, R13
	MOVW	R3, (R13)(R11<<2)
	ADD	$1, R6, R6
	MOVD	R6, (R5)	// rseq:commit putHandle
	MOVD	R4, slot+16(FP)
	MOVD	$1, R11
	MOVB	R11, ok+24(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_putHandle, R10	// rseq:abort putHandle
	COUNT_ABORT(R10, R11, R12)
	B	restart
nohole:
	MOVD	R4, slot+16(FP)	// rseq:exit putHandle
	MOVB	ZR, ok+24(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·putHandleFallback(SB)
	INDEX_FIELD_CID(R2)

// func AddCPU(base unsafe.Pointer, n int64)
//
// Counter.Add's section: Add with the stride and index fixed (128 bytes,
// ByCPU), and no result (ops_cpu.go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	*(*int64)(base + cpu<<7) += n          // commit: the store
//
// Budget: 2 loads of arguments, 3 to find the area in own mode (LOAD_AREA:
// the mode byte, g.m, m.tls[2]; glibc mode goes out of line), 3
// instructions to arm rseq_cs (the descriptor's address in two, the
// store), then the section: the index load, a shift, a load, an add and
// the commit store (arm64 has no add to memory).
TEXT ·AddCPU(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	MOVD	n+8(FP), R3
restart:
	MOVD	$DESC_addCPU, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8), R4	// rseq:start addCPU
	LSL	$7, R4, R5
	MOVD	(R0)(R5), R6
	ADD	R3, R6, R6
	MOVD	R6, (R0)(R5)	// rseq:commit addCPU
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_addCPU, R10	// rseq:abort addCPU
	COUNT_ABORT(R10, R11, R12)
	B	restart
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·addCPUFallback(SB)

// func AddFloat64CPU(base unsafe.Pointer, x float64)
//
// Float64Counter.Add's section (ops_cpu.go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	p := (*float64)(base + cpu<<7)
//	*p = *p + x                            // commit: the store
TEXT ·AddFloat64CPU(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	FMOVD	x+8(FP), F1
restart:
	MOVD	$DESC_addFloat64CPU, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8), R4	// rseq:start addFloat64CPU
	LSL	$7, R4, R5
	ADD	R0, R5, R5
	FMOVD	(R5), F0
	FADDD	F1, F0, F0
	FMOVD	F0, (R5)	// rseq:commit addFloat64CPU
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_addFloat64CPU, R10	// rseq:abort addFloat64CPU
	COUNT_ABORT(R10, R11, R12)
	B	restart
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·addFloat64CPUFallback(SB)

// func IncCPUIfZero(base unsafe.Pointer, guard *uintptr) bool
//
// RWMutex.RLock's section (ops_cpu.go). The guard is a plain load: a
// writer stores it before its fence, and the fence restarts every section
// in flight; RLock's caller orders its critical section after the guard
// with a load-acquire of its own.
//
//	cpu = *(area + 0)                      // cpu_id_start
//	if *guard != 0 { exit: false }
//	*(*int64)(base + cpu<<7) += 1          // commit: the store
TEXT ·IncCPUIfZero(SB), NOSPLIT, $0-17
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	MOVD	guard+8(FP), R3
restart:
	MOVD	$DESC_incCPUIfZero, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8), R4	// rseq:start incCPUIfZero
	LSL	$7, R4, R5
	MOVD	(R3), R7
	CBNZ	R7, guarded
	MOVD	(R0)(R5), R6
	ADD	$1, R6, R6
	MOVD	R6, (R0)(R5)	// rseq:commit incCPUIfZero
	MOVD	$1, R7
	MOVB	R7, ret+16(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_incCPUIfZero, R10	// rseq:abort incCPUIfZero
	COUNT_ABORT(R10, R11, R12)
	B	restart
guarded:
	MOVB	ZR, ret+16(FP)	// rseq:exit incCPUIfZero
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·incCPUIfZeroFallback(SB)

// func RestoreHandle(a *HandleArray, v unsafe.Pointer) (ok bool)
//
// Pool.Put's common case in one section (handles_linux_asm.go).
//
//	base, stride, ix, table, capacity := a's fields  // a zero a: to the fallback
//	slot = *(area + ix.field())
//	hdr := (*uint64)(base + slot*stride); f, e := low, high half of *hdr
//	if e >= capacity { exit: ok = false }
//	h = hs[e]
//	if table[h] != v { exit: ok = false }
//	hs[f] = h                         // speculative: a hole (or h itself)
//	*hdr += 1 | 1<<32                 // commit: the store
TEXT ·RestoreHandle(SB), NOSPLIT, $0-17
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	HANDLE_ARRAY(fallback)
	MOVD	HandleArray_table(R10), R3
	MOVD	v+8(FP), R11
	MOVWU	HandleArray_capacity(R10), R12
	MOVD	$1, R7
	ORR	R7<<32, R7, R7	// 1 | 1<<32, without a literal pool
restart:
	MOVD	$DESC_restoreHandle, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8)(R2), R4	// rseq:start restoreHandle
	MUL	R1, R4, R5
	ADD	R0, R5, R5
	MOVD	(R5), R6
	LSR	$32, R6, R13
	CMP	R12, R13
	BHS	refused
	ADD	$8, R5, R14
	MOVWU	(R14)(R13<<2), R15
	MOVD	(R3)(R15<<3), R19
	CMP	R11, R19
	BNE	refused
	MOVWU	R6, R13
	MOVW	R15, (R14)(R13<<2)
	ADD	R7, R6, R6
	MOVD	R6, (R5)	// rseq:commit restoreHandle
	MOVD	$1, R13
	MOVB	R13, ok+16(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_restoreHandle, R10	// rseq:abort restoreHandle
	COUNT_ABORT(R10, R13, R14)
	B	restart
refused:
	MOVB	ZR, ok+16(FP)	// rseq:exit restoreHandle
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·restoreHandleFallback(SB)
	INDEX_FIELD_CID(R2)

// func CompareAndStoreCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool)
//
// Histogram.Observe's lock in one call (ops_cpu_asm.go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	p := (*uintptr)(base + cpu*stride)
//	if *p != expect { exit: cpu, false }   // *p: load-acquire (LDAR)
//	*p = new                               // commit: the store
//	return cpu, true
//
// Budget: 4 loads of arguments, 3 to find the area in own mode (as
// AddCPU's), 3 instructions to arm rseq_cs, then the section: the index
// load, a multiply-add for the word's address, its load-acquire and
// compare, the commit store; the two results' stores after it.
TEXT ·CompareAndStoreCPU(SB), NOSPLIT, $0-41
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R8, R9, fallback)
	MOVD	base+0(FP), R0
	MOVD	stride+8(FP), R1
	MOVD	expect+16(FP), R3
	MOVD	new+24(FP), R6
restart:
	MOVD	$DESC_cmpStoreCPU, R10
	MOVD	R10, 8(R8)
	MOVWU	(R8), R4	// rseq:start cmpStoreCPU
	MADD	R1, R0, R4, R5
	LDAR	(R5), R7
	CMP	R3, R7
	BNE	cmpfail
	MOVD	R6, (R5)	// rseq:commit cmpStoreCPU
	MOVD	R4, slot+32(FP)
	MOVD	$1, R7
	MOVB	R7, ok+40(FP)
	RET
	RSEQ_SIGNATURE
	MOVD	$ABORTS_cmpStoreCPU, R10	// rseq:abort cmpStoreCPU
	COUNT_ABORT(R10, R11, R12)
	B	restart
cmpfail:
	MOVD	R4, slot+32(FP)	// rseq:exit cmpStoreCPU
	MOVB	ZR, ok+40(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R8, R9, fallback)
fallback:
	B	·cmpStoreCPUFallback(SB)

// func slotOf(field uintptr) int
// Index.Slot: the index field of the thread's area when the thread runs
// sections, else whatever slotSlow decides.
TEXT ·slotOf(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_AREA(·opsMode(SB), R0, R9, slow)
	MOVD	field+0(FP), R1
	MOVWU	(R0)(R1), R0
	MOVD	R0, ret+8(FP)
	RET
	GLIBC_AREA(·opsMode(SB), R0, R9, slow)
slow:
	B	·slotSlow(SB)
