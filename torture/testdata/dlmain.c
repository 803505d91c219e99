// dlmain: loads the library named by argv[1] with dlopen, then calls its
// lib_inc from 2 threads, ITERATIONS (argv[2]) times each, on glibc's rseq
// area, and checks lib_sum. Exit status 0 when exact, 1 when not, 2 on a
// setup error.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

static void (*inc)(void *);
static long iters;

static void *worker(void *arg)
{
	(void)arg;
	void *rs = (char *)__builtin_thread_pointer() + __rseq_offset;
	for (long i = 0; i < iters; i++)
		inc(rs);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3 || __rseq_size == 0) {
		fprintf(stderr, "usage: dlmain LIBRARY ITERATIONS (with glibc's rseq)\n");
		return 2;
	}
	iters = atol(argv[2]);
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	inc = (void (*)(void *))dlsym(h, "lib_inc");
	int64_t (*sum)(void) = (int64_t(*)(void))dlsym(h, "lib_sum");
	if (!inc || !sum)
		return 2;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	if (sum() != 2 * iters) {
		printf("FAIL: sum %lld, want %ld\n", (long long)sum(), 2 * iters);
		return 1;
	}
	printf("ok: sum %lld\n", (long long)sum());
	return 0;
}
