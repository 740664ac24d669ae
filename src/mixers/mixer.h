/* Token mixers: the attention mechanisms. A mixer maps X (B, L, D) with a key-padding mask to
 * Y (B, L, D). Each mechanism is one file with its MixerOps plus one line in mechanisms.def. */
#ifndef XB_MIXER_H
#define XB_MIXER_H

#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/options.h"
#include "core/params.h"
#include "mixers/mixer_spec.h"

typedef struct MixerSpec MixerSpec;

/* One mixer instance (one layer). */
typedef struct Mixer {
    const MixerSpec *spec;
    const OptValues *opts; /* validated options (owned by the config) */
    int D, H, max_len;     /* model width, heads, longest sequence it will see */
    int layer;             /* 0-based layer index (seeds per-layer randomness) */
    int n_layers;          /* mixer layers of the model, for depth-dependent initialisations
                            * (RWKV's); 0 when unknown (mixer_create) */
    int carry;             /* rows of width D per batch row that forward hands to the next mixer
                            * layer (Luna's packed sequence; MixerStep.carry_out), 0 for none:
                            * set by create, and the caller owns the buffers */
    int ctx;               /* leading positions of every row that are context only: keys and
                            * values, no output wanted (Transformer-XL's memory). Set by the
                            * caller after mixer_create and before plan, and only for a mechanism
                            * whose spec has skips_context; that mechanism computes no query for
                            * them and leaves their rows of y as they were (dy there is ignored) */
    int cls;               /* 1 when position 0 of every row is the model's CLS token (pooling
                            * cls); set by the caller after mixer_create, before plan */
    char prefix[64];       /* parameter name prefix, e.g. "blocks.0.mixer" */
    void *state;           /* mechanism-private: parameter indices, saved activations */
} Mixer;

/* What one forward/backward call sees. */
typedef struct MixerStep {
    int B, L;
    const unsigned char *mask; /* (B, L): 1 real token, 0 padding; NULL means all real */
    int training;              /* 1 in training (noise, EMA updates, redraws), 0 in evaluation */
    int frozen;                /* 1: reuse the previous forward's discrete choices (buckets,
                                * clusters, active sets), for gradient checks of piecewise maps */
    uint64_t seed;             /* experiment seed */
    int64_t step;              /* training step (for per-step noise and redraws); in evaluation,
                                * the step that produced the parameters (0: none) */
    const ParamTable *pt;
    const float *params; /* parameter buffer (pt->total floats) */
    float *grads;        /* gradient buffer, same layout; backward accumulates into it */
    Arena *scratch;      /* per-call scratch; the caller resets it after each call */
    uint64_t row0;       /* the global batch row of row 0 (data-parallel training; 0 in one
                          * process): noise per batch row is drawn for the global row */
    double *aux_loss;    /* NULL, or where forward adds its auxiliary loss (already weighted,
                          * e.g. Routing's commitment term); when non-NULL, backward adds
                          * that loss's gradient too (the loss enters with weight 1) */
    /* The carry between mixer layers, for a mechanism with Mixer.carry > 0 (the caller's buffers,
     * (B, carry, D) each; the others ignore them): */
    const float *carry_in;   /* the previous mixer layer's carry_out; NULL for the first layer */
    float *carry_out;        /* forward writes this layer's carry for the next */
    float *dcarry_in;        /* backward adds the gradient at carry_in (NULL with carry_in) */
    const float *dcarry_out; /* backward: the gradient at carry_out (zeros for the last layer) */
} MixerStep;

/* Parameter tensor i of the step's buffer (NULL when i < 0, an absent optional tensor), and its
 * gradient (NULL too for a buffer, which is not trained by gradient). Both point into the
 * caller's buffers. */
static inline const float *mixer_param(const MixerStep *s, int i) {
    return i < 0 ? NULL : s->params + s->pt->info[i].offset;
}
static inline float *mixer_grad(const MixerStep *s, int i) {
    return i < 0 || s->pt->info[i].buffer ? NULL : s->grads + s->pt->info[i].offset;
}

typedef struct MixerOps {
    /* Checks option combinations the schema cannot express against the model's sizes; on error
     * fills err->key (e.g. "model.mixer.window") and err->msg, leaving file/line to the caller. */
    int (*check)(const OptValues *opts, int D, int H, int max_len, XbError *err);
    /* Allocates m->state and declares the parameters (names start with m->prefix). */
    void (*create)(Mixer *m, ParamTable *pt);
    /* Carves the activations that forward saves for backward from acts (for batch B, length L;
     * acts may be a measuring arena), and allocates from scratch what one call needs at most
     * (scratch is a measuring arena here). Called once to measure, once for real. */
    void (*plan)(Mixer *m, Arena *acts, Arena *scratch, int B, int L);
    /* y (B, L, D) = mixer(x (B, L, D)); y is overwritten. */
    void (*forward)(Mixer *m, const MixerStep *s, float *y, const float *x);
    /* dx (B, L, D) += d/dx; parameter gradients += into s->grads. Needs the same x as forward. */
    void (*backward)(Mixer *m, const MixerStep *s, float *dx, const float *dy, const float *x);
    /* Matrix-product FLOPs (see core/flops.h) of one forward (backward = 0) or backward call. */
    uint64_t (*flops)(const Mixer *m, int B, int L, int backward);
    /* Frees m->state; NULL when free(m->state) is all it takes (mixer_destroy does that). */
    void (*destroy)(Mixer *m);
} MixerOps;

struct MixerSpec {
    const char *name;    /* registry and YAML name */
    const char *classes; /* taxonomy class label(s) of the survey (arXiv 2009.06732), e.g. "FP+M" */
    const char *arxiv;   /* arXiv id of the paper */
    const char *title;   /* short description */
    int honours_mask;    /* 1 if padding keys are excluded exactly */
    /* NULL when the outputs at a row's real positions equal those of the row cut to its real
     * length (padding is invisible); otherwise how they depend on the padded length by nature
     * (landmark segments, an FFT over the padded length, ...), for `list mechanisms` */
    const char *padding_dependence;
    const char *padding_dependence_option; /* NULL, or the boolean option under which alone the
                                            * dependence holds (e.g. local's "lra") */
    int skips_context; /* 1 if it honours Mixer.ctx (queries only after the context rows) */
    int beyond_survey; /* 1 for a mechanism of the generation after the survey's table (state
                        * space, long convolution, recurrence: classes SSM, LC, RNN), marked so in
                        * `list` and in tables */
    const OptSpec *opts;
    int n_opts;
    const MixerOps *ops;
};

/* The registry. */
int mixer_count(void);
const MixerSpec *mixer_get(int i);
/* Index of the mechanism called name, or -1. */
int mixer_find(const char *name);

/* Creates m for a layer (calls spec->ops->create). */
void mixer_create(Mixer *m, const MixerSpec *spec, const OptValues *opts, int D, int H, int max_len,
                  int layer, ParamTable *pt);
/* The same for layer `layer` of a model of n_layers mixer layers (mixer_create: depth unknown). */
void mixer_create_deep(Mixer *m, const MixerSpec *spec, const OptValues *opts, int D, int H,
                       int max_len, int layer, int n_layers, ParamTable *pt);
void mixer_destroy(Mixer *m);

#endif
