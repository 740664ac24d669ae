#include "kernels/gather.h"

#include <string.h>

void gather_rows(float *dst, int ldd, const float *src, int lds, const int *idx, int n, int w) {
#pragma omp parallel for schedule(static) if (n > 512)
    for (int r = 0; r < n; r++) {
        float *d = dst + (size_t)r * ldd;
        if (idx[r] < 0)
            memset(d, 0, (size_t)w * sizeof *d);
        else
            memcpy(d, src + (size_t)idx[r] * lds, (size_t)w * sizeof *d);
    }
}

void scatter_add_rows(float *dst, int ldd, const float *src, int lds, const int *idx, int n, int w,
                      int injective) {
#pragma omp parallel for schedule(static) if (injective && n > 512)
    for (int r = 0; r < n; r++) {
        if (idx[r] < 0) continue;
        float *d = dst + (size_t)idx[r] * ldd;
        const float *s = src + (size_t)r * lds;
        for (int c = 0; c < w; c++) d[c] += s[c];
    }
}

void sort_by_key(const int *key, int n, int nkeys, int *perm, int *work) {
    memset(work, 0, (size_t)(nkeys + 1) * sizeof *work);
    for (int i = 0; i < n; i++) work[key[i] + 1]++;
    for (int k = 0; k < nkeys; k++) work[k + 1] += work[k];
    for (int i = 0; i < n; i++) perm[work[key[i]]++] = i;
}

void invert_perm(const int *perm, int n, int *inv) {
    for (int i = 0; i < n; i++) inv[perm[i]] = i;
}
