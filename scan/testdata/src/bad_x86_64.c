/*
 * Broken restartable sequences for x86-64: each function breaks exactly
 * one rule of rseq scan (named in the function), everything else about it
 * being valid. The expected findings are listed in the package's tests.
 */
#include "sections.h"

/* The common shape: register the descriptor, then the section body from
 * label 1 to label 2, then the signature and the abort handler (label 4)
 * that restarts. */
#define SHAPE(name, desc, body, sig)                                       \
	FUNC(name)                                                         \
	desc                                                               \
	"0:\n"                                                             \
	"leaq cs_" name "(%rip), %rax\n"                                   \
	"movq %rax, 8(%rdi)\n"                                             \
	"1:\n"                                                             \
	"movl 4(%rdi), %ecx\n"                                             \
	body                                                               \
	"2:\n"                                                             \
	"ret\n"                                                            \
	sig                                                                \
	"4:\n"                                                             \
	"jmp 0b\n"                                                         \
	ENDF(name)

#define COMMIT "movq %rcx, (%rsi)\n"
#define STD(name) CS("cs_" name, "1f", "2f", "4f")

__asm__(FUNC("helper") "ret\n" ENDF("helper"));

/* version-flags: version 1. */
__asm__(SHAPE("bad_version",
	DESC_IN("__rseq_cs", "cs_bad_version", "1", "0", "1f", "2f - 1f", "4f") PTR("cs_bad_version"),
	COMMIT, SIG));

/* misaligned: the descriptor sits 8 bytes after a 32-byte boundary. */
__asm__(SHAPE("bad_misaligned",
	".pushsection __rseq_cs, \"aw\"\n.balign 32\n.skip 8\n"
	"cs_bad_misaligned:\n.long 0, 0\n.quad 1f, 2f - 1f, 4f\n.popsection\n"
	PTR("cs_bad_misaligned"),
	COMMIT, SIG));

/* empty-range: post_commit_offset 0. */
__asm__(SHAPE("bad_empty",
	DESC_IN("__rseq_cs", "cs_bad_empty", "0", "0", "1f", "0", "4f") PTR("cs_bad_empty"),
	COMMIT, SIG));

/* abort-inside: abort_ip (label 3) lies inside [1, 2). The signature
 * before it is in place, so only that rule fires. */
__asm__(SHAPE("bad_abort_inside",
	DESC_IN("__rseq_cs", "cs_bad_abort_inside", "0", "0", "1f", "2f - 1f", "3f") PTR("cs_bad_abort_inside"),
	"jmp 3f\n" SIG "3:\n" COMMIT, SIG));

/* bad-signature: nothing but nops before the abort handler. */
__asm__(SHAPE("bad_signature", STD("bad_signature"),
	COMMIT, "nop\nnop\nnop\nnop\nnop\nnop\nnop\n"));

/* mixed-signatures: a well-formed ud1 signature with another value. */
__asm__(SHAPE("bad_mixed", STD("bad_mixed"),
	COMMIT, SIG_VALUE("0x12345678")));

/* outside-segment: start_ip 0x10, in no segment. */
__asm__(SHAPE("bad_outside",
	DESC_IN("__rseq_cs", "cs_bad_outside", "0", "0", "0x10", "8", "4f") PTR("cs_bad_outside"),
	COMMIT, SIG));

/* ptr-mismatch: the descriptor is missing from __rseq_cs_ptr_array. */
__asm__(SHAPE("bad_unlisted_ptr",
	DESC_IN("__rseq_cs", "cs_bad_unlisted_ptr", "0", "0", "1f", "2f - 1f", "4f"),
	COMMIT, SIG));

/* syscall inside the section. */
__asm__(SHAPE("bad_syscall", STD("bad_syscall"),
	"movl $39, %eax\nsyscall\n" COMMIT, SIG));

/* call inside the section. */
__asm__(SHAPE("bad_call", STD("bad_call"),
	"call helper\n" COMMIT, SIG));

/* indirect-branch: a jump through a register (to the next instruction). */
__asm__(SHAPE("bad_indirect", STD("bad_indirect"),
	"leaq 3f(%rip), %r9\njmp *%r9\n3:\n" COMMIT, SIG));

/* commit-not-last: an instruction after the commit store. */
__asm__(SHAPE("bad_commit_not_last", STD("bad_commit_not_last"),
	COMMIT "nop\n", SIG));

/* store-before-commit: a store before the commit (info only). */
__asm__(SHAPE("bad_store_before", STD("bad_store_before"),
	"movq %rcx, 8(%rsi)\n" COMMIT, SIG));

/* unlisted-exit: a branch out of the section, to label 5, with no entry
 * in __rseq_exit_point_array. */
__asm__(SHAPE("bad_unlisted_exit", STD("bad_unlisted_exit"),
	"testl %ecx, %ecx\njne 5f\n" COMMIT, "5:\nret\n" SIG));

/* A pointer that points outside every segment (object-level
 * outside-segment). */
__asm__(PTR("0x70000000"));

int main(void) { return 0; }
