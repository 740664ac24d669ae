/* Experiment configuration: YAML (libyaml) -> validated, typed structs, with --set overrides and
 * sweep expansion. Every error names FILE:LINE:COL, the key path, what is wrong and what is valid.
 */
#ifndef XB_CONFIG_H
#define XB_CONFIG_H

#include <stdint.h>

#include "config/layout.h"
#include "core/error.h"
#include "core/options.h"

/* POOL_NONE: no pooling, the classifier head at every position (sequence tasks). */
typedef enum { POOL_CLS = 0, POOL_MEAN = 1, POOL_NONE = 2 } PoolKind;
typedef enum { FFN_DENSE = 0, FFN_SWITCH = 1 } FfnKind;
typedef enum { POS_SINUSOIDAL = 0, POS_LEARNED = 1, POS_NONE = 2 } PosKind;
typedef enum { SCHED_CONSTANT = 0, SCHED_COSINE = 1, SCHED_RSQRT = 2, SCHED_LINEAR = 3 } SchedKind;

typedef struct ExperimentConfig {
    char source[512]; /* the YAML file it came from */
    char run_id[256]; /* name, plus the swept values for a sweep member (file-name safe) */
    int sweep_index;  /* 0-based position in the sweep, 0 for a single run */
    int sweep_size;   /* number of runs the file expanded into */

    /* experiment: */
    char name[128];
    uint64_t seed;
    int threads; /* 0 = all cores */
    char output_dir[512];

    /* task: name + the task's own options (schema from the task registry) */
    int task_index; /* index into the task registry */
    OptValues task_opts;

    /* model: */
    int layers, d_model, heads, d_ff;
    float dropout;
    int max_len; /* tokens per example, including the CLS token when pooling is cls */
    PoolKind pooling;
    PosKind positions;
    int head_hidden;   /* width of the classifier MLP's hidden layer; 0 = d_ff */
    int funnel;        /* Funnel Transformer stages (0 or 1: none) */
    int latents;       /* Perceiver latent array length (0: none) */
    int cross_attends; /* Perceiver: cross-attends, each followed by `layers` latent blocks */
    int model_line, model_col; /* the `model:` key in the config (1:1 when it has none) */
    int segment,
        memory; /* Transformer-XL recurrence: segment length (0: none), memory (0: segment) */
    int compress,
        compressed_memory; /* Compressive Transformer: rate (0: none), slots (0: memory) */
    FfnKind ffn;           /* dense, or Switch mixture of experts */
    int experts;
    double capacity_factor, eval_capacity_factor, balance_loss, router_z_loss;
    int mixer_index; /* index into the mixer registry (model.mixer.name) */
    OptValues mixer_opts;

    /* train: */
    int batch_size;
    int64_t steps;
    double lr;
    SchedKind schedule;
    int64_t warmup;
    double weight_decay, beta1, beta2, eps, clip_norm;
    int64_t eval_every;
    int eval_batches; /* 0 = the whole validation split */
    int64_t log_every;
    int checkpoint;           /* save the best validation checkpoint as safetensors */
    int64_t checkpoint_every; /* steps between resumable states (0: none) */
} ExperimentConfig;

typedef struct ConfigSet {
    int n;
    ExperimentConfig *runs; /* n runs (the sweep's cartesian product, or one) */
} ConfigSet;

/* Loads and validates path; overrides are "model.layers=4" strings applied after the file (an
 * override's errors are reported as "--set:N:COL" with N its 1-based position). Returns 0, or -1
 * with err filled (code XB_EXIT_USAGE). out is owned by the caller: free with cfg_set_free. */
int cfg_load(const char *path, const char *const *overrides, int n_overrides, ConfigSet *out,
             XbError *err);
/* Same, from a string (tests); `path` is used only in messages and defaults. */
int cfg_load_string(const char *yaml, const char *path, const char *const *overrides,
                    int n_overrides, ConfigSet *out, XbError *err);
void cfg_set_free(ConfigSet *s);

/* The resolved configuration (all defaults filled in) as a cJSON object owned by the caller. */
struct cJSON *cfg_to_json(const ExperimentConfig *c);
/* FNV-1a 64 of the canonical resolved JSON without experiment.{name,output_dir,threads}: equal
 * hashes mean the same experiment. */
uint64_t cfg_hash(const ExperimentConfig *c);

/* The keys of a section ("experiment", "model", "train") with their types, defaults, ranges and
 * help (the schema the loader validates against; static storage): how many, and the i-th. */
int cfg_key_count(const char *section);
const OptSpec *cfg_key(const char *section, int i);

/* The length after the Funnel Transformer's pooling by 2 of L positions: with a CLS token (cls)
 * it stays and the other L − 1 positions pool in pairs, 1 + ceil((L − 1)/2); else ceil(L/2). */
int cfg_pooled_length(int L, int cls);

/* The shape of c's model (its blocks and their lengths: config/layout.h). */
ModelShape cfg_model_shape(const ExperimentConfig *c);

/* The name and the taxonomy class(es) of c's mechanism (model.mixer.name; static storage). */
const char *cfg_mixer_name(const ExperimentConfig *c);
const char *cfg_mixer_classes(const ExperimentConfig *c);

/* Names of enum values, for messages and reports. */
const char *cfg_pool_name(PoolKind k);
const char *cfg_pos_name(PosKind k);
const char *cfg_sched_name(SchedKind k);

#endif
