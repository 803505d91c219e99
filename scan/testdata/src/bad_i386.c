/*
 * Broken restartable sequences for i386, one rule broken per function;
 * the expected findings are in the tests.
 */
#include "sections.h"

#define SHAPE(name, desc, body, sig)                                       \
	FUNC(name)                                                         \
	desc                                                               \
	"0:\n"                                                             \
	"movl 4(%esp), %eax\n"                                             \
	"movl 8(%esp), %edx\n"                                             \
	"1:\n"                                                             \
	"movl 4(%eax), %ecx\n"                                             \
	body                                                               \
	"2:\n"                                                             \
	"ret\n"                                                            \
	sig                                                                \
	"4:\n"                                                             \
	"jmp 0b\n"                                                         \
	ENDF(name)

#define COMMIT "movl %ecx, (%edx)\n"
#define STD(name) CS("cs_" name, "1f", "2f", "4f")

__asm__(SHAPE("bad_signature", STD("bad_signature"), COMMIT, "nop\nnop\nnop\nnop\n"));
__asm__(SHAPE("bad_syscall", STD("bad_syscall"), "int $0x80\n" COMMIT, SIG));
__asm__(SHAPE("bad_empty",
	DESC_IN("__rseq_cs", "cs_bad_empty", "0", "0", "1f", "0", "4f") PTR("cs_bad_empty"),
	COMMIT, SIG));
__asm__(SHAPE("bad_unlisted_exit", STD("bad_unlisted_exit"),
	"testl %ecx, %ecx\njne 5f\n" COMMIT, "5:\nret\n" SIG));

__asm__(FUNC("_start") "movl $1, %eax\nxorl %ebx, %ebx\nint $0x80\n" ENDF("_start"));
