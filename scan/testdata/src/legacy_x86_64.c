/*
 * The pre-5.0 convention: descriptors in __rseq_table, no pointer array.
 * rseq scan must list one valid section found via __rseq_table, and one
 * in the pre-merge layout (below).
 */
#include "sections.h"

__asm__(
	FUNC("legacy_add")
	DESC_IN("__rseq_table", "cs_legacy", "0", "0", "1f", "2f - 1f", "4f")
	"0:\n"
	"leaq cs_legacy(%rip), %rax\n"
	"movq %rax, 8(%rdi)\n"
	"1:\n"
	"movl 4(%rdi), %ecx\n"
	"addq %rdx, (%rsi,%rcx,8)\n"
	"2:\n"
	"ret\n"
	SIG
	"4:\n"
	"jmp 0b\n"
	ENDF("legacy_add"));


/* The pre-merge layout of a __rseq_table entry: start_ip, post_commit_ip
 * (an address), abort_ip, flags and padding. rseq scan lists it with a
 * legacy-layout warning. */
__asm__(
	FUNC("proto_add")
	".pushsection __rseq_table, \"aw\"\n"
	".balign 32\n"
	".quad 1f, 2f, 4f\n"
	".long 0x0, 0x0\n"
	".popsection\n"
	"1:\n"
	"movl 4(%rdi), %ecx\n"
	"addq %rdx, (%rsi,%rcx,8)\n"
	"2:\n"
	"ret\n"
	SIG
	"4:\n"
	"jmp 1b\n"
	ENDF("proto_add"));

int main(void) { return 0; }
