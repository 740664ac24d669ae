/* The harness the mixer suites share (tests/test_mixers*.c): a mechanism instance with its own
 * parameters, inputs and arenas; the generic checks (finite differences, counted = analytic FLOPs,
 * padding, determinism); comparisons with `full` under the same projections. */
#ifndef XB_TEST_MIXER_HARNESS_H
#define XB_TEST_MIXER_HARNESS_H

#include "core/arena.h"
#include "mixers/mixer.h"

/* One mechanism instance with its buffers. */
typedef struct Inst {
    Mixer m;
    ParamTable pt;
    OptValues opts;
    float *params, *grads, *x, *y, *dy, *dx;
    float *carry, *dcarry; /* a mechanism that carries rows to the next layer (Mixer.carry):
                            * its carry_out, and a zero gradient arriving at it (the last layer) */
    unsigned char *mask;
    Arena acts, scratch;
    int B, L, D, H;
    int frozen;   /* passed to the mechanism: reuse its previous discrete choices */
    int training; /* 1 (inst_init's default): training steps; 0: evaluation */
} Inst;

/* Scale of the random inputs (the performer test lowers it: the variance of positive random
 * features grows like exp(‖q‖·‖k‖)). */
extern float g_xscale;
/* Mixer.ctx of the instances created next, for mechanisms that skip context rows (default 0). */
extern int g_ctx;
/* Mixer.cls of the instances created next (position 0 is a CLS token; default 0). */
extern int g_cls;

/* "name=value,name=value" → option values of spec (numbers, true/false, or enum choices). */
void set_opts(OptValues *v, const MixerSpec *spec, const char *text);
/* One instance of mechanism `name` with `opts` at (B, L, D, H): parameters from seed, inputs x and
 * dy random; pad[b] trailing positions of row b are padding (pad may be NULL: no mask). */
void inst_init(Inst *t, const char *name, const char *opts, int B, int L, int D, int H,
               const int *pad, uint64_t seed);
/* The same for a mechanism created for sequences up to max_len (>= L) but run at length L. */
void inst_init_at(Inst *t, const char *name, const char *opts, int B, int L, int max_len, int D,
                  int H, const int *pad, uint64_t seed);
void inst_free(Inst *t);
/* The MixerStep of step 3 (seed 7) over t's buffers, training unless t->training is 0. */
MixerStep step_of(Inst *t);
/* y = forward(x) (void * for gradcheck). */
void inst_forward(void *p);
/* dx and the gradients (zeroed first) of the loss Σ dy·y. */
void inst_backward(Inst *t);
/* The generic checks on one configuration: counted = analytic FLOPs, the same bits twice, dx and
 * every parameter's gradient against finite differences, padding that cannot reach real rows. */
void check_mechanism(const char *name, const char *opts, int B, int L, int D, int H);
/* Largest and mean relative difference between y of `name` with `opts` and full attention's
 * (with full_opts) under the same projection weights. */
void error_vs_full(const char *name, const char *opts, const char *full_opts, int B, int L, int D,
                   int H, double *worst_out, double *mean_out);
/* y of `name` with `opts` equals full attention's with the same projection weights (to tol). */
void check_equals_full(const char *name, const char *opts, const char *full_opts, int B, int L,
                       int D, int H, double tol);

#endif
