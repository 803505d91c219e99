/*
 * A critical section in the shape of librseq's compare-and-memcpy
 * operations: on a failed comparison it leaves through a teardown stub (as
 * RSEQ_ASM_DEFINE_TEARDOWN emits) that restores the registers the section
 * used and then jumps to the exit listed in __rseq_exit_point_array. The
 * scanner must take that branch for a correct exit.
 *
 * Built by the scan tests with the system's gcc (x86-64 only); it is never
 * registered with the kernel, so running it runs the code as plain code.
 */
#include <stdio.h>
#include <string.h>

long rs_memcpy_teardown(long *v, long expect, char *dst, const char *src, unsigned long len)
{
	unsigned long scratch[3];

	__asm__ __volatile__ goto(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		".pushsection __rseq_exit_point_array, \"aw\"\n\t"
		".quad 1f, %l[cmpfail]\n\t"
		".popsection\n\t"
		"movq %[src], %[s0]\n\t"
		"movq %[dst], %[s1]\n\t"
		"movq %[len], %[s2]\n\t"
		"1:\n\t"
		"cmpq %[v], %[expect]\n\t"
		"jnz 5f\n\t"
		"test %[len], %[len]\n\t"
		"jz 7f\n\t"
		"6:\n\t"
		"movb (%[src]), %%al\n\t"
		"movb %%al, (%[dst])\n\t"
		"inc %[src]\n\t"
		"inc %[dst]\n\t"
		"dec %[len]\n\t"
		"jnz 6b\n\t"
		"7:\n\t"
		"movq %[expect], %[v]\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t"
		".long 0x53053053\n\t"
		"4:\n\t"
		"movq %[s2], %[len]\n\t"
		"movq %[s1], %[dst]\n\t"
		"movq %[s0], %[src]\n\t"
		"jmp %l[abort]\n\t"
		"5:\n\t"
		"movq %[s2], %[len]\n\t"
		"movq %[s1], %[dst]\n\t"
		"movq %[s0], %[src]\n\t"
		"jmp %l[cmpfail]\n\t"
		".popsection\n\t"
		:
		: [v] "m"(*v), [expect] "r"(expect), [dst] "r"(dst), [src] "r"(src), [len] "r"(len),
		  [s0] "m"(scratch[0]), [s1] "m"(scratch[1]), [s2] "m"(scratch[2])
		: "memory", "cc", "rax"
		: abort, cmpfail);
	return 0;
abort:
	return -1;
cmpfail:
	return 1;
}

int main(void)
{
	long v = 1;
	char dst[4] = "", src[4] = "abc";

	printf("%ld %ld\n", rs_memcpy_teardown(&v, 1, dst, src, 4), rs_memcpy_teardown(&v, 2, dst, src, 4));
	return strcmp(dst, src) != 0;
}
