/* What the generated tasks (synthetic.c, synthetic_seq.c) share: the split-size options, one
 * allocation per split, the size limit, and the generation loop over the three splits from the
 * RNG_STREAM_DATA stream of the seed. Internal to src/tasks. */
#ifndef XB_SYNTHETIC_H
#define XB_SYNTHETIC_H

#include <stdint.h>

#include "core/error.h"
#include "core/options.h"
#include "core/rng.h"
#include "tasks/task.h"

/* num_train (default tr), num_val and num_test (default 1000), as OptSpec initialisers. */
#define SYNTH_SPLIT_OPTS(tr)                                                                       \
    {.name = "num_train",                                                                          \
     .type = OPT_INT,                                                                              \
     .def = tr,                                                                                    \
     .min = 1,                                                                                     \
     .max = 10000000,                                                                              \
     .help = "training examples"},                                                                 \
        {.name = "num_val",                                                                        \
         .type = OPT_INT,                                                                          \
         .def = 1000,                                                                              \
         .min = 1,                                                                                 \
         .max = 10000000,                                                                          \
         .help = "validation examples"},                                                           \
    {                                                                                              \
        .name = "num_test", .type = OPT_INT, .def = 1000, .min = 1, .max = 10000000,               \
        .help = "test examples"                                                                    \
    }

/* One example of length len: writes its tokens to out and, for a sequence task, each
 * position's target (or XB_NO_TARGET) to tgt (NULL for a classification task); returns the
 * label (classification) or 0. */
typedef int (*SynthGenFn)(Rng *r, const OptValues *v, int len, int32_t *out, int32_t *tgt);

/* 0, or -1 with err set when the three splits of up to maxlen tokens each would pass 2e9
 * tokens. */
int synth_check_counts(const OptValues *v, const OptSpec *o, int n, int64_t maxlen,
                       const char *source, XbError *err);

/* Generates the three splits of d (sizes from v's num_train/num_val/num_test) from the
 * RNG_STREAM_DATA stream of seed: each example's length is drawn uniformly from minlen, minlen +
 * step, ..., maxlen, then gen writes it. With targets, each split gets a targets array and no
 * labels (d->sequence is set). */
void synth_generate(Dataset *d, const OptValues *v, const OptSpec *o, int n, uint64_t seed,
                    int minlen, int maxlen, int step, int targets, SynthGenFn gen);

/* d's identity: task, generator, seed and the three split sizes, then the integer options keys[i]
 * = values[i], i < n. */
void synth_identity(Dataset *d, const char *task, const char *generator, uint64_t seed,
                    const char *const *keys, const int *values, int n);

/* out[0..k) = k distinct integers of [0, n) (k <= n): a uniform draw of the set (Floyd's
 * algorithm) in a uniformly random order (Fisher-Yates). seen: n bytes of scratch, zero on entry
 * and on return. */
void synth_distinct(Rng *r, int32_t *out, int k, int n, unsigned char *seen);

#endif
