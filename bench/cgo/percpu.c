// A per-CPU counter in C on glibc's rseq registration: the near-hardware
// limit the Go counters are measured against. The critical section is
// written here (not taken from librseq): arm rseq_cs, read cpu_id_start,
// add to that CPU's slot with one instruction (x86-64), or load, add and
// store (arm64), the store being the commit.

#include <stddef.h>
#include <stdint.h>
#include "percpu.h"

// glibc 2.35 and later export these; weak so that the package still links
// against an older glibc and reports the counter unavailable.
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

// The fields of struct rseq this code uses (include/uapi/linux/rseq.h).
struct area {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
};

static inline struct area *thread_area(void) {
	return (struct area *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

int cpc_available(void) {
	if (&__rseq_offset == NULL || &__rseq_size == NULL || __rseq_size == 0) {
		return 0;
	}
	// glibc stores -2 in cpu_id when its registration failed.
	return (int32_t)thread_area()->cpu_id >= 0;
}

#if defined(__x86_64__)
// One increment of the calling CPU's slot (slots are CPC_STRIDE bytes
// apart). The descriptor goes to the __rseq_cs section, its address to
// __rseq_cs_ptr_array, the way C tools look for them. The abort handler,
// preceded by the signature 0x53053053 (x86: the bytes 0f b9 3d + the
// signature, one ud1 instruction), jumps back to re-arm and restart.
static inline void cpc_add1(struct area *a, char *base, int64_t n) {
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0x0, 0x0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		"0:\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[area])\n\t"
		"1:\n\t"
		"movl 0(%[area]), %%eax\n\t"
		"shlq $7, %%rax\n\t"
		"addq %[n], (%[base], %%rax)\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".byte 0x0f, 0xb9, 0x3d\n\t"
		".long 0x53053053\n\t"
		"4:\n\t"
		"jmp 0b\n\t"
		".popsection\n\t"
		:
		: [area] "r"(a), [base] "r"(base), [n] "r"(n)
		: "rax", "memory", "cc");
}

#elif defined(__aarch64__)
// The same on arm64: the signature is glibc's RSEQ_SIG there, 0xd428bc00
// (a brk instruction); the commit is the store of the new slot value.
static inline void cpc_add1(struct area *a, char *base, int64_t n) {
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0x0, 0x0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		"0:\n\t"
		"adrp x9, 3b\n\t"
		"add x9, x9, :lo12:3b\n\t"
		"str x9, [%[area], #8]\n\t"
		"1:\n\t"
		"ldr w10, [%[area]]\n\t"
		"add x11, %[base], x10, lsl #7\n\t"
		"ldr x12, [x11]\n\t"
		"add x12, x12, %[n]\n\t"
		"str x12, [x11]\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		".inst 0xd428bc00\n\t"
		"4:\n\t"
		"b 0b\n\t"
		".popsection\n\t"
		:
		: [area] "r"(a), [base] "r"(base), [n] "r"(n)
		: "x9", "x10", "x11", "x12", "memory", "cc");
}
#else
#error "cpc_add1: x86-64 and arm64 only (see cgo.go's build constraint)"
#endif

void cpc_add_loop(void *base, int64_t iters) {
	struct area *a = thread_area();
	for (int64_t i = 0; i < iters; i++) {
		cpc_add1(a, (char *)base, 1);
	}
}

int64_t cpc_sum(void *base, int slots) {
	int64_t t = 0;
	for (int i = 0; i < slots; i++) {
		t += *(volatile int64_t *)((char *)base + (size_t)i * CPC_STRIDE);
	}
	return t;
}
