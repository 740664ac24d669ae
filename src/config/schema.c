/* The config's schema: one static table per section, each key with its type, range, default and
 * the ExperimentConfig field it fills (the task's and the mixer's keys come from their registries);
 * the lookups and name suggestions of the loader; and the resolved config as JSON and its hash. */
#include "config/schema.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

const char *const cfg_sections[N_TOP] = {[SEC_EXP] = "experiment",
                                         [SEC_TASK] = "task",
                                         [SEC_MODEL] = "model",
                                         [SEC_TRAIN] = "train",
                                         [SEC_SWEEP] = "sweep"};
const char *const cfg_sec_path[N_SEC] = {[SEC_EXP] = "experiment",
                                         [SEC_TASK] = "task",
                                         [SEC_MODEL] = "model",
                                         [SEC_TRAIN] = "train",
                                         [SEC_SWEEP] = "sweep",
                                         [SEC_MIXER] = "model.mixer",
                                         [SEC_TOP] = ""};
_Static_assert(SEC_SWEEP + 1 == N_TOP, "the top-level sections are the first SecIds");

/* ---- the tables ---- */

#define AT(m) .off = offsetof(ExperimentConfig, m), .size = sizeof(((ExperimentConfig *)0)->m)
#define FIELD(spec, k, m)                                                                          \
    { .o = spec, .kind = k, AT(m) }
#define O_INT(n, d, lo, hi, h)                                                                     \
    { .name = n, .type = OPT_INT, .def = d, .min = lo, .max = hi, .help = h }
#define O_FLT(n, d, lo, hi, h)                                                                     \
    { .name = n, .type = OPT_FLOAT, .def = d, .min = lo, .max = hi, .help = h }
#define O_BOOL(n, d, h)                                                                            \
    { .name = n, .type = OPT_BOOL, .def = d, .help = h }
#define O_ENUM(n, d, c, h)                                                                         \
    { .name = n, .type = OPT_ENUM, .def = d, .choices = c, .help = h }
#define O_STR(n, h)                                                                                \
    { .name = n, .type = OPT_STRING, .def_str = "", .help = h }

/* The names of each enum's values, indexed by it, NULL-terminated (OptSpec.choices). */
static const char *const g_pool_names[] = {
    [POOL_CLS] = "cls", [POOL_MEAN] = "mean", [POOL_NONE] = "none", NULL};
static const char *const g_ffn_names[] = {[FFN_DENSE] = "dense", [FFN_SWITCH] = "switch", NULL};
static const char *const g_pos_names[] = {
    [POS_SINUSOIDAL] = "sinusoidal", [POS_LEARNED] = "learned", [POS_NONE] = "none", NULL};
static const char *const g_sched_names[] = {[SCHED_CONSTANT] = "constant",
                                            [SCHED_COSINE] = "cosine",
                                            [SCHED_RSQRT] = "rsqrt",
                                            [SCHED_LINEAR] = "linear",
                                            NULL};
_Static_assert(XB_ARRAY_LEN(g_pool_names) == POOL_NONE + 2, "a name for every PoolKind, NULL");
_Static_assert(XB_ARRAY_LEN(g_ffn_names) == FFN_SWITCH + 2, "a name for every FfnKind, NULL");
_Static_assert(XB_ARRAY_LEN(g_pos_names) == POS_NONE + 2, "a name for every PosKind, NULL");
_Static_assert(XB_ARRAY_LEN(g_sched_names) == SCHED_LINEAR + 2, "a name for every SchedKind");

static const Field g_exp[] = {
    [E_NAME] = FIELD(O_STR("name", "run name (default: the config file's stem)"), F_STR, name),
    [E_SEED] = FIELD(O_INT("seed", 1, 0, 9007199254740991.0, "seed of data, init and dropout"),
                     F_U64, seed),
    [E_THREADS] =
        FIELD(O_INT("threads", 0, 0, 1024, "OpenMP threads; 0 = all cores"), F_INT, threads),
    [E_OUTPUT_DIR] =
        FIELD(O_STR("output_dir", "where reports go (default: results/<name>)"), F_STR, output_dir),
};

_Static_assert(XB_ARRAY_LEN(g_exp) == N_EXP, "an entry for every key of experiment:");

static const Field g_model[] = {
    [M_LAYERS] = FIELD(O_INT("layers", 2, 1, 64, "encoder blocks"), F_INT, layers),
    [M_D_MODEL] = FIELD(O_INT("d_model", 64, 1, 16384, "model width"), F_INT, d_model),
    [M_HEADS] = FIELD(O_INT("heads", 2, 1, 1024, "attention heads"), F_INT, heads),
    [M_D_FF] = FIELD(O_INT("d_ff", 128, 1, 262144, "feed-forward width"), F_INT, d_ff),
    [M_DROPOUT] = FIELD(O_FLT("dropout", 0.1, 0, 0.95, "dropout rate"), F_FLT, dropout),
    [M_MAX_LEN] = FIELD(O_INT("max_len", 512, 2, 1048576, "tokens per example"), F_INT, max_len),
    [M_POOLING] =
        FIELD(O_ENUM("pooling", POOL_CLS, g_pool_names,
                     "sequence pooling for one class per example (cls: the CLS token, mean); "
                     "none: the classifier at every position, for sequence tasks (their "
                     "default)"),
              F_ENUM, pooling),
    [M_POSITIONS] = FIELD(O_ENUM("positions", POS_SINUSOIDAL, g_pos_names, "position encoding"),
                          F_ENUM, positions),
    [M_HEAD_HIDDEN] = FIELD(O_INT("head_hidden", 0, 0, 262144, "classifier hidden width; 0 = d_ff"),
                            F_INT, head_hidden),
    [M_FUNNEL] = FIELD(O_INT("funnel", 0, 0, 16,
                             "Funnel Transformer stages, the sequence mean-pooled by 2 before each "
                             "stage after the first; 0 = none"),
                       F_INT, funnel),
    [M_LATENTS] = FIELD(O_INT("latents", 0, 0, 65536,
                              "Perceiver latent array: it cross-attends to the input (one head), "
                              "then the blocks run over the latents; 0 = none"),
                        F_INT, latents),
    [M_CROSS_ATTENDS] =
        FIELD(O_INT("cross_attends", 1, 1, 64,
                    "Perceiver: cross-attends from the latents to the input, each followed by "
                    "model.layers latent blocks; the latent blocks share their weights across "
                    "repeats, the cross-attends after the first share theirs (paper's ImageNet "
                    "model: 8 cross-attends of 6 blocks)"),
              F_INT, cross_attends),
    [M_SEGMENT] = FIELD(O_INT("segment", 0, 0, 1048576,
                              "Transformer-XL recurrence: segment length, each block attending "
                              "over a memory of earlier states (no gradient) and its segment; 0 = "
                              "none"),
                        F_INT, segment),
    [M_MEMORY] = FIELD(O_INT("memory", 0, 0, 1048576,
                             "states of earlier segments each block remembers; 0 = the segment "
                             "length"),
                       F_INT, memory),
    [M_COMPRESS] = FIELD(O_INT("compress", 0, 0, 4096,
                               "Compressive Transformer: states leaving the memory are compressed "
                               "this many to one (a strided convolution trained by attention "
                               "reconstruction) and kept; 0 = none"),
                         F_INT, compress),
    [M_COMPRESSED] = FIELD(O_INT("compressed_memory", 0, 0, 1048576,
                                 "Compressive Transformer: compressed slots each block keeps; 0 = "
                                 "as many as model.memory"),
                           F_INT, compressed_memory),
    [M_FFN] = FIELD(O_ENUM("ffn", FFN_DENSE, g_ffn_names,
                           "feed-forward: dense, or a Switch mixture of experts (top-1 routing)"),
                    F_ENUM, ffn),
    [M_EXPERTS] = FIELD(O_INT("experts", 8, 1, 4096, "Switch: experts per block"), F_INT, experts),
    [M_CAPACITY] = FIELD(O_FLT("capacity_factor", 1.25, 0.01, 1000,
                               "Switch: expert capacity factor in training (paper: 1.25)"),
                         F_DBL, capacity_factor),
    [M_EVAL_CAPACITY] = FIELD(O_FLT("eval_capacity_factor", 2.0, 0.01, 1000,
                                    "Switch: capacity factor in evaluation (paper: 2.0)"),
                              F_DBL, eval_capacity_factor),
    [M_BALANCE] = FIELD(O_FLT("balance_loss", 0.01, 0, 100,
                              "Switch: load-balancing loss weight alpha (paper: 0.01)"),
                        F_DBL, balance_loss),
    [M_ZLOSS] = FIELD(O_FLT("router_z_loss", 0.0, 0, 100,
                            "Switch: router z-loss weight (ST-MoE: 0.001); 0 = off"),
                      F_DBL, router_z_loss),
};

_Static_assert(XB_ARRAY_LEN(g_model) == N_MODEL, "an entry for every key of model:");

static const Field g_train[] = {
    [T_BATCH_SIZE] =
        FIELD(O_INT("batch_size", 32, 1, 65536, "examples per step"), F_INT, batch_size),
    [T_STEPS] = FIELD(O_INT("steps", 1000, 1, 1e9, "optimizer steps"), F_I64, steps),
    [T_LR] = FIELD(O_FLT("lr", 1e-3, 1e-10, 10, "peak learning rate"), F_DBL, lr),
    [T_SCHEDULE] = FIELD(O_ENUM("schedule", SCHED_COSINE, g_sched_names, "decay after warm-up"),
                         F_ENUM, schedule),
    [T_WARMUP] = FIELD(O_INT("warmup", 0, 0, 1e9, "linear warm-up steps"), F_I64, warmup),
    [T_WEIGHT_DECAY] =
        FIELD(O_FLT("weight_decay", 0.01, 0, 10, "decoupled weight decay"), F_DBL, weight_decay),
    [T_BETA1] = FIELD(O_FLT("beta1", 0.9, 0, 0.999999, "AdamW beta1"), F_DBL, beta1),
    [T_BETA2] = FIELD(O_FLT("beta2", 0.999, 0, 0.999999, "AdamW beta2"), F_DBL, beta2),
    [T_EPS] = FIELD(O_FLT("eps", 1e-8, 0, 1, "AdamW epsilon"), F_DBL, eps),
    [T_CLIP_NORM] =
        FIELD(O_FLT("clip_norm", 1.0, 0, 1e6, "gradient norm clip; 0 = off"), F_DBL, clip_norm),
    [T_EVAL_EVERY] =
        FIELD(O_INT("eval_every", 100, 1, 1e9, "steps between evaluations"), F_I64, eval_every),
    [T_EVAL_BATCHES] =
        FIELD(O_INT("eval_batches", 0, 0, 1e9, "validation batches; 0 = all"), F_INT, eval_batches),
    [T_LOG_EVERY] =
        FIELD(O_INT("log_every", 10, 1, 1e9, "steps between log lines"), F_I64, log_every),
    [T_CHECKPOINT] =
        FIELD(O_BOOL("checkpoint", 1, "save the best validation checkpoint"), F_BOOL, checkpoint),
    [T_CHECKPOINT_EVERY] = FIELD(O_INT("checkpoint_every", 0, 0, 1e9,
                                       "steps between resumable states (OUTPUT_DIR/RUN_ID.state, "
                                       "which run --resume continues from); 0 = none"),
                                 F_I64, checkpoint_every),
};
_Static_assert(XB_ARRAY_LEN(g_train) == N_TRAIN, "an entry for every key of train:");

/* ---- lookups ---- */

Schema cfg_schema_of(SecId s, int task, int mixer) {
    switch (s) {
    case SEC_EXP:
        return (Schema){g_exp, NULL, N_EXP};
    case SEC_MODEL:
        return (Schema){g_model, NULL, N_MODEL};
    case SEC_TRAIN:
        return (Schema){g_train, NULL, N_TRAIN};
    case SEC_TASK:
        if (task >= 0) return (Schema){NULL, task_get(task)->opts, task_get(task)->n_opts};
        break;
    case SEC_MIXER:
        if (mixer >= 0) return (Schema){NULL, mixer_get(mixer)->opts, mixer_get(mixer)->n_opts};
        break;
    default:
        break;
    }
    return (Schema){NULL, NULL, 0};
}

const OptSpec *cfg_schema_spec(const Schema *s, int i) {
    return s->fields ? &s->fields[i].o : &s->specs[i];
}

int cfg_schema_find(const Schema *s, const char *name, size_t len) {
    for (int i = 0; i < s->n; i++) {
        const char *nm = cfg_schema_spec(s, i)->name;
        if (strlen(nm) == len && strncmp(nm, name, len) == 0) return i;
    }
    return -1;
}

int cfg_level_names(SecId lv, int task, int mixer, const char **names) {
    int n = 0;
    if (lv == SEC_TOP) {
        for (int i = 0; i < N_TOP; i++) names[n++] = cfg_sections[i];
        return n;
    }
    if (lv == SEC_TASK || lv == SEC_MIXER) names[n++] = "name";
    Schema s = cfg_schema_of(lv, task, mixer);
    for (int i = 0; i < s.n && n < CFG_MAX_NAMES - 1; i++)
        names[n++] = cfg_schema_spec(&s, i)->name;
    if (lv == SEC_MODEL) names[n++] = "mixer";
    return n;
}

int cfg_registry_names(int tasks, const char **names) {
    int n = tasks ? task_count() : mixer_count();
    XB_ASSERT(n <= CFG_MAX_NAMES);
    for (int i = 0; i < n; i++) names[i] = tasks ? task_get(i)->name : mixer_get(i)->name;
    return n;
}

void cfg_join_names(char *buf, size_t cap, const char *const *names, int n) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && k < cap; i++) {
        int w = snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", names[i]);
        if (w > 0) k += (size_t)w;
    }
}

/* Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
static int edit_distance(const char *a, int la, const char *b) {
    enum { MAXL = 64 };
    int lb = (int)strlen(b);
    if (la >= MAXL || lb >= MAXL) return 1 << 20;
    int d[MAXL][MAXL];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            v = XB_MIN(v, d[i - 1][j] + 1);
            v = XB_MIN(v, d[i][j - 1] + 1);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = XB_MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    return d[la][lb];
}

int cfg_suggest(const char *given, int len, const char *const *names, int n) {
    if (len <= 0) return -1;
    int best = -1, bd = XB_MAX(2, len / 3) + 1;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(given, len, names[i]);
        if (d < bd) bd = d, best = i;
    }
    return best;
}

/* Stores a value (a double in OptValues) as its field's C type. */
static void put_int(void *p, double d) {
    const int t = (int)d;
    memcpy(p, &t, sizeof t);
}
static void put_bool(void *p, double d) {
    const int t = d != 0.0;
    memcpy(p, &t, sizeof t);
}
static void put_i64(void *p, double d) {
    const int64_t t = (int64_t)d;
    memcpy(p, &t, sizeof t);
}
static void put_u64(void *p, double d) {
    const uint64_t t = (uint64_t)d;
    memcpy(p, &t, sizeof t);
}
static void put_flt(void *p, double d) {
    const float t = (float)d;
    memcpy(p, &t, sizeof t);
}
static void put_dbl(void *p, double d) { memcpy(p, &d, sizeof d); }
static const struct {
    size_t size;
    void (*put)(void *p, double d);
} g_put[] = {[F_INT] = {sizeof(int), put_int},      [F_I64] = {sizeof(int64_t), put_i64},
             [F_U64] = {sizeof(uint64_t), put_u64}, [F_FLT] = {sizeof(float), put_flt},
             [F_DBL] = {sizeof(double), put_dbl},   [F_ENUM] = {sizeof(int), put_int},
             [F_BOOL] = {sizeof(int), put_bool},    [F_STR] = {0, NULL}};
_Static_assert(XB_ARRAY_LEN(g_put) == F_STR + 1, "a way to store every FieldKind");

static void store_field(ExperimentConfig *c, const Field *f, const OptValues *v, int i) {
    char *dst = (char *)c + f->off;
    if (f->kind == F_STR) {
        snprintf(dst, f->size, "%s", v->str[i]);
        return;
    }
    XB_ASSERT(f->size == g_put[f->kind].size);
    g_put[f->kind].put(dst, v->num[i]);
}

void cfg_schema_store(ExperimentConfig *c, SecId sec, const OptValues *v) {
    Schema s = cfg_schema_of(sec, -1, -1);
    XB_ASSERT(s.fields);
    for (int i = 0; i < s.n; i++) store_field(c, &s.fields[i], v, i);
}

static const Field *section_fields(const char *section, int *n) {
    if (!strcmp(section, "experiment")) return *n = N_EXP, g_exp;
    if (!strcmp(section, "model")) return *n = N_MODEL, g_model;
    if (!strcmp(section, "train")) return *n = N_TRAIN, g_train;
    return *n = 0, NULL;
}

int cfg_key_count(const char *section) {
    int n;
    section_fields(section, &n);
    return n;
}

const OptSpec *cfg_key(const char *section, int i) {
    int n;
    const Field *f = section_fields(section, &n);
    return i >= 0 && i < n ? &f[i].o : NULL;
}

int cfg_pooled_length(int L, int cls) { return cls ? 1 + L / 2 : (L + 1) / 2; }

/* ---- output ---- */

/* The shortest decimal that reads back as the same float (0.1f -> 0.1, not 0.100000001). */
static double float_shortest(float f) {
    char b[40];
    for (int p = 6; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if ((float)strtod(b, NULL) == f) break;
    }
    return strtod(b, NULL);
}

static const char *choice_name(const OptSpec *s, int k) {
    for (int i = 0; s->choices && s->choices[i]; i++)
        if (i == k) return s->choices[i];
    return "?";
}

static void add_fields(cJSON *o, const ExperimentConfig *c, const Field *fields, int n) {
    for (int i = 0; i < n; i++) {
        const Field *f = &fields[i];
        const char *src = (const char *)c + f->off;
        double d = 0;
        switch (f->kind) {
        case F_STR:
            cJSON_AddStringToObject(o, f->o.name, src);
            continue;
        case F_INT:
        case F_ENUM:
        case F_BOOL: {
            int t;
            memcpy(&t, src, sizeof t);
            d = t;
            break;
        }
        case F_I64: {
            int64_t t;
            memcpy(&t, src, sizeof t);
            d = (double)t;
            break;
        }
        case F_U64: {
            uint64_t t;
            memcpy(&t, src, sizeof t);
            d = (double)t;
            break;
        }
        case F_FLT: {
            float t;
            memcpy(&t, src, sizeof t);
            d = float_shortest(t);
            break;
        }
        case F_DBL:
            memcpy(&d, src, sizeof d);
            break;
        }
        if (f->kind == F_BOOL)
            cJSON_AddBoolToObject(o, f->o.name, d != 0.0);
        else if (f->kind == F_ENUM)
            cJSON_AddStringToObject(o, f->o.name, choice_name(&f->o, (int)d));
        else
            cJSON_AddNumberToObject(o, f->o.name, d);
    }
}

static void add_opts(cJSON *o, const OptSpec *specs, int n, const OptValues *v) {
    for (int i = 0; i < n && i < v->n; i++) {
        const OptSpec *s = &specs[i];
        switch (s->type) {
        case OPT_INT:
        case OPT_FLOAT:
            cJSON_AddNumberToObject(o, s->name, v->num[i]);
            break;
        case OPT_BOOL:
            cJSON_AddBoolToObject(o, s->name, v->num[i] != 0.0);
            break;
        case OPT_ENUM:
            cJSON_AddStringToObject(o, s->name, choice_name(s, (int)v->num[i]));
            break;
        case OPT_STRING:
            cJSON_AddStringToObject(o, s->name, v->str[i]);
            break;
        }
    }
}

cJSON *cfg_to_json(const ExperimentConfig *c) {
    cJSON *root = cJSON_CreateObject();
    XB_ASSERT(root);
    add_fields(cJSON_AddObjectToObject(root, "experiment"), c, g_exp, N_EXP);
    const TaskSpec *ts = task_get(c->task_index);
    cJSON *t = cJSON_AddObjectToObject(root, "task");
    cJSON_AddStringToObject(t, "name", ts->name);
    add_opts(t, ts->opts, ts->n_opts, &c->task_opts);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    add_fields(m, c, g_model, N_MODEL);
    const MixerSpec *ms = mixer_get(c->mixer_index);
    cJSON *mx = cJSON_AddObjectToObject(m, "mixer");
    cJSON_AddStringToObject(mx, "name", ms->name);
    add_opts(mx, ms->opts, ms->n_opts, &c->mixer_opts);
    add_fields(cJSON_AddObjectToObject(root, "train"), c, g_train, N_TRAIN);
    return root;
}

uint64_t cfg_hash(const ExperimentConfig *c) {
    cJSON *j = cfg_to_json(c);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "experiment");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "name");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "output_dir");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "threads");
    /* how often the state is saved changes no result: a run may resume with another */
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "train"),
                                            "checkpoint_every");
    char *s = cJSON_PrintUnformatted(j);
    XB_ASSERT(s);
    uint64_t h = xb_fnv1a64(XB_FNV_OFFSET, s, strlen(s));
    cJSON_free(s);
    cJSON_Delete(j);
    return h;
}

const char *cfg_pool_name(PoolKind k) { return (unsigned)k <= POOL_NONE ? g_pool_names[k] : "?"; }
const char *cfg_pos_name(PosKind k) { return (unsigned)k <= POS_NONE ? g_pos_names[k] : "?"; }
const char *cfg_sched_name(SchedKind k) {
    return (unsigned)k <= SCHED_LINEAR ? g_sched_names[k] : "?";
}

const char *cfg_mixer_name(const ExperimentConfig *c) { return mixer_get(c->mixer_index)->name; }
const char *cfg_mixer_classes(const ExperimentConfig *c) {
    return mixer_get(c->mixer_index)->classes;
}
