// threads: a multi-threaded target for rseq ps. Threads: "main"; "spinner",
// which loops through an rseq critical section (spin_inc, on glibc's area,
// written for x86-64 and arm64); "sleeper", which sleeps; "churn", which
// keeps creating and joining short-lived "worker" threads. Prints "ready"
// once all run. On a line "q" on stdin (or EOF) it stops them and checks
// that the spinner's per-CPU sum equals its plain count: exit status 0 and
// "ok" when it does, 1 otherwise. With argument "exit MS" it exits by itself
// after MS milliseconds.
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXCPU 1024

struct area {
	uint32_t cpu_id_start, cpu_id;
	uint64_t rseq_cs;
	uint32_t flags, node_id, mm_cid, pad;
};
struct slot {
	int64_t v;
	char pad[56];
};

extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

static struct slot counters[MAXCPU];
static volatile int stop;
static volatile long spins;

#if defined(__x86_64__)
__attribute__((noinline)) static void spin_inc(struct area *rs)
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
		"pause\n\tpause\n\tpause\n\tpause\n\t"
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
__attribute__((noinline)) static void spin_inc(struct area *rs)
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
		"yield\n\tyield\n\tyield\n\tyield\n\t"
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
#error "threads.c: a section for x86-64 and arm64 only"
#endif

static void *spinner(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spinner");
	struct area *rs = (struct area *)((char *)__builtin_thread_pointer() + __rseq_offset);
	while (!stop) {
		spin_inc(rs);
		spins++;
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "sleeper");
	while (!stop)
		usleep(1000);
	return NULL;
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "worker");
	usleep(200);
	return NULL;
}

static void *churn(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "churn");
	while (!stop) {
		pthread_t w[4];
		for (int i = 0; i < 4; i++)
			pthread_create(&w[i], NULL, worker, NULL);
		for (int i = 0; i < 4; i++)
			pthread_join(w[i], NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (__rseq_size == 0) {
		fprintf(stderr, "glibc did not register rseq\n");
		return 2;
	}
	pthread_setname_np(pthread_self(), "main");
	pthread_t t[3];
	pthread_create(&t[0], NULL, spinner, NULL);
	pthread_create(&t[1], NULL, sleeper, NULL);
	pthread_create(&t[2], NULL, churn, NULL);
	usleep(10000);
	printf("ready\n");
	fflush(stdout);
	if (argc > 2 && strcmp(argv[1], "exit") == 0) {
		usleep(atoi(argv[2]) * 1000);
		_exit(0);
	}
	char line[16];
	while (fgets(line, sizeof line, stdin) && line[0] != 'q')
		;
	stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	int64_t sum = 0;
	for (int i = 0; i < MAXCPU; i++)
		sum += counters[i].v;
	if (sum != spins) {
		printf("FAIL: per-CPU sum %lld, %ld spins\n", (long long)sum, spins);
		return 1;
	}
	printf("ok: %ld spins\n", spins);
	return 0;
}
