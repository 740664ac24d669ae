/* Parameter layout: every tensor of the model is a named view into one contiguous float buffer
 * (parameters), with gradients and AdamW moments in buffers of the same layout. */
#ifndef XB_PARAMS_H
#define XB_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

#define XB_PARAM_NAME 96
#define XB_PARAM_MAXDIM 4

typedef enum {
    INIT_ZEROS,
    INIT_ONES,
    INIT_NORMAL,         /* N(0, scale^2) */
    INIT_XAVIER_UNIFORM, /* U(-a, a), a = sqrt(6 / (fan_in + fan_out)): shape (fan_out, fan_in) */
    INIT_UNIFORM,        /* U(-scale, scale) */
    INIT_COPY,           /* the values of an earlier tensor of the same size (ParamInfo.copy_of) */
    INIT_FN              /* values from ParamInfo.init_fn (a structured initialisation) */
} InitKind;

struct ParamInfo;
/* INIT_FN: writes the p->size values of a structured initialisation (an SSM's eigenvalues, a
 * log-uniform step size) into w, from p->init_arg and rng. */
typedef void (*ParamInitFn)(float *w, const struct ParamInfo *p, Rng *rng);

typedef struct ParamInfo {
    char name[XB_PARAM_NAME]; /* e.g. "blocks.0.mixer.qkv.weight" (PyTorch-style) */
    int ndim;
    int shape[XB_PARAM_MAXDIM];
    size_t offset, size; /* in floats */
    InitKind init;
    float scale;
    int decay;   /* 1 if AdamW weight decay applies (matrices), 0 for biases/norms */
    int copy_of; /* INIT_COPY: index of the tensor copied at initialisation */
    int buffer;  /* 1: state, not a parameter (e.g. Routing's k-means centroids):
                  * no gradient, no optimizer update; its mechanism updates it in
                  * training; saved in checkpoints like the parameters */
    /* INIT_FN: the function and its arguments */
    ParamInitFn init_fn;
    double init_arg[4];
} ParamInfo;

typedef struct ParamTable {
    int n, cap;
    ParamInfo *info;
    size_t total; /* floats */
    int share;    /* while set, declaring a name that exists returns that tensor (its shape must
                   * match): weight sharing, e.g. the Perceiver's repeated blocks */
} ParamTable;

void params_init(ParamTable *t);
void params_free(ParamTable *t);
/* Declares a tensor; returns its index. Offsets are 16-float aligned. With t->share, a tensor of
 * that name declared before is returned instead. */
int params_add(ParamTable *t, const char *name, int ndim, const int *shape, InitKind init,
               float scale, int decay);
/* Convenience forms for 1-D and 2-D tensors. */
int params_add1(ParamTable *t, const char *name, int d0, InitKind init, float scale, int decay);
int params_add2(ParamTable *t, const char *name, int d0, int d1, InitKind init, float scale,
                int decay);
/* The same with the name from a printf format, e.g.
 * params_add2f(pt, D, D, INIT_XAVIER_UNIFORM, 0, 1, "%s.query.weight", prefix). */
int params_addf(ParamTable *t, int ndim, const int *shape, InitKind init, float scale, int decay,
                const char *fmt, ...) __attribute__((format(printf, 7, 8)));
int params_add1f(ParamTable *t, int d0, InitKind init, float scale, int decay, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int params_add2f(ParamTable *t, int d0, int d1, InitKind init, float scale, int decay,
                 const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* Declares a tensor shaped like tensor src and initialised as a copy of it (e.g. Longformer's
 * global projections start as the local ones); returns its index. */
int params_add_copy(ParamTable *t, const char *name, int src, int decay);
/* Declares a tensor initialised by fn with the nargs (<= 4) numbers args; returns its index. */
int params_add_fn(ParamTable *t, const char *name, int ndim, const int *shape, ParamInitFn fn,
                  const double *args, int nargs, int decay);
/* Declares a buffer (see ParamInfo.buffer); returns its index. */
int params_add_buffer(ParamTable *t, const char *name, int ndim, const int *shape, InitKind init,
                      float scale);
/* View of tensor i inside buf (a parameter, gradient or moment buffer of t->total floats). */
static inline float *params_at(const ParamTable *t, float *buf, int i) {
    return buf + t->info[i].offset;
}
/* Initialises every tensor in declaration order from rng. */
void params_initialise(const ParamTable *t, float *buf, Rng *rng);
/* Index of the tensor called name, or -1. */
int params_find(const ParamTable *t, const char *name);
/* Number of scalar parameters (without alignment padding and without buffers). */
size_t params_count(const ParamTable *t);

#endif
