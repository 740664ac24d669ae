/* Where a training step goes: wall time per kernel family and direction, from timers at the
 * kernels' own boundaries. Exclusive: a region's time excludes the regions opened inside it (a
 * mixer's time is what the mixer does beyond the linear layers and attention kernels it calls),
 * so the families add up to the time spent in kernels and the rest of a step is "other". Only the
 * thread outside OpenMP regions records (kernels are called from there; a call from inside a
 * parallel region is not timed). Cheap enough to leave on: two clock reads per region. */
#ifndef XB_PROFILE_H
#define XB_PROFILE_H

typedef enum {
    PROF_EMBEDDING,
    PROF_LAYERNORM,
    PROF_LINEAR,
    PROF_ATTENTION,   /* the fused softmax-attention kernel */
    PROF_LINEAR_ATTN, /* the feature-map attention kernel */
    PROF_ACTIVATION,  /* GELU, ReLU */
    PROF_DROPOUT,
    PROF_SOFTMAX,
    PROF_POOL,
    PROF_LOSS,
    PROF_GATHER,     /* gathers, scatters, sorts */
    PROF_MIXER,      /* the mechanism's own work (its products, scans, FFTs, sorting) */
    PROF_CROSS_ATTN, /* the Funnel's and the Perceiver's cross-attention blocks */
    PROF_FFN,        /* the FFN's own work beyond its linear layers (Switch routing) */
    PROF_ENCODER,    /* the encoder's glue: residual adds, recurrence windows, pooling */
    PROF_OPTIMIZER,  /* gradient clipping and AdamW */
    PROF_COMM,       /* collectives (data-parallel training) */
    PROF_DATA,       /* batch assembly */
    PROF_N
} ProfKind;

/* Opens a region of kind k (direction: 0 forward, 1 backward); every open has its close. */
void prof_open(ProfKind k, int backward);
void prof_close(void);
/* Zeroes the accumulated times. */
void prof_reset(void);
/* 0 pauses recording (evaluation, say), 1 resumes; XB_PROFILE=0 in the environment turns it off. */
void prof_enable(int on);
/* Accumulated seconds of kind k in direction `backward`. */
double prof_seconds(ProfKind k, int backward);
/* The family's name in reports ("linear", "mixer", ...). */
const char *prof_name(ProfKind k);
/* Regions recorded since the last reset (for the overhead estimate). */
long long prof_regions(void);

#endif
