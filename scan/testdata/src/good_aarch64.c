/*
 * Valid restartable sequences for arm64: rseq scan must list two sections
 * and report nothing. Built without libc (-nostdlib), as a static
 * executable and as a shared library.
 */
#include "sections.h"

/* rs_add(struct rseq *rs, long *counters, long v) */
__asm__(
	FUNC("rs_add")
	CS("cs_add", "1f", "2f", "4f")
	"0:\n"
	"adrp x9, cs_add\n"
	"add x9, x9, :lo12:cs_add\n"
	"str x9, [x0, #8]\n"
	"1:\n"
	"ldr w10, [x0, #4]\n"
	"ldr w11, [x0]\n"
	"cmp w10, w11\n"
	"b.ne 4f\n"
	"ldr x12, [x1, x10, lsl #3]\n"
	"add x12, x12, x2\n"
	"str x12, [x1, x10, lsl #3]\n"
	"2:\n"
	"ret\n"
	SIG
	"4:\n"
	"b 0b\n"
	ENDF("rs_add"));

/* rs_cas(struct rseq *rs, long *p, long old, long new): 0 stored, 1 differed */
__asm__(
	FUNC("rs_cas")
	CS("cs_cas", "1f", "2f", "4f")
	EXIT("1f", "5f")
	"0:\n"
	"adrp x9, cs_cas\n"
	"add x9, x9, :lo12:cs_cas\n"
	"str x9, [x0, #8]\n"
	"1:\n"
	"ldr x10, [x1]\n"
	"cmp x10, x2\n"
	"b.ne 5f\n"
	"str x3, [x1]\n"
	"2:\n"
	"mov x0, #0\n"
	"ret\n"
	"5:\n"
	"mov x0, #1\n"
	"ret\n"
	SIG
	"4:\n"
	"b 0b\n"
	ENDF("rs_cas"));

#ifndef NO_START
__asm__(FUNC("_start") "mov x0, #0\nmov x8, #93\nsvc #0\n" ENDF("_start"));
#endif
