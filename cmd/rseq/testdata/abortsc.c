// abortsc: two restartable sections of known length, run by worker threads
// while the main thread forces aborts (CPU affinity changes and signals);
// every entry into an abort handler is counted. The tests of `rseq stat`
// compare these counts with what stat saw.
//
// Usage: abortsc [THREADS [MILLISECONDS]] (2 threads, 300 ms)
//
// Protocol on stdin and stdout, so that a test can attach before any
// section runs:
//
//   ready PID                    (then it waits for a line on stdin)
//   before short=0 long=0        (the counts at the start of the window)
//   after short=N long=N         (at its end, after every worker stopped)
//   done SUM                     (then it waits for stdin to close)
//
// sec_short adds 1 to the calling CPU's counter in 5 straight-line
// instructions; sec_long adds 16 in a loop of 16 iterations (a loop gives
// qemu's TCG, which takes interrupts only between translation blocks, a
// place to interrupt the section on every iteration). The threads use the area glibc registered (thread pointer +
// __rseq_offset). Exit status 0, 1 when the per-CPU sums are wrong, 2 on a
// setup error. Build: gcc -O2 -pthread [-static] -o abortsc abortsc.c
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXCPU 1024

struct area {
	uint32_t cpu_id_start;
	uint32_t cpu_id;
	uint64_t rseq_cs;
	uint32_t flags;
} __attribute__((aligned(32)));

struct slot {
	int64_t v;
	char pad[56];
};

static struct slot counts[MAXCPU];

#if defined(__x86_64__)
#define SIGNATURE ".byte 0x0f, 0xb9, 0x3d\n\t.long 0x53053053\n\t"
#elif defined(__aarch64__)
#define SIGNATURE ".inst 0xd428bc00\n\t"
#else
#error "abortsc.c: sections for x86-64 and arm64 only"
#endif

extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

static struct area *thread_area(void)
{
	return (struct area *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

// Each worker's abort counts; only the worker writes them (from its abort
// handlers), the main thread reads them after joining it.
struct worker {
	pthread_t th;
	pid_t tid;
	uint64_t aborts_short, aborts_long;
	int64_t adds;
};

static volatile int stop;

#if defined(__x86_64__)
__attribute__((noinline)) static void sec_short(struct area *rs, uint64_t *ab)
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
		"movq %%rdx, (%[c],%%rax)\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE
		"4:\n\t"
		"incq (%[ab])\n\t"
		"jmp 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(counts), [ab] "r"(ab)
		: "rax", "rdx", "memory", "cc");
}

__attribute__((noinline)) static void sec_long(struct area *rs, uint64_t *ab)
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
		"movl $16, %%ecx\n\t"
		"5:\n\t"
		"addq $1, %%rdx\n\t"
		"decl %%ecx\n\t"
		"jnz 5b\n\t"
		"movq %%rdx, (%[c],%%rax)\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE
		"4:\n\t"
		"incq (%[ab])\n\t"
		"jmp 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(counts), [ab] "r"(ab)
		: "rax", "rcx", "rdx", "memory", "cc");
}
#else /* __aarch64__ */
__attribute__((noinline)) static void sec_short(struct area *rs, uint64_t *ab)
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
		SIGNATURE
		"4:\n\t"
		"ldr x13, [%[ab]]\n\t"
		"add x13, x13, #1\n\t"
		"str x13, [%[ab]]\n\t"
		"b 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(counts), [ab] "r"(ab)
		: "x9", "x10", "x11", "x12", "x13", "memory", "cc");
}

__attribute__((noinline)) static void sec_long(struct area *rs, uint64_t *ab)
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
		"mov x14, #16\n\t"
		"5:\n\t"
		"add x12, x12, #1\n\t"
		"subs x14, x14, #1\n\t"
		"b.ne 5b\n\t"
		"str x12, [x11]\n\t"
		"2:\n\t"
		".pushsection __rseq_failure, \"ax\"\n\t"
		SIGNATURE
		"4:\n\t"
		"ldr x13, [%[ab]]\n\t"
		"add x13, x13, #1\n\t"
		"str x13, [%[ab]]\n\t"
		"b 6b\n\t"
		".popsection\n\t"
		:
		: [rs] "r"(rs), [c] "r"(counts), [ab] "r"(ab)
		: "x9", "x10", "x11", "x12", "x13", "x14", "memory", "cc");
}
#endif

static void *work(void *arg)
{
	struct worker *w = arg;
	struct area *rs = thread_area();
	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < 256; i++) {
			sec_short(rs, &w->aborts_short);
			sec_long(rs, &w->aborts_long);
		}
		w->adds += 256 * 17;
	}
	return NULL;
}

static void nothing(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 2;
	int ms = argc > 2 ? atoi(argv[2]) : 300;
	if (nthreads < 1 || ms < 1) {
		fprintf(stderr, "usage: abortsc [THREADS [MILLISECONDS]]\n");
		return 2;
	}
	if (__rseq_size == 0) {
		fprintf(stderr, "abortsc: glibc did not register rseq\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = nothing;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	char line[64];
	printf("ready %d\n", (int)getpid());
	if (!fgets(line, sizeof line, stdin))
		return 2;
	printf("before short=0 long=0\n");

	struct worker *ws = calloc(nthreads, sizeof *ws);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&ws[i].th, NULL, work, &ws[i]) != 0) {
			fprintf(stderr, "abortsc: pthread_create failed\n");
			return 2;
		}
	}
	for (int i = 0; i < nthreads; i++)
		while (__atomic_load_n(&ws[i].tid, __ATOMIC_ACQUIRE) == 0)
			sched_yield();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct timespec t0, now, pause = {0, 1000000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int round = 0;; round++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			break;
		for (int i = 0; i < nthreads; i++) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET((round + i) % ncpu, &set);
			sched_setaffinity(ws[i].tid, sizeof set, &set); // may be refused; signals still abort
			pthread_kill(ws[i].th, SIGUSR1);
		}
		nanosleep(&pause, NULL);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	uint64_t as = 0, al = 0;
	int64_t adds = 0, sum = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		as += ws[i].aborts_short;
		al += ws[i].aborts_long;
		adds += ws[i].adds;
	}
	printf("after short=%llu long=%llu\n", (unsigned long long)as, (unsigned long long)al);
	for (int i = 0; i < MAXCPU; i++)
		sum += counts[i].v;
	if (sum != adds) {
		printf("FAIL: per-CPU sum %lld, want %lld\n", (long long)sum, (long long)adds);
		return 1;
	}
	printf("done %lld\n", (long long)sum);
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
