/* The table of all mechanisms: adding one is a file plus a line here. */
#include <stdio.h>
#include <string.h>

#include "core/xassert.h"
#include "mixers/mixer.h"

extern const MixerSpec mixer_full;
extern const MixerSpec mixer_local;
extern const MixerSpec mixer_sliding;
extern const MixerSpec mixer_linear;
extern const MixerSpec mixer_performer;
extern const MixerSpec mixer_bigbird;
extern const MixerSpec mixer_longformer;
extern const MixerSpec mixer_linformer;
extern const MixerSpec mixer_rfa;
extern const MixerSpec mixer_memory_compressed;
extern const MixerSpec mixer_sparse_transformer;
extern const MixerSpec mixer_reformer;
extern const MixerSpec mixer_axial;
extern const MixerSpec mixer_sinkhorn;
extern const MixerSpec mixer_luna;
extern const MixerSpec mixer_fnet;
extern const MixerSpec mixer_isab;
extern const MixerSpec mixer_synthesizer;
extern const MixerSpec mixer_nystrom;
extern const MixerSpec mixer_routing;
extern const MixerSpec mixer_cosformer;
extern const MixerSpec mixer_long_short;
extern const MixerSpec mixer_clustered;
extern const MixerSpec mixer_s4d;
extern const MixerSpec mixer_hyena;
extern const MixerSpec mixer_mamba;
extern const MixerSpec mixer_rwkv;
extern const MixerSpec mixer_retnet;

static const MixerSpec *const g_mixers[] = {
    &mixer_full,
    &mixer_local,
    &mixer_sliding,
    &mixer_linear,
    &mixer_performer,
    &mixer_bigbird,
    &mixer_longformer,
    &mixer_linformer,
    &mixer_rfa,
    &mixer_memory_compressed,
    &mixer_sparse_transformer,
    &mixer_reformer,
    &mixer_axial,
    &mixer_sinkhorn,
    &mixer_luna,
    &mixer_fnet,
    &mixer_isab,
    &mixer_synthesizer,
    &mixer_nystrom,
    &mixer_routing,
    &mixer_cosformer,
    &mixer_long_short,
    &mixer_clustered,
    &mixer_s4d,
    &mixer_hyena,
    &mixer_mamba,
    &mixer_rwkv,
    &mixer_retnet,
};

int mixer_count(void) { return (int)XB_ARRAY_LEN(g_mixers); }

const MixerSpec *mixer_get(int i) {
    XB_ASSERT(i >= 0 && i < mixer_count());
    return g_mixers[i];
}

int mixer_find(const char *name) {
    for (int i = 0; i < mixer_count(); i++)
        if (strcmp(g_mixers[i]->name, name) == 0) return i;
    return -1;
}

void mixer_create(Mixer *m, const MixerSpec *spec, const OptValues *opts, int D, int H, int max_len,
                  int layer, ParamTable *pt) {
    mixer_create_deep(m, spec, opts, D, H, max_len, layer, 0, pt);
}

void mixer_create_deep(Mixer *m, const MixerSpec *spec, const OptValues *opts, int D, int H,
                       int max_len, int layer, int n_layers, ParamTable *pt) {
    memset(m, 0, sizeof *m);
    m->spec = spec;
    m->opts = opts;
    m->D = D;
    m->H = H;
    m->max_len = max_len;
    m->layer = layer;
    m->n_layers = n_layers;
    snprintf(m->prefix, sizeof m->prefix, "blocks.%d.mixer", layer);
    spec->ops->create(m, pt);
}

void mixer_destroy(Mixer *m) {
    if (m->spec && m->spec->ops->destroy) m->spec->ops->destroy(m);
    memset(m, 0, sizeof *m);
}
