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
        x[i] = x0 + h;
        fwd(ctx);
        const double fp = objective(out, nout, w);
        x[i] = x0 - h;
        fwd(ctx);
        const double fm = objective(out, nout, w);
        x[i] = x0;
        const double num = (fp - fm) / (2.0 * (double)h), ana = analytic[i];
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
