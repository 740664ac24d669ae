/* Central finite differences against an analytic gradient, for the kernel and model tests. */
#ifndef XB_TEST_GRADCHECK_H
#define XB_TEST_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

typedef void (*GcForwardFn)(void *ctx);

typedef struct GcResult {
    double max_abs_err, max_rel_err; /* over the checked elements */
    size_t worst_index;              /* element with the largest error beyond tolerance (or abs) */
    double worst_analytic, worst_numeric;
    size_t n_checked;
} GcResult;

/* Checks analytic[i] ≈ ∂f/∂x[i] for f = Σ_j w[j]·out[j], where fwd(ctx) recomputes out (nout) from
 * x (nx). The numeric derivative is the five-point stencil (8·(f(x+h) − f(x−h)) − (f(x+2h) −
 * f(x−2h))) / 12h in double: its error is O(h⁴), so a curved map (a LayerNorm) needs no smaller h.
 * When nx > max_check, an evenly spaced subset of max_check elements is checked. Passes (returns 1)
 * when every checked element has |analytic − numeric| <= atol + rtol·|numeric|. x is restored and
 * fwd re-run. */
int gradcheck(GcForwardFn fwd, void *ctx, float *x, size_t nx, const float *analytic,
              const float *out, size_t nout, const float *w, float h, double atol, double rtol,
              size_t max_check, GcResult *r);

/* Fills buf with N(0, scale²) numbers from seed. */
void gc_fill_normal(float *buf, size_t n, uint64_t seed, float scale);

/* Fails the current Check test with the details of r. */
#define GC_ASSERT(ok, name, r)                                                                     \
    ck_assert_msg((ok),                                                                            \
                  "%s: gradient mismatch at %zu: analytic %.6g numeric %.6g (max abs %.3g, "       \
                  "max rel %.3g, %zu checked)",                                                    \
                  (name), (r)->worst_index, (r)->worst_analytic, (r)->worst_numeric,               \
                  (r)->max_abs_err, (r)->max_rel_err, (r)->n_checked)

#endif
