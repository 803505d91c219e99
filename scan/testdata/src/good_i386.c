/*
 * Valid restartable sequences for i386: 64-bit descriptor fields written
 * as ".long x, 0" pairs, and so is the pointer array. rseq scan must list
 * two sections and report nothing. Built without libc.
 */
#include "sections.h"

/* rs_add(struct rseq *rs, long *counters): counters[cpu]++ */
__asm__(
	FUNC("rs_add")
	CS("cs_add", "1f", "2f", "4f")
	"0:\n"
	"movl 4(%esp), %eax\n"
	"movl 8(%esp), %edx\n"
	"1:\n"
	"movl 4(%eax), %ecx\n"
	"addl $1, (%edx,%ecx,4)\n"
	"2:\n"
	"ret\n"
	SIG
	"4:\n"
	"jmp 0b\n"
	ENDF("rs_add"));

/* rs_cas(struct rseq *rs, long *p, long old, long new) */
__asm__(
	FUNC("rs_cas")
	CS("cs_cas", "1f", "2f", "4f")
	EXIT("1f", "5f")
	"0:\n"
	"movl 8(%esp), %edx\n"
	"movl 12(%esp), %eax\n"
	"movl 16(%esp), %ecx\n"
	"1:\n"
	"cmpl %eax, (%edx)\n"
	"jne 5f\n"
	"movl %ecx, (%edx)\n"
	"2:\n"
	"xorl %eax, %eax\n"
	"ret\n"
	"5:\n"
	"movl $1, %eax\n"
	"ret\n"
	SIG
	"4:\n"
	"jmp 0b\n"
	ENDF("rs_cas"));

#ifndef NO_START
__asm__(FUNC("_start") "movl $1, %eax\nxorl %ebx, %ebx\nint $0x80\n" ENDF("_start"));
#endif
