#include "gradcheck.h"

#include <math.h>

#include "core/rng.h"

static double objective(const float *out, size_t n, const float *w) {
    double f = 0.0;
    for (size_t j = 0; j < n; j++) f += (double)w[j] * (double)out[j];
    return f;
}

int gradcheck(GcForwardFn fwd, void *ctx, float *x, size_t nx, const float *analytic,
              const float *out, size_t nout, const float *w, float h, double atol, double rtol,
              size_t max_check, GcResult *r) {
    *r = (GcResult){0};
    const size_t n = nx < max_check ? nx : max_check;
    double worst_excess = -INFINITY;
    int ok = 1;
    for (size_t k = 0; k < n; k++) {
        const size_t i = n == nx ? k : (size_t)((double)k * (double)nx / (double)n);
        const float x0 = x[i];
        double f[4]; /* f(x + 2h), f(x + h), f(x − h), f(x − 2h) */
        const float at[4] = {x0 + 2 * h, x0 + h, x0 - h, x0 - 2 * h};
        for (int k4 = 0; k4 < 4; k4++) {
            x[i] = at[k4];
            fwd(ctx);
            f[k4] = objective(out, nout, w);
        }
        x[i] = x0;
        /* the five-point stencil (Richardson on two central differences), with the steps
         * actually taken in float */
        const double h1 = ((double)at[1] - (double)at[2]) / 2, h2 = ((double)at[0] - at[3]) / 4;
        const double num = (4 * (f[1] - f[2]) / (2 * h1) - (f[0] - f[3]) / (4 * h2)) / 3,
                     ana = analytic[i];
        const double abs_err = fabs(ana - num),
                     rel = abs_err / (fabs(num) > 1e-12 ? fabs(num) : 1e-12);
        if (abs_err > r->max_abs_err) r->max_abs_err = abs_err;
        if (fabs(num) > 1e-3 && rel > r->max_rel_err) r->max_rel_err = rel;
        const double excess = abs_err - (atol + rtol * fabs(num));
        if (excess > worst_excess) {
            worst_excess = excess;
            r->worst_index = i;
            r->worst_analytic = ana;
            r->worst_numeric = num;
        }
        if (excess > 0 || !isfinite(ana)) ok = 0;
        r->n_checked++;
    }
    fwd(ctx);
    return ok;
}

void gc_fill_normal(float *buf, size_t n, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed, RNG_STREAM_INIT);
    for (size_t i = 0; i < n; i++) buf[i] = scale * rng_normal(&r);
}
