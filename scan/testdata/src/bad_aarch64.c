/*
 * Broken restartable sequences for arm64, one rule broken per function
 * (named in the function); the expected findings are in the tests.
 */
#include "sections.h"

#define SHAPE(name, body, sig)                                             \
	FUNC(name)                                                         \
	CS("cs_" name, "1f", "2f", "4f")                                   \
	"0:\n"                                                             \
	"adrp x9, cs_" name "\n"                                           \
	"add x9, x9, :lo12:cs_" name "\n"                                  \
	"str x9, [x0, #8]\n"                                               \
	"1:\n"                                                             \
	"ldr w10, [x0, #4]\n"                                              \
	body                                                               \
	"2:\n"                                                             \
	"ret\n"                                                            \
	sig                                                                \
	"4:\n"                                                             \
	"b 0b\n"                                                           \
	ENDF(name)

#define COMMIT "str x10, [x1]\n"

__asm__(FUNC("helper") "ret\n" ENDF("helper"));
__asm__(SHAPE("bad_signature", COMMIT, "nop\n"));
__asm__(SHAPE("bad_syscall", "mov x8, #172\nsvc #0\n" COMMIT, SIG));
__asm__(SHAPE("bad_call", "bl helper\n" COMMIT, SIG));
__asm__(SHAPE("bad_indirect", "adr x11, 3f\nbr x11\n3:\n" COMMIT, SIG));
__asm__(SHAPE("bad_commit_not_last", COMMIT "nop\n", SIG));
__asm__(SHAPE("bad_store_before", "str x10, [x1, #8]\n" COMMIT, SIG));
__asm__(SHAPE("bad_unlisted_exit", "cbz w10, 5f\n" COMMIT, "5:\nret\n" SIG));

__asm__(FUNC("_start") "mov x0, #0\nmov x8, #93\nsvc #0\n" ENDF("_start"));
