// libinc: a shared library with one rseq critical section (lib_inc adds 1
// to the calling CPU's counter, 5 instructions on x86-64 and arm64), loaded
// with dlopen by dlmain.c. The signature is glibc's (0x53053053 on x86-64,
// 0xd428bc00 on arm64).
#include <stdint.h>

#define MAXCPU 1024

struct area {
	uint32_t cpu_id_start, cpu_id;
	uint64_t rseq_cs;
	uint32_t flags, node_id, mm_cid, pad;
};

static struct {
	int64_t v;
	char pad[56];
} counters[MAXCPU];

#if defined(__x86_64__)
void lib_inc(struct area *rs)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		"6:\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[rs])\n\t"
		"1:\n\t"
		"movl 4(%[rs]), %%eax\n\t"
		"shlq $6, %%rax\n\t"
		"movq (%[c],%%rax), %%rdx\n\t"
		"addq $1, %%rdx\n\t"
		"movq %%rdx, (%[c],%%rax)\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t"
		".long 0x53053053\n\t"
		"4:\n\t"
		"jmp 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(counters)
		: "rax", "rdx", "memory", "cc");
}

#elif defined(__aarch64__)
void lib_inc(struct area *rs)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		"6:\n\t"
		"adrp x9, 3b\n\t"
		"add x9, x9, :lo12:3b\n\t"
		"str x9, [%[rs], #8]\n\t"
		"1:\n\t"
		"ldr w10, [%[rs], #4]\n\t"
		"add x11, %[c], x10, lsl #6\n\t"
		"ldr x12, [x11]\n\t"
		"add x12, x12, #1\n\t"
		"str x12, [x11]\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".inst 0xd428bc00\n\t"
		"4:\n\t"
		"b 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(counters)
		: "x9", "x10", "x11", "x12", "memory", "cc");
}
#else
#error "libinc.c: a section for x86-64 and arm64 only"
#endif

int64_t lib_sum(void)
{
	int64_t s = 0;
	for (int i = 0; i < MAXCPU; i++)
		s += counters[i].v;
	return s;
}
