/* Element-wise kernels compiled for two instruction sets, and prefetching for strided rows.
 *
 * A build without -Dnative targets the baseline x86-64 (SSE2), whose vectors hold 4 floats; a
 * function marked XB_CLONES is compiled a second time for AVX2 (8 floats) and the loader picks the
 * version the CPU runs (GCC's target_clones). Neither version fuses multiplies and adds
 * (contraction is off under -std=c11) nor reorders a sum, so the two give the same bits: each
 * vector lane does what the scalar loop does. */
#ifndef XB_SIMD_H
#define XB_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
#define XB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define XB_CLONES
#endif

/* A head's slice of a row is a few cache lines out of every row of the packed projections, too
 * far apart for the hardware's stride prefetcher: loops that stream over such rows fetch the row
 * PREFETCH_ROWS ahead (a prefetch past the end of an array does not fault). */
enum { PREFETCH_ROWS = 8 };
static inline void prefetch_row(const float *p, int n) {
    for (int i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

#endif
