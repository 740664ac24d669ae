#include "kernels/gather.h"
#include "core/profile.h"

#include <string.h>

static void gather_rows_impl(float *dst, int ldd, const float *src, int lds, const int *idx, int n,
                             int w) {
#pragma omp parallel for schedule(static) if (n > 512)
    for (int r = 0; r < n; r++) {
        float *d = dst + (size_t)r * ldd;
        if (idx[r] < 0)
            memset(d, 0, (size_t)w * sizeof *d);
        else
            memcpy(d, src + (size_t)idx[r] * lds, (size_t)w * sizeof *d);
    }
}

static void scatter_add_rows_impl(float *dst, int ldd, const float *src, int lds, const int *idx,
                                  int n, int w, int injective) {
#pragma omp parallel for schedule(static) if (injective && n > 512)
    for (int r = 0; r < n; r++) {
        if (idx[r] < 0) continue;
        float *d = dst + (size_t)idx[r] * ldd;
        const float *s = src + (size_t)r * lds;
        for (int c = 0; c < w; c++) d[c] += s[c];
    }
}

static void sort_by_key_impl(const int *key, int n, int nkeys, int *perm, int *work) {
    memset(work, 0, (size_t)(nkeys + 1) * sizeof *work);
    for (int i = 0; i < n; i++) work[key[i] + 1]++;
    for (int k = 0; k < nkeys; k++) work[k + 1] += work[k];
    for (int i = 0; i < n; i++) perm[work[key[i]]++] = i;
}

static void invert_perm_impl(const int *perm, int n, int *inv) {
    for (int i = 0; i < n; i++) inv[perm[i]] = i;
}

/* The entry points, timed by core/profile.h. */
void gather_rows(float *dst, int ldd, const float *src, int lds, const int *idx, int n, int w) {
    prof_open(PROF_GATHER, 0);
    gather_rows_impl(dst, ldd, src, lds, idx, n, w);
    prof_close();
}

void scatter_add_rows(float *dst, int ldd, const float *src, int lds, const int *idx, int n, int w,
                      int injective) {
    prof_open(PROF_GATHER, 1);
    scatter_add_rows_impl(dst, ldd, src, lds, idx, n, w, injective);
    prof_close();
}

void sort_by_key(const int *key, int n, int nkeys, int *perm, int *work) {
    prof_open(PROF_GATHER, 0);
    sort_by_key_impl(key, n, nkeys, perm, work);
    prof_close();
}

void invert_perm(const int *perm, int n, int *inv) {
    prof_open(PROF_GATHER, 0);
    invert_perm_impl(perm, n, inv);
    prof_close();
}
