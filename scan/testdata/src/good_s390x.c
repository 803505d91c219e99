/*
 * Valid restartable sequences for s390x (64-bit big-endian): rseq scan
 * must list two sections and report nothing. Built without libc.
 */
#include "sections.h"

/* rs_add(struct rseq *rs, long *counters, long v) */
__asm__(
	FUNC("rs_add")
	CS("cs_add", "1f", "2f", "4f")
	"1:\n"
	"llgf %r1, 4(%r2)\n"
	"sllg %r1, %r1, 3\n"
	"lg %r0, 0(%r1,%r3)\n"
	"agr %r0, %r4\n"
	"stg %r0, 0(%r1,%r3)\n"
	"2:\n"
	"br %r14\n"
	SIG
	"4:\n"
	"j 1b\n"
	ENDF("rs_add"));

/* rs_cas(struct rseq *rs, long *p, long old, long new) */
__asm__(
	FUNC("rs_cas")
	CS("cs_cas", "1f", "2f", "4f")
	EXIT("1f", "5f")
	"1:\n"
	"cg %r4, 0(%r3)\n"
	"jne 5f\n"
	"stg %r5, 0(%r3)\n"
	"2:\n"
	"lghi %r2, 0\n"
	"br %r14\n"
	"5:\n"
	"lghi %r2, 1\n"
	"br %r14\n"
	SIG
	"4:\n"
	"j 1b\n"
	ENDF("rs_cas"));

#ifndef NO_START
__asm__(FUNC("_start") "lghi %r2, 0\nsvc 1\n" ENDF("_start"));
#endif
