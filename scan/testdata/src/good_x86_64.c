/*
 * Valid restartable sequences for x86-64: rseq scan must list three
 * sections and report nothing. Built as a PIE (relative relocations in
 * the tables) and as a fixed-address executable. Run with an argument it
 * prints "ready" and waits for its standard input to close, so that a
 * test can scan the running process.
 */
#include <stdio.h>
#include <unistd.h>
#include "sections.h"

/* long rs_add(struct rseq *rs, long *counters, long v):
 * counters[cpu] += v on the current CPU. */
__asm__(
	FUNC("rs_add")
	CS("cs_add", "1f", "2f", "4f")
	"0:\n"
	"leaq cs_add(%rip), %rax\n"
	"movq %rax, 8(%rdi)\n"
	"1:\n"
	"movl 4(%rdi), %ecx\n"
	"cmpl (%rdi), %ecx\n"
	"jne 4f\n"
	"addq %rdx, (%rsi,%rcx,8)\n"
	"2:\n"
	"xorl %eax, %eax\n"
	"ret\n"
	SIG
	"4:\n"
	"jmp 0b\n"
	ENDF("rs_add"));

/* int rs_cas(struct rseq *rs, long *p, long old, long new):
 * 0 when *p was old and is now new, 1 when *p differed (a listed exit). */
__asm__(
	FUNC("rs_cas")
	CS("cs_cas", "1f", "2f", "4f")
	EXIT("1f", "5f")
	"0:\n"
	"leaq cs_cas(%rip), %rax\n"
	"movq %rax, 8(%rdi)\n"
	"1:\n"
	"movl 4(%rdi), %r8d\n"
	"cmpq %rdx, (%rsi)\n"
	"jne 5f\n"
	"movq %rcx, (%rsi)\n"
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

/* A loop inside the section and a branch to the abort handler:
 * long rs_sum(struct rseq *rs, long *dst, long *src, long n) stores the
 * sum of src[0..n) into *dst. */
__asm__(
	FUNC("rs_sum")
	CS("cs_sum", "1f", "2f", "4f")
	"0:\n"
	"leaq cs_sum(%rip), %rax\n"
	"movq %rax, 8(%rdi)\n"
	"1:\n"
	"xorl %eax, %eax\n"
	"xorl %r8d, %r8d\n"
	"testq %rcx, %rcx\n"
	"je 4f\n"
	"3:\n"
	"addq (%rdx,%r8,8), %rax\n"
	"incq %r8\n"
	"cmpq %rcx, %r8\n"
	"jb 3b\n"
	"movq %rax, (%rsi)\n"
	"2:\n"
	"ret\n"
	SIG
	"4:\n"
	"jmp 0b\n"
	ENDF("rs_sum"));

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		char buf[16];
		printf("ready\n");
		fflush(stdout);
		while (read(0, buf, sizeof buf) > 0)
			;
	}
	return 0;
}
