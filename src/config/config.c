/* YAML experiment files → validated ExperimentConfig runs.
 *
 * The file is read with libyaml's document API and flattened into assignments "section.key =
 * scalar" that remember where they came from (file line and column, a sweep item, or a --set
 * override). Each run of the sweep is then resolved from those assignments: file < sweep member <
 * --set, the later one winning. Every key and value is checked against one table per section
 * (OptSpec, the same schema type the mechanisms and tasks use for their options). */
#include "config/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/hash.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

/* ---- the schema ---- */

static const char *const POOLS[] = {"cls", "mean", NULL};
static const char *const POSITIONS[] = {"sinusoidal", "learned", "none", NULL};
static const char *const SCHEDULES[] = {"constant", "cosine", "rsqrt", "linear", NULL};

static const OptSpec EXPERIMENT[] = {
    {.name = "name", .type = OPT_STRING, .def_str = "",
     .help = "run name: report file stem (default: the config file's stem)"},
    {.name = "seed", .type = OPT_INT, .def = 1, .min = 0, .max = 9007199254740991.0,
     .help = "seed of every random stream (data, order, init, dropout, mechanisms)"},
    {.name = "threads", .type = OPT_INT, .def = 0, .min = 0, .max = 1024,
     .help = "threads for OpenMP and OpenBLAS (0 = all cores)"},
    {.name = "output_dir", .type = OPT_STRING, .def_str = "",
     .help = "directory of the reports and checkpoints (default: results/NAME)"},
};

static const OptSpec MODEL[] = {
    {.name = "layers", .type = OPT_INT, .def = 2, .min = 1, .max = 64, .help = "encoder blocks"},
    {.name = "d_model", .type = OPT_INT, .def = 64, .min = 1, .max = 16384, .help = "model width"},
    {.name = "heads", .type = OPT_INT, .def = 2, .min = 1, .max = 1024, .help = "attention heads"},
    {.name = "d_ff", .type = OPT_INT, .def = 128, .min = 1, .max = 262144, .help = "FFN width"},
    {.name = "dropout", .type = OPT_FLOAT, .def = 0.1, .min = 0, .max = 0.95,
     .help = "dropout rate (embeddings, mixer output, FFN)"},
    {.name = "max_len", .type = OPT_INT, .def = 512, .min = 2, .max = 1048576,
     .help = "tokens per example, including the CLS token"},
    {.name = "pooling", .type = OPT_ENUM, .def = 0, .choices = POOLS,
     .help = "sequence summary for the classifier"},
    {.name = "positions", .type = OPT_ENUM, .def = 0, .choices = POSITIONS,
     .help = "position embeddings"},
    {.name = "head_hidden", .type = OPT_INT, .def = 0, .min = 0, .max = 262144,
     .help = "hidden width of the classifier MLP (0 = d_ff)"},
};

static const OptSpec TRAIN[] = {
    {.name = "batch_size", .type = OPT_INT, .def = 32, .min = 1, .max = 65536, .help = "examples per step"},
    {.name = "steps", .type = OPT_INT, .def = 1000, .min = 1, .max = 1e9, .help = "training steps"},
    {.name = "lr", .type = OPT_FLOAT, .def = 1e-3, .min = 1e-10, .max = 10, .help = "peak learning rate"},
    {.name = "schedule", .type = OPT_ENUM, .def = 1, .choices = SCHEDULES,
     .help = "decay after the warm-up"},
    {.name = "warmup", .type = OPT_INT, .def = 0, .min = 0, .max = 1e9, .help = "linear warm-up steps"},
    {.name = "weight_decay", .type = OPT_FLOAT, .def = 0.01, .min = 0, .max = 10,
     .help = "AdamW decoupled weight decay (matrices only)"},
    {.name = "beta1", .type = OPT_FLOAT, .def = 0.9, .min = 0, .max = 0.999999, .help = "AdamW beta1"},
    {.name = "beta2", .type = OPT_FLOAT, .def = 0.999, .min = 0, .max = 0.999999, .help = "AdamW beta2"},
    {.name = "eps", .type = OPT_FLOAT, .def = 1e-8, .min = 0, .max = 1, .help = "AdamW epsilon"},
    {.name = "clip_norm", .type = OPT_FLOAT, .def = 1.0, .min = 0, .max = 1e6,
     .help = "global gradient-norm clipping (0 = off)"},
    {.name = "eval_every", .type = OPT_INT, .def = 100, .min = 1, .max = 1e9,
     .help = "validation interval in steps (and after the last step)"},
    {.name = "eval_batches", .type = OPT_INT, .def = 0, .min = 0, .max = 1e9,
     .help = "validation batches per evaluation (0 = the whole split)"},
    {.name = "log_every", .type = OPT_INT, .def = 10, .min = 1, .max = 1e9, .help = "progress interval"},
    {.name = "checkpoint", .type = OPT_BOOL, .def = 1,
     .help = "save the best validation checkpoint (safetensors)"},
};

enum { SEC_EXPERIMENT, SEC_TASK, SEC_MODEL, SEC_TRAIN, SEC_SWEEP, N_SECTIONS };
static const char *const SECTIONS[N_SECTIONS] = {"experiment", "task", "model", "train", "sweep"};

typedef struct Table {
    const OptSpec *specs;
    int n;
} Table;

static const Table FIXED[N_SECTIONS] = {
    [SEC_EXPERIMENT] = {EXPERIMENT, (int)XB_ARRAY_LEN(EXPERIMENT)},
    [SEC_MODEL] = {MODEL, (int)XB_ARRAY_LEN(MODEL)},
    [SEC_TRAIN] = {TRAIN, (int)XB_ARRAY_LEN(TRAIN)},
};

/* ---- flattened input ---- */

enum { VAL_PLAIN, VAL_QUOTED, VAL_MAPPING, VAL_SEQUENCE };

typedef struct Loc {
    const char *file; /* the config path, or "--set" */
    int line, col;
} Loc;

typedef struct Assign {
    char key[256];             /* dotted: model.layers, task.num_train, model.mixer.causal */
    char text[XB_OPT_STRLEN];  /* scalar text */
    int kind;                  /* VAL_* */
    Loc key_loc, val_loc;
} Assign;

typedef struct AssignList {
    Assign *a;
    int n, cap;
} AssignList;

typedef struct SweepKey {
    char key[256];
    Loc key_loc;
    AssignList items; /* one per value, key = the swept key */
} SweepKey;

typedef struct Input {
    const char *path;
    AssignList file, sets;
    SweepKey *sweep;
    int n_sweep;
    Loc task_loc, model_loc, mixer_loc; /* where the task/model sections and model.mixer are */
    int have_task, have_mixer;
} Input;

static Assign *list_add(AssignList *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->a = realloc(l->a, (size_t)l->cap * sizeof *l->a);
        XB_ASSERT(l->a);
    }
    Assign *a = &l->a[l->n++];
    memset(a, 0, sizeof *a);
    return a;
}

static void input_free(Input *in) {
    free(in->file.a);
    free(in->sets.a);
    for (int i = 0; i < in->n_sweep; i++) free(in->sweep[i].items.a);
    free(in->sweep);
    memset(in, 0, sizeof *in);
}

static int fail(XbError *err, Loc l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(XbError *err, Loc l, const char *key, const char *fmt, ...) {
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xb_error_set(err, l.file, l.line, l.col, key, "%s", msg);
}

/* ---- suggestions ---- */

static int edit_distance(const char *a, const char *b) {
    const size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1; /* transposition */
            d[i][j] = best;
        }
    return d[na][nb];
}

/* " (did you mean PREFIXname?)" for the nearest of names[0..n), or " (valid: a, b, ...)". */
static void suggest(char *buf, size_t cap, const char *got, const char *prefix,
                    const char *const *names, int n) {
    int best = -1, bd = 1 << 30;
    for (int i = 0; i < n; i++) {
        const int d = edit_distance(got, names[i]);
        if (d < bd) bd = d, best = i;
    }
    const int len = (int)strlen(got), limit = len / 3 > 2 ? len / 3 : 2;
    if (best >= 0 && bd <= limit) {
        snprintf(buf, cap, "did you mean %s%s?", prefix, names[best]);
        return;
    }
    size_t k = (size_t)snprintf(buf, cap, "valid: ");
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", names[i]);
}

/* The names a level accepts: a table's option names plus `extra` (e.g. "name", "mixer"). */
static int level_names(const char **out, const char *extra_first, const Table *t,
                       const char *extra_last) {
    int n = 0;
    if (extra_first) out[n++] = extra_first;
    for (int i = 0; t && i < t->n; i++) out[n++] = t->specs[i].name;
    if (extra_last) out[n++] = extra_last;
    return n;
}

static int unknown_key(XbError *err, Loc l, const char *full_key, const char *prefix,
                       const char *leaf, const char **names, int n) {
    char s[900];
    suggest(s, sizeof s, leaf, prefix, names, n);
    return fail(err, l, full_key, "unknown key (%s)", s);
}

/* ---- reading the YAML document ---- */

static Loc mark_loc(const Input *in, yaml_mark_t m) {
    return (Loc){in->path, (int)m.line + 1, (int)m.column + 1};
}

static const char *kind_name(yaml_node_type_t t) {
    return t == YAML_MAPPING_NODE ? "mapping" : t == YAML_SEQUENCE_NODE ? "sequence" : "scalar";
}

static int scalar_text(const yaml_node_t *n, char *buf, size_t cap) {
    XB_ASSERT(n->type == YAML_SCALAR_NODE);
    snprintf(buf, cap, "%.*s", (int)n->data.scalar.length, (const char *)n->data.scalar.value);
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? VAL_PLAIN : VAL_QUOTED;
}

static void set_value(Assign *a, const Input *in, const yaml_node_t *v) {
    a->val_loc = mark_loc(in, v->start_mark);
    if (v->type == YAML_SCALAR_NODE)
        a->kind = scalar_text(v, a->text, sizeof a->text);
    else
        a->kind = v->type == YAML_MAPPING_NODE ? VAL_MAPPING : VAL_SEQUENCE;
}

/* Checks that the key of pair p is a scalar not seen before in the same mapping; copies it. */
static int pair_key(const Input *in, yaml_document_t *doc, const yaml_node_t *map, int p,
                    const char *prefix, char *key, size_t cap, XbError *err) {
    const yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    const yaml_node_t *k = yaml_document_get_node(doc, pairs[p].key);
    char full[512];
    if (k->type != YAML_SCALAR_NODE)
        return fail(err, mark_loc(in, k->start_mark), prefix[0] ? prefix : NULL,
                    "expected a key, got a %s", kind_name(k->type));
    scalar_text(k, key, cap);
    snprintf(full, sizeof full, "%s%s", prefix, key);
    for (int q = 0; q < p; q++) {
        const yaml_node_t *o = yaml_document_get_node(doc, pairs[q].key);
        if (o->type == YAML_SCALAR_NODE && o->data.scalar.length == strlen(key) &&
            memcmp(o->data.scalar.value, key, strlen(key)) == 0)
            return fail(err, mark_loc(in, k->start_mark), full,
                        "duplicate key (first given at line %d)", (int)o->start_mark.line + 1);
    }
    return 0;
}

static int want_mapping(const Input *in, const yaml_node_t *v, const char *key, XbError *err) {
    if (v->type == YAML_MAPPING_NODE) return 0;
    return fail(err, mark_loc(in, v->start_mark), key, "expected a mapping, got a %s",
                kind_name(v->type));
}

/* Section keys of experiment/model/train are checked here; task options and mixer options once
 * the task and mechanism are known (they depend on the name). */
static int read_section(Input *in, yaml_document_t *doc, int sec, const yaml_node_t *map,
                        XbError *err) {
    const char *sname = SECTIONS[sec];
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", sname);
    const int np = (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    for (int p = 0; p < np; p++) {
        char key[128];
        if (pair_key(in, doc, map, p, prefix, key, sizeof key, err)) return -1;
        const yaml_node_pair_t *pr = &map->data.mapping.pairs.start[p];
        const yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        char full[200];
        snprintf(full, sizeof full, "%s%s", prefix, key);
        if (sec == SEC_MODEL && strcmp(key, "mixer") == 0) {
            in->have_mixer = 1;
            in->mixer_loc = mark_loc(in, k->start_mark);
            if (v->type == YAML_SCALAR_NODE) { /* mixer: full */
                Assign *a = list_add(&in->file);
                snprintf(a->key, sizeof a->key, "model.mixer.name");
                a->key_loc = mark_loc(in, k->start_mark);
                set_value(a, in, v);
                continue;
            }
            if (want_mapping(in, v, "model.mixer", err)) return -1;
            const int nm = (int)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
            for (int q = 0; q < nm; q++) {
                char mk[128];
                if (pair_key(in, doc, v, q, "model.mixer.", mk, sizeof mk, err)) return -1;
                const yaml_node_pair_t *mp = &v->data.mapping.pairs.start[q];
                Assign *a = list_add(&in->file);
                snprintf(a->key, sizeof a->key, "model.mixer.%s", mk);
                a->key_loc = mark_loc(in, yaml_document_get_node(doc, mp->key)->start_mark);
                set_value(a, in, yaml_document_get_node(doc, mp->value));
            }
            continue;
        }
        if (sec != SEC_TASK && opt_index(FIXED[sec].specs, FIXED[sec].n, key) < 0) {
            const char *names[XB_MAX_OPTS + 2];
            const int n = level_names(names, NULL, &FIXED[sec], sec == SEC_MODEL ? "mixer" : NULL);
            return unknown_key(err, mark_loc(in, k->start_mark), full, prefix, key, names, n);
        }
        Assign *a = list_add(&in->file);
        snprintf(a->key, sizeof a->key, "%s", full);
        a->key_loc = mark_loc(in, k->start_mark);
        set_value(a, in, v);
    }
    return 0;
}

/* Splits a dotted key into section and the rest; checks what can be checked without knowing the
 * task or mechanism. *sec receives the section. Keys of the sweep are shown as sweep.KEY. */
static int check_path(const char *key, const char *shown_prefix, Loc l, int *sec, XbError *err) {
    char full[400];
    snprintf(full, sizeof full, "%s%s", shown_prefix, key);
    const char *dot = strchr(key, '.');
    const size_t slen = dot ? (size_t)(dot - key) : strlen(key);
    char sname[160];
    snprintf(sname, sizeof sname, "%.*s", (int)slen, key);
    *sec = -1;
    for (int s = 0; s < SEC_SWEEP; s++)
        if (strcmp(sname, SECTIONS[s]) == 0) *sec = s;
    if (*sec < 0 || !dot || !dot[1]) {
        const char *names[4] = {"experiment", "task", "model", "train"};
        if (*sec >= 0) /* a section without a key */
            return fail(err, l, full, "expected SECTION.KEY (e.g. model.layers)");
        return unknown_key(err, l, full, shown_prefix, sname, names, 4);
    }
    const char *rest = dot + 1;
    if (*sec == SEC_TASK) return 0;
    if (*sec == SEC_MODEL && strncmp(rest, "mixer", 5) == 0 && (rest[5] == '.' || !rest[5])) return 0;
    if (opt_index(FIXED[*sec].specs, FIXED[*sec].n, rest) < 0) {
        const char *names[XB_MAX_OPTS + 2];
        const int n = level_names(names, NULL, &FIXED[*sec], *sec == SEC_MODEL ? "mixer" : NULL);
        char prefix[200];
        snprintf(prefix, sizeof prefix, "%s%s.", shown_prefix, sname);
        return unknown_key(err, l, full, prefix, rest, names, n);
    }
    return 0;
}

static int read_sweep(Input *in, yaml_document_t *doc, const yaml_node_t *map, XbError *err) {
    const int np = (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    in->sweep = calloc((size_t)(np ? np : 1), sizeof *in->sweep);
    XB_ASSERT(in->sweep);
    for (int p = 0; p < np; p++) {
        char key[128];
        if (pair_key(in, doc, map, p, "sweep.", key, sizeof key, err)) return -1;
        const yaml_node_pair_t *pr = &map->data.mapping.pairs.start[p];
        const yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        const Loc kl = mark_loc(in, k->start_mark);
        char full[320];
        snprintf(full, sizeof full, "sweep.%s", key);
        int sec;
        if (check_path(key, "sweep.", kl, &sec, err)) return -1;
        if (!strcmp(key, "experiment.name") || !strcmp(key, "experiment.output_dir"))
            return fail(err, kl, full, "cannot be swept (run names are made from the swept values)");
        if (!strcmp(key, "model.mixer")) snprintf(key, sizeof key, "model.mixer.name");
        for (int q = 0; q < in->n_sweep; q++)
            if (!strcmp(in->sweep[q].key, key))
                return fail(err, kl, full, "duplicate key (first given at line %d)",
                            in->sweep[q].key_loc.line);
        if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
            return fail(err, mark_loc(in, v->start_mark), full, "expected a non-empty list of values");
        SweepKey *sk = &in->sweep[in->n_sweep++];
        snprintf(sk->key, sizeof sk->key, "%s", key);
        sk->key_loc = kl;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            Assign *a = list_add(&sk->items);
            snprintf(a->key, sizeof a->key, "%s", key);
            a->key_loc = kl;
            set_value(a, in, yaml_document_get_node(doc, *it));
            a->key_loc = a->val_loc; /* errors about one value point at the value */
        }
    }
    return 0;
}

static const char *TOP_EXPECTED =
    "expected a mapping with sections experiment, task, model, train, sweep";

static int read_document(Input *in, const char *text, size_t len, XbError *err) {
    yaml_parser_t parser;
    yaml_document_t doc;
    XB_ASSERT(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const Loc l = {in->path, (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1};
        if (parser.context)
            fail(err, l, NULL, "YAML syntax error: %s (%s)", parser.problem, parser.context);
        else
            fail(err, l, NULL, "YAML syntax error: %s", parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return -1;
    }
    int rc = 0;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = fail(err, (Loc){in->path, 1, 1}, NULL, "%s", TOP_EXPECTED);
        goto done;
    }
    const int np = (int)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
    for (int p = 0; p < np && rc == 0; p++) {
        char key[256];
        if ((rc = pair_key(in, &doc, root, p, "", key, sizeof key, err))) break;
        const yaml_node_pair_t *pr = &root->data.mapping.pairs.start[p];
        const yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        int sec = -1;
        for (int s = 0; s < N_SECTIONS; s++)
            if (!strcmp(key, SECTIONS[s])) sec = s;
        if (sec < 0) {
            rc = unknown_key(err, mark_loc(in, k->start_mark), key, "", key, (const char **)SECTIONS,
                             N_SECTIONS);
            break;
        }
        if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0 &&
            v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            continue; /* an empty section ("train:" with nothing under it) */
        if ((rc = want_mapping(in, v, key, err))) break;
        if (sec == SEC_TASK) in->have_task = 1, in->task_loc = mark_loc(in, k->start_mark);
        if (sec == SEC_MODEL) in->model_loc = mark_loc(in, k->start_mark);
        rc = sec == SEC_SWEEP ? read_sweep(in, &doc, v, err) : read_section(in, &doc, sec, v, err);
    }
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* "--set KEY=VALUE" overrides: one assignment each, located at --set:N:COL. */
static int read_overrides(Input *in, const char *const *sets, int n, XbError *err) {
    for (int i = 0; i < n; i++) {
        const char *s = sets[i];
        const char *eq = strchr(s, '=');
        const Loc l = {"--set", i + 1, 1};
        if (!eq || eq == s)
            return fail(err, l, NULL, "expected KEY=VALUE, got \"%s\"", s);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - s), s);
        int sec;
        if (check_path(key, "", l, &sec, err)) return -1;
        if (!strcmp(key, "model.mixer")) snprintf(key, sizeof key, "model.mixer.name");
        Assign *a = list_add(&in->sets);
        snprintf(a->key, sizeof a->key, "%s", key);
        snprintf(a->text, sizeof a->text, "%s", eq + 1);
        a->kind = VAL_PLAIN;
        a->key_loc = l;
        a->val_loc = (Loc){"--set", i + 1, (int)(eq - s) + 2};
    }
    return 0;
}

/* ---- values ---- */

static int is_int_text(const char *t) {
    if (*t == '+' || *t == '-') t++;
    if (!*t) return 0;
    for (; *t; t++)
        if (*t < '0' || *t > '9') return 0;
    return 1;
}

/* Parses a's value for spec s into v[i]. */
static int parse_value(const Assign *a, const OptSpec *s, OptValues *v, int i, XbError *err) {
    char valid[600];
    opt_describe_valid(s, valid, sizeof valid);
    if (a->kind == VAL_MAPPING || a->kind == VAL_SEQUENCE)
        return fail(err, a->val_loc, a->key, "expected %s, got a %s", valid,
                    a->kind == VAL_MAPPING ? "mapping" : "sequence");
    const char *t = a->text;
    const int plain = a->kind == VAL_PLAIN;
    switch (s->type) {
    case OPT_INT:
    case OPT_FLOAT: {
        char *end = NULL;
        errno = 0;
        double x = 0;
        int ok = plain && *t;
        if (ok && s->type == OPT_INT) {
            ok = is_int_text(t);
            if (ok) x = strtod(t, &end);
        } else if (ok) {
            x = strtod(t, &end);
            ok = *end == '\0' && isfinite(x) && !strchr(t, 'x') && !strchr(t, 'X');
        }
        if (!ok) return fail(err, a->val_loc, a->key, "expected %s, got \"%s\"", valid, t);
        if (!(x >= s->min && x <= s->max))
            return fail(err, a->val_loc, a->key, "%s is out of range (%s)", t, valid);
        v->num[i] = x;
        break;
    }
    case OPT_BOOL:
        if (plain && !strcmp(t, "true"))
            v->num[i] = 1;
        else if (plain && !strcmp(t, "false"))
            v->num[i] = 0;
        else
            return fail(err, a->val_loc, a->key, "expected %s, got \"%s\"", valid, t);
        break;
    case OPT_ENUM: {
        int k = -1;
        for (int c = 0; s->choices[c]; c++)
            if (!strcmp(t, s->choices[c])) k = c;
        if (k < 0) return fail(err, a->val_loc, a->key, "expected %s, got \"%s\"", valid, t);
        v->num[i] = k;
        break;
    }
    case OPT_STRING:
        snprintf(v->str[i], XB_OPT_STRLEN, "%s", t);
        break;
    }
    v->set[i] = 1;
    return 0;
}

/* ---- resolving one run ---- */

typedef struct Resolved {
    OptValues exp, model, train, task, mixer;
    const Assign *where[N_SECTIONS][XB_MAX_OPTS]; /* the assignment that set each value */
    const Assign *mixer_name;
} Resolved;

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int valid_name(const char *s) {
    const size_t n = strlen(s);
    if (n < 1 || n > 100) return 0;
    for (const char *p = s; *p; p++)
        if (!name_char(*p)) return 0;
    return 1;
}

/* The file's stem: "configs/lra/listops.yaml" → "listops". */
static void file_stem(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    const size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    snprintf(out, cap, "%.*s", (int)n, base);
}

static const Assign *last_with_key(const Assign *const *eff, int n, const char *key) {
    const Assign *found = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(eff[i]->key, key)) found = eff[i];
    return found;
}

static int resolve(const Input *in, const Assign *const *eff, int n, ExperimentConfig *c,
                   XbError *err) {
    Resolved r;
    memset(&r, 0, sizeof r);
    /* the task, which decides what task.* may hold */
    const Assign *tn = last_with_key(eff, n, "task.name");
    char tnames[1024];
    {
        size_t k = 0;
        tnames[0] = '\0';
        for (int i = 0; i < task_count() && k < sizeof tnames; i++)
            k += (size_t)snprintf(tnames + k, sizeof tnames - k, "%s%s", i ? ", " : "", task_get(i)->name);
    }
    if (!tn)
        return fail(err, in->have_task ? in->task_loc : (Loc){in->path, 1, 1}, "task.name",
                    "missing (one of: %s)", tnames);
    c->task_index = tn->kind <= VAL_QUOTED ? task_find(tn->text) : -1;
    if (c->task_index < 0) {
        const char *names[64];
        const int nt = task_count() < 64 ? task_count() : 64;
        for (int i = 0; i < nt; i++) names[i] = task_get(i)->name;
        char s[900];
        suggest(s, sizeof s, tn->text, "", names, nt);
        return fail(err, tn->val_loc, "task.name", "unknown task \"%s\" (%s)", tn->text, s);
    }
    const TaskSpec *task = task_get(c->task_index);
    /* the mechanism */
    r.mixer_name = last_with_key(eff, n, "model.mixer.name");
    c->mixer_index = r.mixer_name ? (r.mixer_name->kind <= VAL_QUOTED ? mixer_find(r.mixer_name->text) : -1)
                                  : mixer_find("full");
    if (c->mixer_index < 0) {
        const char *names[64];
        const int nm = mixer_count() < 64 ? mixer_count() : 64;
        for (int i = 0; i < nm; i++) names[i] = mixer_get(i)->name;
        char s[900];
        suggest(s, sizeof s, r.mixer_name->text, "", names, nm);
        return fail(err, r.mixer_name->val_loc, "model.mixer.name", "unknown mechanism \"%s\" (%s)",
                    r.mixer_name->text, s);
    }
    const MixerSpec *mx = mixer_get(c->mixer_index);
    const Table task_t = {task->opts, task->n_opts}, mixer_t = {mx->opts, mx->n_opts};

    opt_defaults(&r.exp, EXPERIMENT, FIXED[SEC_EXPERIMENT].n);
    opt_defaults(&r.model, MODEL, FIXED[SEC_MODEL].n);
    opt_defaults(&r.train, TRAIN, FIXED[SEC_TRAIN].n);
    opt_defaults(&r.task, task->opts, task->n_opts);
    opt_defaults(&r.mixer, mx->opts, mx->n_opts);

    for (int i = 0; i < n; i++) {
        const Assign *a = eff[i];
        const Table *t;
        OptValues *v;
        const char *leaf, *extra = NULL;
        int sec;
        char prefix[64];
        if (!strncmp(a->key, "model.mixer.", 12)) {
            leaf = a->key + 12, t = &mixer_t, v = &r.mixer, sec = -1, extra = "name";
            snprintf(prefix, sizeof prefix, "model.mixer.");
        } else if (!strncmp(a->key, "task.", 5)) {
            leaf = a->key + 5, t = &task_t, v = &r.task, sec = SEC_TASK, extra = "name";
            snprintf(prefix, sizeof prefix, "task.");
        } else {
            const char *dot = strchr(a->key, '.');
            XB_ASSERT(dot);
            leaf = dot + 1;
            sec = !strncmp(a->key, "model.", 6) ? SEC_MODEL
                  : !strncmp(a->key, "train.", 6) ? SEC_TRAIN : SEC_EXPERIMENT;
            t = &FIXED[sec], v = sec == SEC_MODEL ? &r.model : sec == SEC_TRAIN ? &r.train : &r.exp;
            snprintf(prefix, sizeof prefix, "%s.", SECTIONS[sec]);
        }
        if (extra && !strcmp(leaf, "name")) continue; /* task.name, model.mixer.name: done above */
        const int idx = opt_index(t->specs, t->n, leaf);
        if (idx < 0) {
            const char *names[XB_MAX_OPTS + 2];
            const int nn = level_names(names, extra, t, NULL);
            return unknown_key(err, a->key_loc, a->key, prefix, leaf, names, nn);
        }
        if (parse_value(a, &t->specs[idx], v, idx, err)) return -1;
        if (sec >= 0 && sec != SEC_TASK) r.where[sec][idx] = a;
    }

    /* experiment */
    const Assign *name_a = r.where[SEC_EXPERIMENT][0];
    if (r.exp.set[0]) {
        if (!valid_name(r.exp.str[0]))
            return fail(err, name_a->val_loc, "experiment.name",
                        "\"%s\" is not a valid name (letters, digits, '.', '_' and '-', 1 to 100 "
                        "characters)", r.exp.str[0]);
        snprintf(c->name, sizeof c->name, "%.100s", r.exp.str[0]);
    } else {
        char stem[101];
        file_stem(in->path, stem, sizeof stem);
        for (char *p = stem; *p; p++)
            if (!name_char(*p)) *p = '_';
        snprintf(c->name, sizeof c->name, "%.100s", stem[0] ? stem : "run");
    }
    c->seed = (uint64_t)r.exp.num[1];
    c->threads = (int)r.exp.num[2];
    if (r.exp.set[3] && r.exp.str[3][0])
        snprintf(c->output_dir, sizeof c->output_dir, "%s", r.exp.str[3]);
    else
        snprintf(c->output_dir, sizeof c->output_dir, "results/%s", c->name);
    /* model */
    c->layers = (int)r.model.num[0];
    c->d_model = (int)r.model.num[1];
    c->heads = (int)r.model.num[2];
    c->d_ff = (int)r.model.num[3];
    c->dropout = (float)r.model.num[4];
    c->max_len = (int)r.model.num[5];
    c->pooling = (PoolKind)r.model.num[6];
    c->positions = (PosKind)r.model.num[7];
    c->head_hidden = (int)r.model.num[8];
    /* train */
    c->batch_size = (int)r.train.num[0];
    c->steps = (int64_t)r.train.num[1];
    c->lr = r.train.num[2];
    c->schedule = (SchedKind)r.train.num[3];
    c->warmup = (int64_t)r.train.num[4];
    c->weight_decay = r.train.num[5];
    c->beta1 = r.train.num[6];
    c->beta2 = r.train.num[7];
    c->eps = r.train.num[8];
    c->clip_norm = r.train.num[9];
    c->eval_every = (int64_t)r.train.num[10];
    c->eval_batches = (int)r.train.num[11];
    c->log_every = (int64_t)r.train.num[12];
    c->checkpoint = r.train.num[13] != 0;
    c->task_opts = r.task;
    c->mixer_opts = r.mixer;

    /* what the schema cannot say on its own */
    if (c->d_model % c->heads != 0) {
        const Assign *at = r.where[SEC_MODEL][2] ? r.where[SEC_MODEL][2] : r.where[SEC_MODEL][1];
        char div[128];
        size_t k = 0;
        int shown = 0;
        for (int d = 1; d <= c->d_model && d <= 16 && shown < 8; d++)
            if (c->d_model % d == 0)
                k += (size_t)snprintf(div + k, sizeof div - k, "%s%d", shown++ ? ", " : "", d);
        return fail(err, at->val_loc, "model.heads",
                    "%d does not divide model.d_model = %d (valid: a divisor of %d, e.g. %s)",
                    c->heads, c->d_model, c->d_model, div);
    }
    if (c->warmup > c->steps) {
        const Assign *at = r.where[SEC_TRAIN][4];
        return fail(err, at->val_loc, "train.warmup",
                    "%lld is greater than train.steps = %lld (valid: 0 to %lld)",
                    (long long)c->warmup, (long long)c->steps, (long long)c->steps);
    }
    if (mx->ops->check) {
        XbError me;
        xb_error_clear(&me);
        if (mx->ops->check(&c->mixer_opts, c->d_model, c->heads, c->max_len, &me)) {
            Loc l = {in->path, 1, 1};
            if (r.mixer_name && r.mixer_name->key_loc.file != in->path)
                l = r.mixer_name->key_loc; /* chosen by --set */
            else if (in->have_mixer)
                l = in->mixer_loc;
            else if (in->model_loc.file)
                l = in->model_loc;
            return fail(err, l, me.key[0] ? me.key : "model.mixer", "%s", me.msg);
        }
    }
    return 0;
}

/* ---- runs ---- */

/* Run ids are file names: anything but letters, digits, '.' and '-' becomes '_'. */
static void sanitize(char *dst, size_t cap, const char *src) {
    size_t k = 0;
    for (const char *p = src; *p && k + 1 < cap; p++) dst[k++] = name_char(*p) && *p != '_' ? *p : '_';
    dst[k] = '\0';
}

#define XB_MAX_RUNS 10000

static int load_input(Input *in, const char *yaml, size_t len, const char *const *sets, int nsets,
                      ConfigSet *out, XbError *err) {
    memset(out, 0, sizeof *out);
    if (read_document(in, yaml, len, err) || read_overrides(in, sets, nsets, err)) return -1;
    long long runs = 1;
    for (int s = 0; s < in->n_sweep; s++) {
        runs *= in->sweep[s].items.n;
        if (runs > XB_MAX_RUNS)
            return fail(err, in->sweep[s].key_loc, "sweep",
                        "expands into more than %d runs (valid: at most %d)", XB_MAX_RUNS, XB_MAX_RUNS);
    }
    out->runs = calloc((size_t)runs, sizeof *out->runs);
    const int max_eff = in->file.n + in->n_sweep + in->sets.n;
    const Assign **eff = malloc((size_t)(max_eff ? max_eff : 1) * sizeof *eff);
    XB_ASSERT(out->runs && eff);
    int rc = 0;
    for (long long r = 0; r < runs && rc == 0; r++) {
        /* sweep member r: the last key varies fastest */
        int pick[64] = {0};
        long long rem = r;
        for (int s = in->n_sweep - 1; s >= 0; s--) {
            pick[s] = (int)(rem % in->sweep[s].items.n);
            rem /= in->sweep[s].items.n;
        }
        int n = 0;
        for (int i = 0; i < in->file.n; i++) eff[n++] = &in->file.a[i];
        for (int s = 0; s < in->n_sweep; s++) eff[n++] = &in->sweep[s].items.a[pick[s]];
        for (int i = 0; i < in->sets.n; i++) eff[n++] = &in->sets.a[i];
        ExperimentConfig *c = &out->runs[r];
        snprintf(c->source, sizeof c->source, "%s", in->path);
        if ((rc = resolve(in, eff, n, c, err))) break;
        c->sweep_index = (int)r;
        c->sweep_size = (int)runs;
        size_t k = (size_t)snprintf(c->run_id, sizeof c->run_id, "%s", c->name);
        for (int s = 0; s < in->n_sweep && k < sizeof c->run_id; s++) {
            const char *leaf = strrchr(in->sweep[s].key, '.');
            char val[128];
            sanitize(val, sizeof val, in->sweep[s].items.a[pick[s]].text);
            k += (size_t)snprintf(c->run_id + k, sizeof c->run_id - k, "__%s-%s", leaf + 1, val);
        }
        out->n++;
    }
    free(eff);
    if (rc) cfg_set_free(out);
    return rc;
}

int cfg_load_string(const char *yaml, const char *path, const char *const *overrides,
                    int n_overrides, ConfigSet *out, XbError *err) {
    Input in;
    memset(&in, 0, sizeof in);
    in.path = path;
    const int rc = load_input(&in, yaml, strlen(yaml), overrides, n_overrides, out, err);
    input_free(&in);
    return rc;
}

int cfg_load(const char *path, const char *const *overrides, int n_overrides, ConfigSet *out,
             XbError *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return xb_error_set(err, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got + 1 > cap) {
            cap = (len + got + 1) * 2;
            buf = realloc(buf, cap);
            XB_ASSERT(buf);
        }
        memcpy(buf + len, chunk, got);
        len += got;
    }
    const int bad = ferror(f);
    const int e = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return xb_error_set(err, path, 0, 0, NULL, "cannot read: %s", strerror(e));
    }
    if (!buf) buf = calloc(1, 1);
    XB_ASSERT(buf);
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        free(buf);
        return xb_error_set(err, path, 0, 0, NULL, "cannot read: not a text file (a NUL byte)");
    }
    Input in;
    memset(&in, 0, sizeof in);
    in.path = path;
    const int rc = load_input(&in, buf, len, overrides, n_overrides, out, err);
    input_free(&in);
    free(buf);
    return rc;
}

void cfg_set_free(ConfigSet *s) {
    free(s->runs);
    memset(s, 0, sizeof *s);
}

/* ---- the resolved config as JSON ---- */

static void add_opts(cJSON *o, const OptSpec *specs, int n, const OptValues *v) {
    for (int i = 0; i < n; i++) {
        const OptSpec *s = &specs[i];
        switch (s->type) {
        case OPT_INT:
        case OPT_FLOAT:
            cJSON_AddNumberToObject(o, s->name, v->num[i]);
            break;
        case OPT_BOOL:
            cJSON_AddBoolToObject(o, s->name, v->num[i] != 0);
            break;
        case OPT_ENUM:
            cJSON_AddStringToObject(o, s->name, s->choices[(int)v->num[i]]);
            break;
        case OPT_STRING:
            cJSON_AddStringToObject(o, s->name, v->str[i]);
            break;
        }
    }
}

cJSON *cfg_to_json(const ExperimentConfig *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "experiment");
    cJSON_AddStringToObject(e, "name", c->name);
    cJSON_AddNumberToObject(e, "seed", (double)c->seed);
    cJSON_AddNumberToObject(e, "threads", c->threads);
    cJSON_AddStringToObject(e, "output_dir", c->output_dir);
    const TaskSpec *t = task_get(c->task_index);
    cJSON *tj = cJSON_AddObjectToObject(root, "task");
    cJSON_AddStringToObject(tj, "name", t->name);
    add_opts(tj, t->opts, t->n_opts, &c->task_opts);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    OptValues mv;
    opt_defaults(&mv, MODEL, FIXED[SEC_MODEL].n);
    const double mnum[] = {c->layers, c->d_model, c->heads, c->d_ff, c->dropout, c->max_len,
                           c->pooling, c->positions, c->head_hidden};
    memcpy(mv.num, mnum, sizeof mnum);
    add_opts(m, MODEL, FIXED[SEC_MODEL].n, &mv);
    const MixerSpec *mx = mixer_get(c->mixer_index);
    cJSON *mj = cJSON_AddObjectToObject(m, "mixer");
    cJSON_AddStringToObject(mj, "name", mx->name);
    add_opts(mj, mx->opts, mx->n_opts, &c->mixer_opts);
    cJSON *tr = cJSON_AddObjectToObject(root, "train");
    OptValues tv;
    opt_defaults(&tv, TRAIN, FIXED[SEC_TRAIN].n);
    const double tnum[] = {c->batch_size, (double)c->steps, c->lr, c->schedule, (double)c->warmup,
                           c->weight_decay, c->beta1, c->beta2, c->eps, c->clip_norm,
                           (double)c->eval_every, c->eval_batches, (double)c->log_every,
                           c->checkpoint};
    memcpy(tv.num, tnum, sizeof tnum);
    add_opts(tr, TRAIN, FIXED[SEC_TRAIN].n, &tv);
    return root;
}

uint64_t cfg_hash(const ExperimentConfig *c) {
    cJSON *j = cfg_to_json(c);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "experiment");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "name");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "output_dir");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "threads");
    char *text = cJSON_PrintUnformatted(j);
    XB_ASSERT(text);
    const uint64_t h = xb_fnv1a64(XB_FNV_OFFSET, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(j);
    return h;
}

const char *cfg_pool_name(PoolKind k) { return POOLS[k]; }
const char *cfg_pos_name(PosKind k) { return POSITIONS[k]; }
const char *cfg_sched_name(SchedKind k) { return SCHEDULES[k]; }
