#include <stdint.h>

#define CPC_STRIDE 128

int cpc_available(void);
void cpc_add_loop(void *base, int64_t iters);
int64_t cpc_sum(void *base, int slots);
