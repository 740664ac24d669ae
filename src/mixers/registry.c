/* The table of all mechanisms, expanded from mechanisms.def: adding one is a file plus a line
 * there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"
#include "mixers/mixer.h"

#define XB_MECHANISM(symbol, file) extern const MixerSpec mixer_##symbol;
#include "mixers/mechanisms.def"
#undef XB_MECHANISM

static const MixerSpec *const g_mixers[] = {
#define XB_MECHANISM(symbol, file) &mixer_##symbol,
#include "mixers/mechanisms.def"
#undef XB_MECHANISM
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
    if (m->spec && m->spec->ops->destroy)
        m->spec->ops->destroy(m);
    else
        free(m->state); /* a mechanism without a destroy: its state is one block */
    memset(m, 0, sizeof *m);
}
