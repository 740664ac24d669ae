#include "core/flops.h"

static uint64_t g_flops;

void flops_add(uint64_t n) {
#pragma omp atomic
    g_flops += n;
}

uint64_t flops_counted(void) {
    uint64_t v;
#pragma omp atomic read
    v = g_flops;
    return v;
}

void flops_reset(void) {
#pragma omp atomic write
    g_flops = 0;
}
