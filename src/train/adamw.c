#include "train/adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

int adamw_init(AdamW *o, size_t n, double beta1, double beta2, double eps, double weight_decay) {
    memset(o, 0, sizeof *o);
    size_t bytes = (n * sizeof(float) + XB_ALIGN - 1) / XB_ALIGN * XB_ALIGN;
    o->m = aligned_alloc(XB_ALIGN, bytes ? bytes : XB_ALIGN);
    o->v = aligned_alloc(XB_ALIGN, bytes ? bytes : XB_ALIGN);
    if (!o->m || !o->v) {
        adamw_free(o);
        return -1;
    }
    memset(o->m, 0, n * sizeof(float));
    memset(o->v, 0, n * sizeof(float));
    o->n = n;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    return 0;
}

void adamw_free(AdamW *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void adamw_step(AdamW *o, const ParamTable *pt, float *params, const float *grads, double lr) {
    o->t++;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)o->t)));
    const float c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)o->t)));
    const float flr = (float)lr;
#pragma omp parallel
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo *pi = &pt->info[i];
        if (pi->buffer) continue; /* state its mechanism updates, not trained */
        const float decay = pi->decay ? (float)(lr * o->weight_decay) : 0.0f;
        float *p = params + pi->offset, *m = o->m + pi->offset, *v = o->v + pi->offset;
        const float *g = grads + pi->offset;
        const long n = (long)pi->size;
#pragma omp for schedule(static) nowait
        for (long k = 0; k < n; k++) {
            const float gk = g[k];
            const float mk = b1 * m[k] + (1.0f - b1) * gk;
            const float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
            m[k] = mk;
            v[k] = vk;
            p[k] -= flr * (mk * c1) / (sqrtf(vk * c2) + eps) + decay * p[k];
        }
    }
}

/* Fixed chunking (independent of the thread count) with a sequential sum of the chunks. */
enum { NORM_CHUNKS = 256 };

double grad_global_norm(const float *g, size_t n) {
    double part[NORM_CHUNKS];
    const size_t per = (n + NORM_CHUNKS - 1) / NORM_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < NORM_CHUNKS; c++) {
        size_t a = (size_t)c * per, b = a + per < n ? a + per : n;
        double s = 0.0;
        for (size_t k = a; k < b; k++) s += (double)g[k] * g[k];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < NORM_CHUNKS; c++) s += part[c];
    return sqrt(s);
}

double grad_clip(float *g, size_t n, double max_norm) {
    const double norm = grad_global_norm(g, n);
    if (max_norm > 0.0 && norm > max_norm && isfinite(norm)) {
        const float s = (float)(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < n; k++) g[k] *= s;
    }
    return norm;
}
