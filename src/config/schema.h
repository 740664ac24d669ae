/* The config's schema, internal to src/config: its sections, one static table of keys per section
 * (type, range, default, and where the value lives in ExperimentConfig), the lookups the loader
 * makes in them, and the nearest-name suggestions of its error messages. */
#ifndef XB_CONFIG_SCHEMA_H
#define XB_CONFIG_SCHEMA_H

#include <stddef.h>

#include "config/config.h"

#define CFG_MAX_NAMES (XB_MAX_OPTS + 64)

typedef enum {
    SEC_EXP,
    SEC_TASK,
    SEC_MODEL,
    SEC_TRAIN,
    SEC_SWEEP,
    SEC_MIXER,
    SEC_TOP,
    N_SEC
} SecId;
#define N_TOP 5
#define N_TOP 5
extern const char *const cfg_sections[N_TOP]; /* the top-level keys, in file order */
extern const char *const cfg_sec_path[N_SEC]; /* each section's dotted path ("model.mixer") */

/* One key of the experiment, model or train table. */
typedef enum { F_INT, F_I64, F_U64, F_FLT, F_DBL, F_ENUM, F_BOOL, F_STR } FieldKind;
typedef struct Field {
    OptSpec o;
    FieldKind kind;
    size_t off, size; /* where it lives in ExperimentConfig */
} Field;

/* Indices of the keys in those tables (the loader's cross-checks read values by them). */
enum { E_NAME, E_SEED, E_THREADS, E_OUTPUT_DIR, N_EXP };

enum {
    M_LAYERS,
    M_D_MODEL,
    M_HEADS,
    M_D_FF,
    M_DROPOUT,
    M_MAX_LEN,
    M_POOLING,
    M_POSITIONS,
    M_HEAD_HIDDEN,
    M_FUNNEL,
    M_LATENTS,
    M_CROSS_ATTENDS,
    M_SEGMENT,
    M_MEMORY,
    M_COMPRESS,
    M_COMPRESSED,
    M_FFN,
    M_EXPERTS,
    M_CAPACITY,
    M_EVAL_CAPACITY,
    M_BALANCE,
    M_ZLOSS,
    N_MODEL
};

enum {
    T_BATCH_SIZE,
    T_STEPS,
    T_LR,
    T_SCHEDULE,
    T_WARMUP,
    T_WEIGHT_DECAY,
    T_BETA1,
    T_BETA2,
    T_EPS,
    T_CLIP_NORM,
    T_EVAL_EVERY,
    T_EVAL_BATCHES,
    T_LOG_EVERY,
    T_CHECKPOINT,
    T_CHECKPOINT_EVERY,
    N_TRAIN
};

/* A section's schema: a Field table (experiment, model, train) or a registry's OptSpec table. */
typedef struct Schema {
    const Field *fields;
    const OptSpec *specs;
    int n;
} Schema;

/* The schema of section s for the run's task and mixer (-1: not known yet, an empty schema). */
Schema cfg_schema_of(SecId s, int task, int mixer);
/* The i-th key's spec. */
const OptSpec *cfg_schema_spec(const Schema *s, int i);
/* Index of the key name[0..len), or -1. */
int cfg_schema_find(const Schema *s, const char *name, size_t len);
/* Every valid key at a level in table order, into names (CFG_MAX_NAMES); returns the count. */
int cfg_level_names(SecId lv, int task, int mixer, const char **names);
/* The names of every task (tasks != 0) or mixer, into names; returns the count. */
int cfg_registry_names(int tasks, const char **names);
/* names joined with ", " into buf, cut at cap. */
void cfg_join_names(char *buf, size_t cap, const char *const *names, int n);
/* Index of the name nearest to given[0..len) within max(2, len/3) edits, or -1. */
int cfg_suggest(const char *given, int len, const char *const *names, int n);
/* Stores the values v of a Field section (experiment, model or train) into c. */
void cfg_schema_store(ExperimentConfig *c, SecId sec, const OptValues *v);

#endif
