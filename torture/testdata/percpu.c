// percpu: per-CPU counters incremented by rseq critical sections from several
// threads, with an exact-sum check at the end. Exit status 0 when the sums
// are exact, 1 when they are not, 2 on a setup error.
//
// The sections are written for x86-64 and arm64 (same behaviour, same
// instruction counts: inc5 5 instructions, inc20 20).
//
// Build variants (gcc -O2 -pthread):
//   default      the thread's area is the one glibc registered
//                (thread pointer + __rseq_offset, signature 0x53053053 on
//                x86-64, 0xd428bc00 on arm64)
//   -DSELFREG    every thread registers its own area with signature
//                0x5eed5eed (run with GLIBC_TUNABLES=glibc.pthread.rseq=0)
//   -DUNREG      every worker unregisters glibc's area and runs the sections
//                on a plain unregistered struct (cpu_id 0): unprotected,
//                meant for one thread (the check still holds, and torture
//                must step over its breakpoints without aborting)
//   -DBROKEN     inc5 stores the counter before its commit: an abort after
//                that store double-counts, and the final check fails
//   -DPARTIAL    two more sections: loopn, which adds LOOPS+1 to cc[cpu]
//                through a loop that runs LOOPS times (the third argument,
//                default 0: the loop's 3 instructions are never reached),
//                and never, which the program never calls
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXCPU 1024

struct area {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
	uint32_t node_id;
	uint32_t mm_cid;
	uint32_t pad;
} __attribute__((aligned(32)));

struct slot {
	int64_t v;
	char pad[56];
};

static struct slot ca[MAXCPU], cb[MAXCPU];
static volatile int64_t last;

// glibc's signature (RSEQ_SIG), and how the signature is emitted before an
// abort handler.
#if defined(__x86_64__)
#define GLIBC_SIG 0x53053053
#define GLIBC_SIGSTR "0x53053053"
#define SIGNATURE(s) ".byte 0x0f, 0xb9, 0x3d\n\t.long " s "\n\t"
#elif defined(__aarch64__)
#define GLIBC_SIG 0xd428bc00
#define GLIBC_SIGSTR "0xd428bc00"
#define SIGNATURE(s) ".inst " s "\n\t"
#else
#error "percpu.c: sections for x86-64 and arm64 only"
#endif

#ifdef SELFREG
#define SIG 0x5eed5eed
#define SIGSTR "0x5eed5eed"
static __thread struct area myarea;
static struct area *thread_area(void) { return &myarea; }
static int reg(void)
{
	if (syscall(SYS_rseq, &myarea, sizeof myarea, 0, SIG) != 0) {
		fprintf(stderr, "rseq registration failed: %s (run with GLIBC_TUNABLES=glibc.pthread.rseq=0)\n", strerror(errno));
		return -1;
	}
	return 0;
}
#else
#define SIGSTR GLIBC_SIGSTR
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;
static struct area *thread_area(void)
{
	return (struct area *)((char *)__builtin_thread_pointer() + __rseq_offset);
}
static int reg(void)
{
	if (__rseq_size == 0) {
		fprintf(stderr, "glibc did not register rseq\n");
		return -1;
	}
#ifdef UNREG
	// glibc 2.35 to 2.39 register 32 bytes; later ones may register
	// __rseq_size.
	if (syscall(SYS_rseq, thread_area(), 32, 1, GLIBC_SIG) != 0 &&
	    syscall(SYS_rseq, thread_area(), __rseq_size, 1, GLIBC_SIG) != 0) {
		fprintf(stderr, "rseq unregistration failed: %s\n", strerror(errno));
		return -1;
	}
#endif
	return 0;
}
#endif

#if defined(__x86_64__)
// inc5 adds 1 to ca[cpu].
__attribute__((noinline)) static void inc5(struct area *rs)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		"6:\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[rs])\n\t"
		"1:\n\t"
		"movl 4(%[rs]), %%eax\n\t"
		"shlq $6, %%rax\n\t"
		"movq (%[c],%%rax), %%rdx\n\t"
		"addq $1, %%rdx\n\t"
#ifdef BROKEN
		"movq %%rdx, (%[c],%%rax)\n\t"
		"movq %%rdx, %[last]\n\t"
#else
		"movq %%rdx, (%[c],%%rax)\n\t"
#endif
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"jmp 6b\n\t"
		".popsection\n\t"
		: [last] "=m"(last)
		: [rs] "r"(rs), [c] "r"(ca)
		: "rax", "rdx", "memory", "cc");
}

// inc20 adds 1 to cb[cpu] through a 20-instruction section (the increment is
// computed the long way) with two never-taken exits.
__attribute__((noinline)) static void inc20(struct area *rs)
{
	__asm__ __volatile__(
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
		".quad 1f, 5f\n\t"
		".popsection\n\t"
		"6:\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[rs])\n\t"
		"1:\n\t"
		"movl 4(%[rs]), %%eax\n\t"      /* 1 */
		"cmpl $1024, %%eax\n\t"         /* 2 */
		"jae 5f\n\t"                    /* 3 */
		"shlq $6, %%rax\n\t"            /* 4 */
		"movq (%[c],%%rax), %%rdx\n\t"  /* 5 */
		"movl $7, %%ecx\n\t"            /* 6 */
		"imull $3, %%ecx\n\t"           /* 7: 21 */
		"subl $20, %%ecx\n\t"           /* 8: 1 */
		"movl %%ecx, %%esi\n\t"         /* 9 */
		"xorl $0x55, %%esi\n\t"         /* 10 */
		"xorl $0x55, %%esi\n\t"         /* 11: 1 */
		"addl %%esi, %%ecx\n\t"         /* 12: 2 */
		"shrl $1, %%ecx\n\t"            /* 13: 1 */
		"movslq %%ecx, %%rcx\n\t"       /* 14 */
		"leaq (%%rdx,%%rcx), %%rdx\n\t" /* 15 */
		"nop\n\t"                       /* 16 */
		"testq %%rdx, %%rdx\n\t"        /* 17 */
		"jz 5f\n\t"                     /* 18 */
		"movq %%rdx, %%r8\n\t"          /* 19 */
		"movq %%r8, (%[c],%%rax)\n\t"   /* 20: commit */
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"jmp 6b\n\t"
		"5:\n\t"
		"ud2\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(cb)
		: "rax", "rcx", "rdx", "rsi", "r8", "memory", "cc");
}

#else /* __aarch64__ */
// inc5 adds 1 to ca[cpu].
__attribute__((noinline)) static void inc5(struct area *rs)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
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
#ifdef BROKEN
		"str x12, [x11]\n\t"
		"str x12, [%[last]]\n\t"
#else
		"str x12, [x11]\n\t"
#endif
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"b 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(ca), [last] "r"(&last)
		: "x9", "x10", "x11", "x12", "memory", "cc");
}

// inc20 adds 1 to cb[cpu] through a 20-instruction section (the increment is
// computed the long way) with two never-taken exits.
__attribute__((noinline)) static void inc20(struct area *rs)
{
	__asm__ __volatile__(
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
		".quad 1f, 5f\n\t"
		".popsection\n\t"
		"6:\n\t"
		"adrp x9, 3b\n\t"
		"add x9, x9, :lo12:3b\n\t"
		"str x9, [%[rs], #8]\n\t"
		"1:\n\t"
		"ldr w10, [%[rs], #4]\n\t"          /* 1 */
		"cmp w10, #1024\n\t"                /* 2 */
		"b.hs 5f\n\t"                       /* 3 */
		"add x11, %[c], x10, lsl #6\n\t"    /* 4 */
		"ldr x12, [x11]\n\t"                /* 5 */
		"mov w13, #7\n\t"                   /* 6 */
		"mov w14, #3\n\t"                   /* 7 */
		"mul w13, w13, w14\n\t"             /* 8: 21 */
		"sub w13, w13, #20\n\t"             /* 9: 1 */
		"eor w14, w13, #0x55555555\n\t"     /* 10 */
		"eor w14, w14, #0x55555555\n\t"     /* 11: 1 */
		"add w13, w13, w14\n\t"             /* 12: 2 */
		"lsr w13, w13, #1\n\t"              /* 13: 1 */
		"sxtw x13, w13\n\t"                 /* 14 */
		"add x12, x12, x13\n\t"             /* 15 */
		"nop\n\t"                           /* 16 */
		"cbz x12, 5f\n\t"                   /* 17 */
		"mov x15, x12\n\t"                  /* 18 */
		"nop\n\t"                           /* 19 */
		"str x15, [x11]\n\t"                /* 20: commit */
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"b 6b\n\t"
		"5:\n\t"
		"udf #0\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(cb)
		: "x9", "x10", "x11", "x12", "x13", "x14", "x15", "memory", "cc");
}

#endif

#ifdef PARTIAL
static struct slot cc[MAXCPU], cd[MAXCPU];

#if defined(__x86_64__)
// loopn adds n+1 to cc[cpu]: 11 instructions, the 3 of the loop at offsets
// 0x13, 0x17 and 0x1a.
__attribute__((noinline)) static void loopn(struct area *rs, long n)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		"6:\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[rs])\n\t"
		"1:\n\t"
		"movl 4(%[rs]), %%eax\n\t"
		"shlq $6, %%rax\n\t"
		"movq (%[c],%%rax), %%rdx\n\t"
		"movq %[n], %%rcx\n\t"
		"testq %%rcx, %%rcx\n\t"
		"jz 7f\n\t"
		"5:\n\t"
		"addq $1, %%rdx\n\t"
		"decq %%rcx\n\t"
		"jnz 5b\n\t"
		"7:\n\t"
		"addq $1, %%rdx\n\t"
		"movq %%rdx, (%[c],%%rax)\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"jmp 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(cc), [n] "r"(n)
		: "rax", "rcx", "rdx", "memory", "cc");
}

// never adds 1 to cd[cpu]; nothing calls it.
__attribute__((noinline)) static void never(struct area *rs)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		"6:\n\t"
		"leaq 3b(%%rip), %%rax\n\t"
		"movq %%rax, 8(%[rs])\n\t"
		"1:\n\t"
		"movl 4(%[rs]), %%eax\n\t"
		"shlq $6, %%rax\n\t"
		"addq $1, (%[c],%%rax)\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"jmp 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(cd)
		: "rax", "memory", "cc");
}
#else /* __aarch64__ */
// loopn adds n+1 to cc[cpu]: 10 instructions, the 3 of the loop at offsets
// 0x14, 0x18 and 0x1c.
__attribute__((noinline)) static void loopn(struct area *rs, long n)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
		".popsection\n\t"
		"6:\n\t"
		"adrp x9, 3b\n\t"
		"add x9, x9, :lo12:3b\n\t"
		"str x9, [%[rs], #8]\n\t"
		"1:\n\t"
		"ldr w10, [%[rs], #4]\n\t"
		"add x11, %[c], x10, lsl #6\n\t"
		"ldr x12, [x11]\n\t"
		"mov x13, %[n]\n\t"
		"cbz x13, 7f\n\t"
		"5:\n\t"
		"add x12, x12, #1\n\t"
		"subs x13, x13, #1\n\t"
		"b.ne 5b\n\t"
		"7:\n\t"
		"add x12, x12, #1\n\t"
		"str x12, [x11]\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"b 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(cc), [n] "r"(n)
		: "x9", "x10", "x11", "x12", "x13", "memory", "cc");
}

// never adds 1 to cd[cpu]; nothing calls it.
__attribute__((noinline)) static void never(struct area *rs)
{
	__asm__ __volatile__(
		".pushsection __rseq_cs, \"aw\"\n\t"
		".balign 32\n\t"
		"3:\n\t"
		".long 0, 0\n\t"
		".quad 1f, (2f - 1f), 4f\n\t"
		".popsection\n\t"
		".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"
		".quad 3b\n\t"
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
		SIGNATURE(SIGSTR)
		"4:\n\t"
		"b 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(cd)
		: "x9", "x10", "x11", "x12", "memory", "cc");
}
#endif

static long loops;
// never is reached through a volatile pointer only, so that the compiler
// keeps it.
static void (*volatile never_fn)(struct area *) = never;
#endif

static long iters = 200000;

#ifdef UNREG
static __thread struct area unregistered;
#endif

static void *worker(void *arg)
{
	(void)arg;
	if (reg() != 0)
		exit(2);
	struct area *rs = thread_area();
#ifdef UNREG
	rs = &unregistered;
#endif
	for (long i = 0; i < iters; i++) {
		inc5(rs);
		inc20(rs);
#ifdef PARTIAL
		loopn(rs, loops);
#endif
	}
#ifdef PARTIAL
	if (iters < 0)
		never_fn(rs);
#endif
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = 4;
	if (argc > 1)
		nthreads = atoi(argv[1]);
	if (argc > 2)
		iters = atol(argv[2]);
#ifdef PARTIAL
	if (argc > 3)
		loops = atol(argv[3]);
#endif
	if (nthreads < 1 || nthreads > 64 || iters < 1) {
		fprintf(stderr, "usage: percpu [THREADS [ITERATIONS]]\n");
		return 2;
	}
	pthread_t th[64];
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 2;
		}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	int64_t sa = 0, sb = 0;
	for (int i = 0; i < MAXCPU; i++) {
		sa += ca[i].v;
		sb += cb[i].v;
	}
	int64_t want = (int64_t)nthreads * iters;
#ifdef PARTIAL
	int64_t sc = 0;
	for (int i = 0; i < MAXCPU; i++)
		sc += cc[i].v;
	if (sc != want * (loops + 1)) {
		printf("FAIL: loopn sum %lld, want %lld\n", (long long)sc, (long long)(want * (loops + 1)));
		return 1;
	}
#endif
	if (sa != want || sb != want) {
		printf("FAIL: sums %lld and %lld, want %lld\n", (long long)sa, (long long)sb, (long long)want);
		return 1;
	}
	printf("ok: sums %lld\n", (long long)sa);
	return 0;
}
