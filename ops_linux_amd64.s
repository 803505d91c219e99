// Restartable critical sections of the per-CPU operations, linux/amd64.
//
// Every section follows one shape:
//
//	LOAD_OPS_AREA           find the thread's struct rseq (its offset from
//	                        the FS base), or jump to the operation's Go
//	                        fallback (area_linux_amd64.h)
//	load arguments          into general-purpose registers only
//	restart:                (the abort handler jumps back here)
//	LEAQ  desc, AX          arm: rseq_cs = &this section's struct rseq_cs
//	SEG_FS; MOVQ AX, 8(R8)
//	start:                  first instruction of the section (start_ip)
//	...                     read the index, compute, compare
//	commit store            the section's last instruction
//	post-commit:            results to the stack, RET
//	signature               0f b9 3d 53 30 05 53
//	abort:                  count the abort, JMP restart
//	exits:                  compare-failed / moved / empty paths
//
// The sections have no calls, system calls or indirect branches, are entered
// only at the top, and only their commit store (and the speculative stores of
// storeCommit and copyCommit, into memory that means nothing until the
// commit) write memory. The comments "// rseq:start NAME", "rseq:commit",
// "rseq:abort" and "rseq:exit" mark the instructions that
// internal/gensections measures to generate the descriptors in
// sections_linux_amd64.s; the package verifies them against the code bytes at
// start-up. R8 holds the area's offset from the FS base, so every access to
// the area carries SEG_FS (a start marker covers the prefix on its line); AX
// is scratch, BP, R14 and R15 are not used.

// Every function here starts on a 64-byte boundary (PCALIGN $64 as its
// first line): where the linker happened to put them moved the operations'
// cost by a fifth on an AMD Zen 3 host (Counter.Add, AddCPU, in glibc mode,
// whose path jumps to the end of the function and back: 3.75 ns at one
// address, 2.87 aligned; README, "Which machine").

#include "textflag.h"
#include "handlearray.h"
#include "area_linux_amd64.h"
#include "sections_amd64.h"

// func addSection(base unsafe.Pointer, stride, field uintptr, n int64) (slot int)
//
//	slot = *(area + field)
//	*(*int64)(base + slot*stride) += n    // commit: the store
TEXT ·addSection(SB), NOSPLIT, $0-40
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVQ	stride+8(FP), SI
	MOVQ	field+16(FP), DX
	MOVQ	n+24(FP), BX
restart:
	LEAQ	DESC_add, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start add
	MOVQ	CX, R9
	IMULQ	SI, CX
	MOVQ	(DI)(CX*1), R10
	ADDQ	BX, R10
	MOVQ	R10, (DI)(CX*1)	// rseq:commit add
	MOVQ	R9, slot+32(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort add
	INCQ	ABORTS_add
	JMP	restart
fallback:
	JMP	·addFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func addIndirectSection(base unsafe.Pointer, stride, field, off uintptr, n int64) (slot int)
//
//	slot = *(area + field)
//	p := *(*uintptr)(base + slot*stride)
//	*(*int64)(p + off) += n                // commit: the store
TEXT ·addIndirectSection(SB), NOSPLIT, $0-48
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVQ	stride+8(FP), SI
	MOVQ	field+16(FP), DX
	MOVQ	off+24(FP), R11
	MOVQ	n+32(FP), BX
restart:
	LEAQ	DESC_addIndirect, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start addIndirect
	MOVQ	CX, R9
	IMULQ	SI, CX
	MOVQ	(DI)(CX*1), R10
	MOVQ	(R10)(R11*1), R12
	ADDQ	BX, R12
	MOVQ	R12, (R10)(R11*1)	// rseq:commit addIndirect
	MOVQ	R9, slot+40(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort addIndirect
	INCQ	ABORTS_addIndirect
	JMP	restart
fallback:
	JMP	·addIndirectFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func popSection(base unsafe.Pointer, stride, field, empty, nextOff uintptr) (slot int, head uintptr, ok bool)
//
//	slot = *(area + field)
//	v := (*uintptr)(base + slot*stride)
//	if *v == empty { exit: ok = false }
//	head = *v
//	*v = *(*uintptr)(head + nextOff)       // commit: the store
TEXT ·popSection(SB), NOSPLIT, $0-57
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVQ	stride+8(FP), SI
	MOVQ	field+16(FP), DX
	MOVQ	empty+24(FP), R11
	MOVQ	nextOff+32(FP), R12
restart:
	LEAQ	DESC_pop, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start pop
	MOVQ	CX, R9
	IMULQ	SI, CX
	ADDQ	DI, CX
	MOVQ	(CX), R10
	CMPQ	R10, R11
	JEQ	isempty
	MOVQ	(R10)(R12*1), R13
	MOVQ	R13, (CX)	// rseq:commit pop
	MOVQ	R9, slot+40(FP)
	MOVQ	R10, head+48(FP)
	MOVB	$1, ok+56(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort pop
	INCQ	ABORTS_pop
	JMP	restart
isempty:
	MOVQ	R9, slot+40(FP)	// rseq:exit pop
	MOVQ	$0, head+48(FP)
	MOVB	$0, ok+56(FP)
	RET
fallback:
	JMP	·popFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func cmpStoreSection(field uintptr, slot int, v *uintptr, expect, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect { exit: CompareFailed }
//	*v = new                               // commit
//
// Budget (Histogram.Observe's lock takes it, after Slot): 5 loads of
// arguments, 6 instructions (2 loads) to find the area (LOAD_OPS_AREA), 2 to
// arm rseq_cs, then the section: the index field, the word, two compares, the
// commit store; the status's store after it.
TEXT ·cmpStoreSection(SB), NOSPLIT, $0-41
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	field+0(FP), DX
	MOVQ	slot+8(FP), R9
	MOVQ	v+16(FP), DI
	MOVQ	expect+24(FP), SI
	MOVQ	new+32(FP), BX
restart:
	LEAQ	DESC_cmpStore, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start cmpStore
	CMPQ	CX, R9
	JNE	moved
	CMPQ	(DI), SI
	JNE	cmpfail
	MOVQ	BX, (DI)	// rseq:commit cmpStore
	MOVB	$0, ret+40(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort cmpStore
	INCQ	ABORTS_cmpStore
	JMP	restart
cmpfail:
	MOVB	$1, ret+40(FP)	// rseq:exit cmpStore
	RET
moved:
	MOVB	$2, ret+40(FP)	// rseq:exit cmpStore
	RET
fallback:
	JMP	·cmpStoreFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func cmp2StoreSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, expect2, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect || *v2 != expect2 { exit: CompareFailed }
//	*v = new                               // commit
TEXT ·cmp2StoreSection(SB), NOSPLIT, $0-57
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	field+0(FP), DX
	MOVQ	slot+8(FP), R9
	MOVQ	v+16(FP), DI
	MOVQ	expect+24(FP), SI
	MOVQ	v2+32(FP), R10
	MOVQ	expect2+40(FP), R11
	MOVQ	new+48(FP), BX
restart:
	LEAQ	DESC_cmp2Store, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start cmp2Store
	CMPQ	CX, R9
	JNE	moved
	CMPQ	(DI), SI
	JNE	cmpfail
	CMPQ	(R10), R11
	JNE	cmpfail
	MOVQ	BX, (DI)	// rseq:commit cmp2Store
	MOVB	$0, ret+56(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort cmp2Store
	INCQ	ABORTS_cmp2Store
	JMP	restart
cmpfail:
	MOVB	$1, ret+56(FP)	// rseq:exit cmp2Store
	RET
moved:
	MOVB	$2, ret+56(FP)	// rseq:exit cmp2Store
	RET
fallback:
	JMP	·cmp2StoreFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func storeCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, v2 *uintptr, new2, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect { exit: CompareFailed }
//	*v2 = new2                             // speculative store
//	*v = new                               // commit
TEXT ·storeCommitSection(SB), NOSPLIT, $0-57
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	field+0(FP), DX
	MOVQ	slot+8(FP), R9
	MOVQ	v+16(FP), DI
	MOVQ	expect+24(FP), SI
	MOVQ	v2+32(FP), R10
	MOVQ	new2+40(FP), R11
	MOVQ	new+48(FP), BX
restart:
	LEAQ	DESC_storeCommit, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start storeCommit
	CMPQ	CX, R9
	JNE	moved
	CMPQ	(DI), SI
	JNE	cmpfail
	MOVQ	R11, (R10)
	MOVQ	BX, (DI)	// rseq:commit storeCommit
	MOVB	$0, ret+56(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort storeCommit
	INCQ	ABORTS_storeCommit
	JMP	restart
cmpfail:
	MOVB	$1, ret+56(FP)	// rseq:exit storeCommit
	RET
moved:
	MOVB	$2, ret+56(FP)	// rseq:exit storeCommit
	RET
fallback:
	JMP	·storeCommitFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func copyCommitSection(field uintptr, slot int, v *uintptr, expect uintptr, dst, src unsafe.Pointer, n uintptr, new uintptr) Status
//
//	if *(area + field) != slot { exit: Moved }
//	if *v != expect { exit: CompareFailed }
//	copy(dst[:n], src[:n])                 // speculative stores, 8 then 1 byte at a time
//	*v = new                               // commit
TEXT ·copyCommitSection(SB), NOSPLIT, $0-65
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	field+0(FP), DX
	MOVQ	slot+8(FP), R9
	MOVQ	v+16(FP), DI
	MOVQ	expect+24(FP), SI
	MOVQ	dst+32(FP), R10
	MOVQ	src+40(FP), R11
	MOVQ	n+48(FP), R12
	MOVQ	new+56(FP), BX
restart:
	LEAQ	DESC_copyCommit, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start copyCommit
	CMPQ	CX, R9
	JNE	moved
	CMPQ	(DI), SI
	JNE	cmpfail
	MOVQ	R12, CX
	XORQ	R13, R13
copy8:
	CMPQ	CX, $8
	JB	copy1
	MOVQ	(R11)(R13*1), AX
	MOVQ	AX, (R10)(R13*1)
	ADDQ	$8, R13
	SUBQ	$8, CX
	JMP	copy8
copy1:
	TESTQ	CX, CX
	JZ	copied
	MOVB	(R11)(R13*1), AX
	MOVB	AX, (R10)(R13*1)
	INCQ	R13
	DECQ	CX
	JMP	copy1
copied:
	MOVQ	BX, (DI)	// rseq:commit copyCommit
	MOVB	$0, ret+64(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort copyCommit
	INCQ	ABORTS_copyCommit
	JMP	restart
cmpfail:
	MOVB	$1, ret+64(FP)	// rseq:exit copyCommit
	RET
moved:
	MOVB	$2, ret+64(FP)	// rseq:exit copyCommit
	RET
fallback:
	JMP	·copyCommitFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

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
//	if f != e { hs[e-1] = h }         // speculative: a hole until the commit
//	*hdr -= 1 | 1<<32                 // commit: the store
//
// With no hole (f == e) hs[e-1] is hs[f-1], which holds h already: the
// store is skipped, so that the next operation's load of that word does
// not wait for it to be forwarded.
//
// The pointer v is loaded inside the section, while h is still full, and
// lives only in a register until it is written to the result.
//
// Budget (Pool.Get): 1 load of the argument and 4 of a's fields (one cache
// line) and a nil check, 3 instructions for the index field (INDEX_FIELD:
// with ByCPU a constant, so that the section's first load waits for
// nothing but the area), 6 instructions (2 loads) to find the area
// (LOAD_OPS_AREA), 2 to arm rseq_cs; in the section 4 loads (the index
// field, the header, hs[f-1], table[h]), a multiply by the stride, the
// speculative store (skipped with no hole) and the commit store; 1 result
// store after it. The header and hs[f-1] were written by the previous
// operation on this CPU just before, so each waits for that store's
// forwarding: the chain that bounds a Get+Put (README, Pool).
TEXT ·TakeHandle(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	HANDLE_ARRAY(fallback)
	MOVQ	HandleArray_table(AX), R11
restart:
	LEAQ	DESC_takeHandle, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start takeHandle
	MOVQ	CX, R9
	IMULQ	SI, CX
	ADDQ	DI, CX
	MOVQ	(CX), R10
	MOVL	R10, BX
	TESTL	BX, BX
	JEQ	isempty
	MOVQ	R10, R12
	SHRQ	$32, R12
	MOVL	4(CX)(BX*4), R13
	MOVQ	(R11)(R13*8), AX
	CMPL	BX, R12
	JEQ	nohole
	MOVL	R13, 4(CX)(R12*4)
nohole:
	MOVQ	$0x100000001, R12
	SUBQ	R12, R10
	MOVQ	R10, (CX)	// rseq:commit takeHandle
	MOVQ	AX, v+8(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort takeHandle
	INCQ	ABORTS_takeHandle
	JMP	restart
isempty:
	MOVQ	$0, v+8(FP)	// rseq:exit takeHandle
	RET
fallback:
	JMP	·takeHandleFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)
	INDEX_FIELD_CID(DX)

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
	LOAD_OPS_AREA(R8, fallback)
	HANDLE_ARRAY(fallback)
	MOVLQZX	HandleArray_capacity(AX), R11
	MOVQ	$0x100000000, R13
restart:
	LEAQ	DESC_claimHandle, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start claimHandle
	MOVQ	CX, R9
	IMULQ	SI, CX
	ADDQ	DI, CX
	MOVQ	(CX), R10
	MOVQ	R10, R12
	SHRQ	$32, R12
	CMPQ	R12, R11
	JCC	isfull
	MOVL	8(CX)(R12*4), BX
	ADDQ	R13, R10
	MOVQ	R10, (CX)	// rseq:commit claimHandle
	MOVQ	R9, slot+8(FP)
	MOVL	BX, h+16(FP)
	MOVB	$1, ok+20(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort claimHandle
	INCQ	ABORTS_claimHandle
	JMP	restart
isfull:
	MOVQ	R9, slot+8(FP)	// rseq:exit claimHandle
	MOVL	$0, h+16(FP)
	MOVB	$0, ok+20(FP)
	RET
fallback:
	JMP	·claimHandleFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)
	INDEX_FIELD_CID(DX)

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
	LOAD_OPS_AREA(R8, fallback)
	HANDLE_ARRAY(fallback)
	MOVL	h+8(FP), R11
restart:
	LEAQ	DESC_putHandle, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start putHandle
	MOVQ	CX, R9
	IMULQ	SI, CX
	ADDQ	DI, CX
	MOVQ	(CX), R10
	MOVL	R10, BX
	MOVQ	R10, R12
	SHRQ	$32, R12
	CMPQ	BX, R12
	JEQ	nohole
	MOVL	R11, 8(CX)(BX*4)
	INCQ	R10
	MOVQ	R10, (CX)	// rseq:commit putHandle
	MOVQ	R9, slot+16(FP)
	MOVB	$1, ok+24(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort putHandle
	INCQ	ABORTS_putHandle
	JMP	restart
nohole:
	MOVQ	R9, slot+16(FP)	// rseq:exit putHandle
	MOVB	$0, ok+24(FP)
	RET
fallback:
	JMP	·putHandleFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)
	INDEX_FIELD_CID(DX)

// func AddCPU(base unsafe.Pointer, n int64)
//
// Counter.Add's section: Add with the stride and index fixed (128 bytes,
// ByCPU), and no result, so that the call costs no more than an empty call
// with two arguments. The exported function itself (ops_cpu.go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	*(*int64)(base + cpu<<7) += n          // commit: one read-modify-write
//
// The commit is the ADDQ to memory: one instruction, which an interrupt
// cannot split, so the section is three instructions. Budget: 2 loads of
// arguments, 6 instructions to find the area (LOAD_OPS_AREA: 2 loads, the mode
// byte and m.tls[2], no branch taken in own mode; glibc mode jumps out of line
// and back, loading the mode byte again, __rseq_offset and cpu_id), 2 to arm
// rseq_cs, then the section: 1 load, 1 shift, 1 load+add+store. The address of
// the commit waits on 2 dependent loads (the area's offset, then
// cpu_id_start).
TEXT ·AddCPU(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVQ	n+8(FP), BX
restart:
	LEAQ	DESC_addCPU, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8), CX	// rseq:start addCPU
	SHLQ	$7, CX
	ADDQ	BX, (DI)(CX*1)	// rseq:commit addCPU
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort addCPU
	INCQ	ABORTS_addCPU
	JMP	restart
fallback:
	JMP	·addCPUFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func AddFloat64CPU(base unsafe.Pointer, x float64)
//
// Float64Counter.Add's section: the float64 at base + cpu*128 grows by x,
// computed inside the section (no compare-and-retry loop in Go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	p := (*float64)(base + cpu<<7)
//	*p = *p + x                            // commit: the store
//
// Budget (Float64Counter.Add): as AddCPU's, with the add split into a load, an
// ADDSD and the commit store (no compare-and-retry loop in Go).
TEXT ·AddFloat64CPU(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVSD	x+8(FP), X1
restart:
	LEAQ	DESC_addFloat64CPU, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8), CX	// rseq:start addFloat64CPU
	SHLQ	$7, CX
	MOVSD	(DI)(CX*1), X0
	ADDSD	X1, X0
	MOVSD	X0, (DI)(CX*1)	// rseq:commit addFloat64CPU
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort addFloat64CPU
	INCQ	ABORTS_addFloat64CPU
	JMP	restart
fallback:
	JMP	·addFloat64CPUFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func IncCPUIfZero(base unsafe.Pointer, guard *uintptr) bool
//
// RWMutex.RLock's section: the reader count of the calling CPU grows by 1
// unless a writer has announced itself, the check and the increment in one
// section, so a writer's fence (membarrier, which restarts every section in
// flight) leaves no reader between them (ops_cpu.go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	if *guard != 0 { exit: false }
//	*(*int64)(base + cpu<<7) += 1          // commit: one read-modify-write
//
// Budget: as AddCPU's, plus the guard's load and compare inside the section
// and the result's store after it.
TEXT ·IncCPUIfZero(SB), NOSPLIT, $0-17
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVQ	guard+8(FP), SI
restart:
	LEAQ	DESC_incCPUIfZero, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8), CX	// rseq:start incCPUIfZero
	SHLQ	$7, CX
	CMPQ	(SI), $0
	JNE	guarded
	INCQ	(DI)(CX*1)	// rseq:commit incCPUIfZero
	MOVB	$1, ret+16(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort incCPUIfZero
	INCQ	ABORTS_incCPUIfZero
	JMP	restart
guarded:
	MOVB	$0, ret+16(FP)	// rseq:exit incCPUIfZero
	RET
fallback:
	JMP	·incCPUIfZeroFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func RestoreHandle(a *HandleArray, v unsafe.Pointer) (ok bool)
//
// Pool.Put's common case in one section (handles_linux_asm.go): the first
// free handle goes back to the full part if its table entry still holds
// v, the object a TakeHandle on this slot gave out. No table write: the
// entry is right already.
//
//	base, stride, ix, table, capacity := a's fields  // a zero a: to the fallback
//	slot = *(area + ix.field())
//	hdr := (*uint64)(base + slot*stride); f, e := low, high half of *hdr
//	if e >= capacity { exit: ok = false }
//	h = hs[e]
//	if table[h] != v { exit: ok = false }
//	if f != e { hs[f] = h }           // speculative: a hole until the commit
//	*hdr += 1 | 1<<32                 // commit: the store
//
// With no hole (f == e) hs[f] is hs[e], which holds h: no store.
//
// Budget (Pool.Put): 2 loads of arguments and 5 of a's fields (one cache
// line) and a nil check, 3 instructions for the index
// field (a constant with ByCPU), 6 instructions (2 loads) to find the area,
// 2 to arm rseq_cs; in the section 4 loads (the
// index field, the header, hs[e], table[h]: the last three a dependent chain,
// the first two forwarded from TakeHandle's stores), a multiply, three
// compares, the speculative store (skipped with no hole) and the commit store;
// 1 result store after it.
TEXT ·RestoreHandle(SB), NOSPLIT, $0-17
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	HANDLE_ARRAY(fallback)
	MOVQ	HandleArray_table(AX), R11
	MOVQ	v+8(FP), R12
	MOVLQZX	HandleArray_capacity(AX), R13
restart:
	LEAQ	DESC_restoreHandle, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8)(DX*1), CX	// rseq:start restoreHandle
	IMULQ	SI, CX
	ADDQ	DI, CX
	MOVQ	(CX), R10
	MOVQ	R10, R9
	SHRQ	$32, R9
	CMPQ	R9, R13
	JCC	refused
	MOVL	8(CX)(R9*4), BX
	CMPQ	(R11)(BX*8), R12
	JNE	refused
	MOVL	R10, AX
	CMPQ	AX, R9
	JEQ	nohole
	MOVL	BX, 8(CX)(AX*4)
nohole:
	MOVQ	$0x100000001, AX
	ADDQ	AX, R10
	MOVQ	R10, (CX)	// rseq:commit restoreHandle
	MOVB	$1, ok+16(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort restoreHandle
	INCQ	ABORTS_restoreHandle
	JMP	restart
refused:
	MOVB	$0, ok+16(FP)	// rseq:exit restoreHandle
	RET
fallback:
	JMP	·restoreHandleFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)
	INDEX_FIELD_CID(DX)

// func CompareAndStoreCPU(base unsafe.Pointer, stride, expect, new uintptr) (slot int, ok bool)
//
// Histogram.Observe's lock in one call: the calling CPU's slot is read
// inside the section, so no Slot call comes before it and no Moved comes
// out of it (ops_cpu_asm.go).
//
//	cpu = *(area + 0)                      // cpu_id_start
//	p := (*uintptr)(base + cpu*stride)
//	if *p != expect { exit: cpu, false }
//	*p = new                               // commit: the store
//	return cpu, true
//
// Budget: 4 loads of arguments, 6 instructions to find the area (as
// AddCPU's), 2 to arm rseq_cs, then the section: the index load, a
// multiply by the stride, the word's load and compare, the commit store;
// the two results' stores after it. Against CompareAndStore after a Slot
// call it saves a call, the Slot's area lookup and the slot's compare.
TEXT ·CompareAndStoreCPU(SB), NOSPLIT, $0-41
	PCALIGN	$64
	LOAD_OPS_AREA(R8, fallback)
	MOVQ	base+0(FP), DI
	MOVQ	stride+8(FP), DX
	MOVQ	expect+16(FP), SI
	MOVQ	new+24(FP), BX
restart:
	LEAQ	DESC_cmpStoreCPU, AX
	SEG_FS; MOVQ	AX, 8(R8)
	SEG_FS; MOVL	(R8), CX	// rseq:start cmpStoreCPU
	MOVQ	CX, R9
	IMULQ	DX, R9
	CMPQ	(DI)(R9*1), SI
	JNE	cmpfail
	MOVQ	BX, (DI)(R9*1)	// rseq:commit cmpStoreCPU
	MOVQ	CX, slot+32(FP)
	MOVB	$1, ok+40(FP)
	RET
	RSEQ_SIGNATURE
	LOCK	// rseq:abort cmpStoreCPU
	INCQ	ABORTS_cmpStoreCPU
	JMP	restart
cmpfail:
	MOVQ	CX, slot+32(FP)	// rseq:exit cmpStoreCPU
	MOVB	$0, ok+40(FP)
	RET
fallback:
	JMP	·cmpStoreCPUFallback(SB)
	GLIBC_OPS_AREA(R8, fallback)

// func slotOf(field uintptr) int
// Index.Slot: the index field of the thread's area when the thread runs
// sections, else whatever slotSlow decides.
TEXT ·slotOf(SB), NOSPLIT, $0-16
	PCALIGN	$64
	LOAD_OPS_AREA(AX, slow)
	MOVQ	field+0(FP), CX
	SEG_FS; MOVL	(AX)(CX*1), AX
	MOVQ	AX, ret+8(FP)
	RET
slow:
	JMP	·slotSlow(SB)
	GLIBC_OPS_AREA(AX, slow)
