/* The body of the kernel-class mechanisms (linear attention with a feature map): the Q/K/V and
 * output projections of attn_mixer, a feature map per mechanism, and the shared linear-attention
 * kernel (kernels/linear_attn.h). Padding keys get zero features, so they are excluded exactly. */
#ifndef XB_KERNEL_MIXER_H
#define XB_KERNEL_MIXER_H

#include "kernels/linear_attn.h"
#include "mixers/attn_mixer.h"

typedef struct KernelMixer KernelMixer;

/* A feature map φ applied per head: x is Q or K inside the packed (B, L, 3D) projection (head h
 * at column h·Dh, row stride 3D); phi is (B, H, L, M). */
typedef struct FeatureOps {
    /* Called once per forward before the maps (e.g. to redraw random features). Then either
     * forward and backward (whole tensors) or the row maps below are set. */
    void (*prepare)(KernelMixer *km, const MixerStep *s);
    void (*forward)(KernelMixer *km, const MixerStep *s, float *phi, const float *x, int is_key);
    /* dx += ∂/∂x given dphi; phi and x are the forward's. */
    void (*backward)(KernelMixer *km, const MixerStep *s, float *dx, const float *dphi,
                     const float *phi, const float *x, int is_key);
    /* Matrix-product FLOPs of the maps of Q and K together. */
    uint64_t (*flops)(const KernelMixer *km, int B, int L, int backward);
    /* NULL for a deterministic map; else the random projection the last forward used, with its
     * number of rows per head and whether each head has its own (see kernel_mixer_random). */
    const float *(*random)(const KernelMixer *km, int *rows, int *per_head);

    /* Optional: the map on chunks of rows of one head (b, h), for the fused kernel
     * (kernels/linear_attn.h, LinAttnMap: the calling order, key_passes, what phi holds). When
     * map_rows is set, kernel_mixer uses these and not forward/backward above, and counts the
     * map's FLOPs (flops) itself. x and dx point at row l0 of the head's slice of Q or K in the
     * packed (B, L, 3D) projection and its gradient (row stride 3D). */
    int key_passes;
    size_t (*rows_work)(const KernelMixer *km); /* floats of work per thread */
    void (*map_rows)(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n, int is_key,
                     int pass, float *phi, const float *x, float *work);
    void (*backward_rows)(KernelMixer *km, const MixerStep *s, int b, int h, int l0, int n,
                          int is_key, float *dx, float *dphi, int ld, const float *phi,
                          const float *x, float *work);
    /* NULL, or after the last chunk of the queries (is_key 0) or of the keys; dx and x at row 0 */
    void (*backward_end)(KernelMixer *km, const MixerStep *s, int b, int h, int is_key, float *dx,
                         const float *x, float *work);
} FeatureOps;

struct KernelMixer {
    AttnMixer am; /* projections and the saved qkv / att */
    const FeatureOps *fops;
    int H, Dh;           /* heads and head width */
    int M;               /* features per head */
    float eps;           /* added to every denominator (0: none) */
    float min_den;       /* see LinAttnShape (0: none) */
    float guard;         /* see LinAttnShape (0: none) */
    int causal;          /* see LinAttnShape: the causal form (a mechanism with row maps only) */
    unsigned char *low;  /* (B, H, L) saved: rows where min_den or guard acted */
    float *phq, *phk;    /* (B, H, L, M) saved */
    float *kv, *z, *den; /* saved by the kernel */
    void *own;           /* the mechanism's state */
};

/* Declares the projections; the mechanism sets fops, M and own afterwards. */
void kernel_mixer_create(Mixer *m, ParamTable *pt, KernelMixer *km, int bias);
LinAttnShape kernel_mixer_shape(const Mixer *m, int B, int L);
void kernel_mixer_plan(Mixer *m, Arena *acts, Arena *scratch, int B, int L);
void kernel_mixer_forward(Mixer *m, const MixerStep *s, float *y, const float *x);
void kernel_mixer_backward(Mixer *m, const MixerStep *s, float *dx, const float *dy,
                           const float *x);
uint64_t kernel_mixer_flops(const Mixer *m, int B, int L, int backward);
/* For tests that recompute a mechanism naively: the random projection its last forward drew
 * (owned by the mechanism, valid until the next forward), or NULL for a deterministic feature map.
 * *rows is the number of projection rows of one head, each Dh long; *per_head is 0 when all heads
 * share one (rows, Dh) matrix (Performer's W) and 1 when the array is (H, rows, Dh) (RFA's ε). */
const float *kernel_mixer_random(const Mixer *m, int *rows, int *per_head);

#endif
