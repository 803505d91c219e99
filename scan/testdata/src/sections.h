/*
 * Assembler snippets for hand-written restartable sequences, used by the
 * test programs of the rseq scan package. Written for these tests: each
 * macro expands to assembler text for a top-level __asm__ block.
 *
 * The conventions (see ../../doc.go): descriptors in __rseq_cs (32 bytes,
 * 32-aligned), one pointer per descriptor in __rseq_cs_ptr_array, exit
 * pairs in __rseq_exit_point_array, the abort signature in the 4 bytes
 * before the abort handler.
 */
#ifndef SCAN_SECTIONS_H
#define SCAN_SECTIONS_H

#define STR_(x) #x
#define STR(x) STR_(x)

#if defined(__x86_64__) || defined(__aarch64__) || defined(__s390x__)
#define U64(x) ".quad " x "\n"
#define ADDR(x) ".quad " x "\n"
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define U64(x) ".long 0, " x "\n"
#define ADDR(x) ".long 0, " x "\n"
#else /* 32-bit little-endian: the low word first */
#define U64(x) ".long " x ", 0\n"
#define ADDR(x) ".long " x ", 0\n"
#endif

#if defined(__aarch64__)
#define FTYPE "%function"
#else
#define FTYPE "@function"
#endif

/* A descriptor with explicit fields, in section SEC. */
#define DESC_IN(sec, label, version, flags, start, length, abort)          \
	".pushsection " sec ", \"aw\"\n"                                   \
	".balign 32\n"                                                     \
	label ":\n"                                                        \
	".long " version ", " flags "\n"                                   \
	U64(start) U64(length) U64(abort)                                  \
	".popsection\n"

/* The pointer to a descriptor. */
#define PTR(label)                                                         \
	".pushsection __rseq_cs_ptr_array, \"aw\"\n"                       \
	ADDR(label)                                                        \
	".popsection\n"

/* The usual case: a valid descriptor for [start, end) and its pointer. */
#define CS(label, start, end, abort)                                       \
	DESC_IN("__rseq_cs", label, "0", "0", start, end " - " start, abort) \
	PTR(label)

/* An exit point of the section starting at start. */
#define EXIT(start, exit)                                                  \
	".pushsection __rseq_exit_point_array, \"aw\"\n"                   \
	ADDR(start) ADDR(exit)                                             \
	".popsection\n"

#define FUNC(name)                                                         \
	".text\n.globl " name "\n.type " name ", " FTYPE "\n"              \
	".balign 16\n" name ":\n"
#define ENDF(name) ".size " name ", . - " name "\n"

/* Signatures. */
#if defined(__x86_64__) || defined(__i386__)
#define SIG_VALUE(v) ".byte 0x0f, 0xb9, 0x3d\n.long " v "\n"
#define SIG SIG_VALUE("0x53053053")
#elif defined(__aarch64__)
#define SIG_VALUE(v) ".inst " v "\n"
#define SIG SIG_VALUE("0xd428bc00")
#elif defined(__s390x__)
#define SIG_VALUE(v) ".long " v "\n"
#define SIG SIG_VALUE("0xb2ff0fff")
#endif

#endif
