#include "core/params.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"

void params_init(ParamTable *t) { memset(t, 0, sizeof *t); }

void params_free(ParamTable *t) {
    free(t->info);
    memset(t, 0, sizeof *t);
}

int params_add(ParamTable *t, const char *name, int ndim, const int *shape, InitKind init,
               float scale, int decay) {
    XB_ASSERT(ndim >= 1 && ndim <= XB_PARAM_MAXDIM);
    if (t->share) {
        const int i = params_find(t, name);
        if (i >= 0) {
            XB_ASSERT(t->info[i].ndim == ndim);
            for (int d = 0; d < ndim; d++) XB_ASSERT(t->info[i].shape[d] == shape[d]);
            return i;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->info = realloc(t->info, (size_t)t->cap * sizeof *t->info);
        XB_ASSERT(t->info);
    }
    ParamInfo *p = &t->info[t->n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->size = 1;
    for (int i = 0; i < ndim; i++) {
        XB_ASSERT(shape[i] > 0);
        p->shape[i] = shape[i];
        p->size *= (size_t)shape[i];
    }
    p->offset = t->total;
    p->init = init;
    p->scale = scale;
    p->decay = decay;
    p->copy_of = -1;
    t->total += (p->size + 15) & ~(size_t)15;
    return t->n++;
}

int params_add1(ParamTable *t, const char *name, int d0, InitKind init, float scale, int decay) {
    return params_add(t, name, 1, &d0, init, scale, decay);
}

int params_add2(ParamTable *t, const char *name, int d0, int d1, InitKind init, float scale,
                int decay) {
    int s[2] = {d0, d1};
    return params_add(t, name, 2, s, init, scale, decay);
}

/* name from fmt and ap: a tensor's name is the code's, never the user's, so one too long is a
 * programming error */
static void format_name(char *name, const char *fmt, va_list ap) {
    const int n = vsnprintf(name, XB_PARAM_NAME, fmt, ap);
    XB_ASSERT(n >= 0 && n < XB_PARAM_NAME);
}

int params_addf(ParamTable *t, int ndim, const int *shape, InitKind init, float scale, int decay,
                const char *fmt, ...) {
    char name[XB_PARAM_NAME];
    va_list ap;
    va_start(ap, fmt);
    format_name(name, fmt, ap);
    va_end(ap);
    return params_add(t, name, ndim, shape, init, scale, decay);
}

int params_add1f(ParamTable *t, int d0, InitKind init, float scale, int decay, const char *fmt,
                 ...) {
    char name[XB_PARAM_NAME];
    va_list ap;
    va_start(ap, fmt);
    format_name(name, fmt, ap);
    va_end(ap);
    return params_add(t, name, 1, &d0, init, scale, decay);
}

int params_add2f(ParamTable *t, int d0, int d1, InitKind init, float scale, int decay,
                 const char *fmt, ...) {
    char name[XB_PARAM_NAME];
    const int s[2] = {d0, d1};
    va_list ap;
    va_start(ap, fmt);
    format_name(name, fmt, ap);
    va_end(ap);
    return params_add(t, name, 2, s, init, scale, decay);
}

void params_initialise(const ParamTable *t, float *buf, Rng *rng) {
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *p = &t->info[i];
        float *w = buf + p->offset;
        switch (p->init) {
        case INIT_ZEROS:
            memset(w, 0, p->size * sizeof *w);
            break;
        case INIT_ONES:
            for (size_t k = 0; k < p->size; k++) w[k] = 1.0f;
            break;
        case INIT_NORMAL:
            for (size_t k = 0; k < p->size; k++) w[k] = p->scale * rng_normal(rng);
            break;
        case INIT_XAVIER_UNIFORM: {
            XB_ASSERT(p->ndim == 2);
            float a = sqrtf(6.0f / (float)(p->shape[0] + p->shape[1]));
            for (size_t k = 0; k < p->size; k++) w[k] = a * (2.0f * rng_uniform(rng) - 1.0f);
            break;
        }
        case INIT_UNIFORM:
            for (size_t k = 0; k < p->size; k++) w[k] = p->scale * (2.0f * rng_uniform(rng) - 1.0f);
            break;
        case INIT_COPY:
            XB_ASSERT(p->copy_of >= 0 && p->copy_of < i && t->info[p->copy_of].size == p->size);
            memcpy(w, buf + t->info[p->copy_of].offset, p->size * sizeof *w);
            break;
        case INIT_FN:
            p->init_fn(w, p, rng);
            break;
        }
    }
}

int params_add_copy(ParamTable *t, const char *name, int src, int decay) {
    XB_ASSERT(src >= 0 && src < t->n);
    const ParamInfo s = t->info[src]; /* params_add may move the table */
    const int i = params_add(t, name, s.ndim, s.shape, INIT_COPY, 0, decay);
    t->info[i].copy_of = src;
    return i;
}

int params_add_fn(ParamTable *t, const char *name, int ndim, const int *shape, ParamInitFn fn,
                  const double *args, int nargs, int decay) {
    XB_ASSERT(fn && nargs >= 0 && nargs <= 4);
    const int i = params_add(t, name, ndim, shape, INIT_FN, 0, decay);
    t->info[i].init_fn = fn;
    for (int k = 0; k < nargs; k++) t->info[i].init_arg[k] = args[k];
    return i;
}

int params_add_buffer(ParamTable *t, const char *name, int ndim, const int *shape, InitKind init,
                      float scale) {
    const int i = params_add(t, name, ndim, shape, init, scale, 0);
    t->info[i].buffer = 1;
    return i;
}

int params_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->info[i].name, name) == 0) return i;
    return -1;
}

size_t params_count(const ParamTable *t) {
    size_t n = 0;
    for (int i = 0; i < t->n; i++)
        if (!t->info[i].buffer) n += t->info[i].size;
    return n;
}
