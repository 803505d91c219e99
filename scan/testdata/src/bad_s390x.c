/*
 * Broken restartable sequences for s390x (no disassembly rules apply):
 * a bad signature and a non-zero flags field.
 */
#include "sections.h"

__asm__(
	FUNC("bad_signature")
	CS("cs_bad_signature", "1f", "2f", "4f")
	"1:\n"
	"stg %r0, 0(%r3)\n"
	"2:\n"
	"br %r14\n"
	"nopr %r7\nnopr %r7\n"
	"4:\n"
	"j 1b\n"
	ENDF("bad_signature"));

__asm__(
	FUNC("bad_flags")
	DESC_IN("__rseq_cs", "cs_bad_flags", "0", "1", "1f", "2f - 1f", "4f") PTR("cs_bad_flags")
	"1:\n"
	"stg %r0, 0(%r3)\n"
	"2:\n"
	"br %r14\n"
	SIG
	"4:\n"
	"j 1b\n"
	ENDF("bad_flags"));

__asm__(FUNC("_start") "lghi %r2, 0\nsvc 1\n" ENDF("_start"));
