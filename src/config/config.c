/* Experiment configuration. The YAML document (libyaml's document API) is walked once into a list
 * of assignments (a key of one section -> a scalar with its position); the sweep and the --set
 * overrides add more. Each run applies file < sweep member < overrides onto the defaults,
 * validating every value against one static table per section (the task's and the mixer's options
 * come from their registries, once the run's task and mixer names are known; the tables are in
 * schema.c). */
#include "config/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/layout.h"
#include "config/schema.h"
#include "core/fileio.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

#define CFG_MAX_RUNS 4096 /* every run is a full ExperimentConfig (~34 KB) */
/* Longest run id: with ".safetensors.partial", a --unique-id suffix and a temporary's ".XXXXXX"
 * every file name of a run stays within NAME_MAX (255). */
#define CFG_MAX_RUN_ID 200
#define CFG_NAME_MAX 100
#define IDX_NAME (-1)  /* the task's or the mixer's name */
#define IDX_DEFER (-2) /* a task or mixer option: looked up once the run's name is known */

/* ---- positions, assignments and the parse context ---- */

typedef struct Loc {
    const char *file;
    int line, col;
} Loc;

typedef enum { VK_PLAIN, VK_QUOTED, VK_MAPPING, VK_SEQUENCE } ValKind;
static const char *const g_kind_names[] = {[VK_PLAIN] = "scalar",
                                           [VK_QUOTED] = "scalar",
                                           [VK_MAPPING] = "mapping",
                                           [VK_SEQUENCE] = "sequence"};
_Static_assert(XB_ARRAY_LEN(g_kind_names) == VK_SEQUENCE + 1, "a name for every ValKind");
enum { ORIG_FILE, ORIG_SWEEP, ORIG_SET };

/* One "section.key = value" with where it came from. */
typedef struct Assign {
    SecId sec;       /* EXP, TASK, MODEL, TRAIN or MIXER */
    int idx;         /* index in the section's table, IDX_NAME or IDX_DEFER */
    char key[128];   /* the option's name (looked up for IDX_DEFER) */
    char shown[320]; /* the key as the user wrote it, for key errors */
    int seg_off;     /* where key starts in shown */
    ValKind kind;
    const char *text; /* the scalar (owned by the YAML document or the override string) */
    Loc kloc, vloc;
    int origin;
} Assign;

typedef struct SweepKey {
    Assign a; /* the key; kind/text/vloc are filled per item */
    char leaf[128];
    yaml_node_t *seq;
} SweepKey;

typedef struct Ctx {
    const char *path;
    XbError *err;
    yaml_document_t *doc;
    Assign *as; /* file assignments [0, n_file), then overrides */
    int n_as, cap_as, n_file;
    SweepKey *sw;
    int n_sw, cap_sw;
    Loc sweep_kloc;
    int have_task, have_model, have_mixer;
    Loc task_kloc, model_kloc, mixer_kloc;
} Ctx;

/* A value as a message shows it: one line (dataset_show's escapes), cut after 60 bytes. */
static const char *show_value(char *buf, size_t n, const char *t) {
    dataset_show(buf, n, t ? t : "", t ? strlen(t) : 0);
    return buf;
}

__attribute__((format(printf, 4, 5))) static int fail(Ctx *x, Loc l, const char *key,
                                                      const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xb_error_set(x->err, l.file, l.line, l.col, key, "%s", msg);
}

/* Unknown key shown[off, off+len) at level lv: suggests the nearest valid key or lists them. */
static int key_error(Ctx *x, Loc l, const char *shown, int off, int len, SecId lv, int task,
                     int mixer) {
    const char *names[CFG_MAX_NAMES];
    int n = cfg_level_names(lv, task, mixer, names);
    int best = cfg_suggest(shown + off, len, names, n);
    if (best >= 0)
        return fail(x, l, shown, "unknown key (did you mean %.*s%s%s?)", off, shown, names[best],
                    shown + off + len);
    char list[900];
    cfg_join_names(list, sizeof list, names, n);
    return fail(x, l, shown, "unknown key (valid: %s)", list);
}

static Assign *new_assign(Ctx *x) {
    if (x->n_as == x->cap_as) {
        x->cap_as = x->cap_as ? 2 * x->cap_as : 32;
        x->as = realloc(x->as, (size_t)x->cap_as * sizeof *x->as);
        XB_ASSERT(x->as);
    }
    Assign *a = &x->as[x->n_as++];
    memset(a, 0, sizeof *a);
    return a;
}

static yaml_node_t *node(Ctx *x, int id) { return yaml_document_get_node(x->doc, id); }
static Loc node_loc(const Ctx *x, const yaml_node_t *n) {
    return (Loc){x->path, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}
static ValKind node_kind(const yaml_node_t *n) {
    if (n->type == YAML_MAPPING_NODE) return VK_MAPPING;
    if (n->type == YAML_SEQUENCE_NODE) return VK_SEQUENCE;
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? VK_PLAIN : VK_QUOTED;
}
static const char *node_text(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}
/* An empty or null section (`train:` with nothing under it) counts as absent. */
static int node_is_null(const yaml_node_t *n) {
    if (node_kind(n) != VK_PLAIN) return 0;
    const char *t = node_text(n);
    return !*t || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

static void set_value(const Ctx *x, Assign *a, const yaml_node_t *v) {
    a->kind = node_kind(v);
    a->text = node_text(v);
    a->vloc = node_loc(x, v);
}

/* The text of a mapping key, which must be a scalar. */
static int key_text(Ctx *x, const yaml_node_t *k, const char *where, const char **out) {
    if (k->type != YAML_SCALAR_NODE)
        return fail(x, node_loc(x, k), where, "expected a key name, got a %s",
                    g_kind_names[node_kind(k)]);
    *out = node_text(k);
    return 0;
}

static int check_dup(Ctx *x, yaml_node_t *map, const yaml_node_pair_t *pair, const char *shown) {
    const yaml_node_t *k = node(x, pair->key);
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
        const yaml_node_t *k2 = node(x, q->key);
        if (k2->type == YAML_SCALAR_NODE && !strcmp(node_text(k2), node_text(k)))
            return fail(x, node_loc(x, k), shown, "duplicate key (first given at line %d)",
                        (int)k2->start_mark.line + 1);
    }
    return 0;
}

static int add_file_assign(Ctx *x, SecId sec, int idx, const char *key, const char *shown,
                           int seg_off, const yaml_node_t *k, const yaml_node_t *v) {
    Assign *a = new_assign(x);
    a->sec = sec;
    a->idx = idx;
    snprintf(a->key, sizeof a->key, "%s", key);
    snprintf(a->shown, sizeof a->shown, "%s", shown);
    a->seg_off = seg_off;
    a->kloc = node_loc(x, k);
    a->origin = ORIG_FILE;
    set_value(x, a, v);
    return 0;
}

/* Resolves a dotted key (sweep key or override) to an assignment's section and key; errors at kl.
 * shown is the key as reported, with dotted starting at shown[base]. */
static int resolve_path(Ctx *x, const char *dotted, const char *shown, int base, Loc kl,
                        Assign *a) {
    enum { MAXSEG = 8 };
    int off[MAXSEG], len[MAXSEG], n = 0;
    for (int i = 0;;) {
        const char *d = strchr(dotted + i, '.');
        int l = d ? (int)(d - (dotted + i)) : (int)strlen(dotted + i);
        if (n < MAXSEG) off[n] = i, len[n] = l;
        n++;
        if (!d) break;
        i += l + 1;
    }
    if (n > MAXSEG) n = MAXSEG;
    int sec = -1;
    for (int i = 0; i < N_TOP; i++)
        if ((int)strlen(cfg_sections[i]) == len[0] &&
            !strncmp(cfg_sections[i], dotted, (size_t)len[0]))
            sec = i;
    if (sec < 0) return key_error(x, kl, shown, base + off[0], len[0], SEC_TOP, -1, -1);
    a->sec = (SecId)sec;
    snprintf(a->shown, sizeof a->shown, "%s", shown);
    if (sec == SEC_SWEEP) return 0;
    if (n < 2) {
        const char *names[CFG_MAX_NAMES];
        char list[900];
        cfg_join_names(list, sizeof list, names, cfg_level_names(a->sec, -1, -1, names));
        return fail(x, kl, shown, "incomplete key (valid: %s.KEY with KEY one of: %s)",
                    cfg_sections[sec], list);
    }
    int used = 2, kseg = 1;
    const char *s1 = dotted + off[1];
    if (sec == SEC_TASK) {
        a->idx = (len[1] == 4 && !strncmp(s1, "name", 4)) ? IDX_NAME : IDX_DEFER;
    } else if (sec == SEC_MODEL && len[1] == 5 && !strncmp(s1, "mixer", 5)) {
        a->sec = SEC_MIXER;
        if (n == 2) {
            a->idx = IDX_NAME;
        } else {
            used = 3, kseg = 2;
            a->idx = (len[2] == 4 && !strncmp(dotted + off[2], "name", 4)) ? IDX_NAME : IDX_DEFER;
        }
    } else {
        Schema s = cfg_schema_of(a->sec, -1, -1);
        a->idx = cfg_schema_find(&s, s1, (size_t)len[1]);
        if (a->idx < 0) return key_error(x, kl, shown, base + off[1], len[1], a->sec, -1, -1);
    }
    if (n > used)
        return fail(x, kl, shown, "unknown key (%.*s has no keys)", base + off[used] - 1, shown);
    if (a->idx == IDX_NAME)
        snprintf(a->key, sizeof a->key, "name");
    else
        snprintf(a->key, sizeof a->key, "%.*s", len[kseg], dotted + off[kseg]);
    a->seg_off = base + off[kseg];
    return 0;
}

/* ---- walking the file ---- */

/* What to do with one key of a section's mapping: pk the key, pv its value, kt its text, shown
 * the dotted key as messages show it. Returns 0, or -1 with the error. */
typedef int (*KeyFn)(Ctx *x, SecId sec, yaml_node_t *pk, yaml_node_t *pv, const char *kt,
                     const char *shown);

/* Calls each for every key of mapping v, the value of section `where` (sec), after checking
 * that the key is a scalar and not given twice. */
static int walk_keys(Ctx *x, SecId sec, const char *where, yaml_node_t *v, KeyFn each) {
    if (v->type != YAML_MAPPING_NODE)
        return fail(x, node_loc(x, v), where, "expected a mapping, got a %s",
                    g_kind_names[node_kind(v)]);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *pk = node(x, p->key), *pv = node(x, p->value);
        const char *kt = NULL;
        char shown[320];
        if (key_text(x, pk, where, &kt)) return -1;
        snprintf(shown, sizeof shown, "%s.%s", where, kt);
        if (check_dup(x, v, p, shown) || each(x, sec, pk, pv, kt, shown)) return -1;
    }
    return 0;
}

/* A key of model.mixer: the mechanism's name, or one of its options (checked once the run's
 * mechanism is known). */
static int mixer_key(Ctx *x, SecId sec, yaml_node_t *pk, yaml_node_t *pv, const char *kt,
                     const char *shown) {
    return add_file_assign(x, sec, strcmp(kt, "name") ? IDX_DEFER : IDX_NAME, kt, shown, 12, pk,
                           pv);
}

static int walk_mixer(Ctx *x, yaml_node_t *k, yaml_node_t *v) {
    x->have_mixer = 1;
    x->mixer_kloc = node_loc(x, k);
    if (node_is_null(v)) return 0;
    if (v->type == YAML_SCALAR_NODE)
        return add_file_assign(x, SEC_MIXER, IDX_NAME, "name", "model.mixer", 6, k, v);
    return walk_keys(x, SEC_MIXER, "model.mixer", v, mixer_key);
}

/* A key of experiment, task, model or train: task's are checked once the run's task is known,
 * model.mixer is a section of its own, the others are looked up in the section's table. */
static int section_key(Ctx *x, SecId sec, yaml_node_t *pk, yaml_node_t *pv, const char *kt,
                       const char *shown) {
    const int base = (int)strlen(cfg_sections[sec]) + 1;
    if (sec == SEC_MODEL && !strcmp(kt, "mixer")) return walk_mixer(x, pk, pv);
    int idx = strcmp(kt, "name") ? IDX_DEFER : IDX_NAME;
    if (sec != SEC_TASK) {
        Schema s = cfg_schema_of(sec, -1, -1);
        idx = cfg_schema_find(&s, kt, strlen(kt));
        if (idx < 0)
            return key_error(x, node_loc(x, pk), shown, base, (int)strlen(kt), sec, -1, -1);
    }
    return add_file_assign(x, sec, idx, kt, shown, base, pk, pv);
}

static int walk_section(Ctx *x, SecId sec, yaml_node_t *k, yaml_node_t *v) {
    if (sec == SEC_TASK) x->have_task = 1, x->task_kloc = node_loc(x, k);
    if (sec == SEC_MODEL) x->have_model = 1, x->model_kloc = node_loc(x, k);
    if (node_is_null(v)) return 0;
    return walk_keys(x, sec, cfg_sections[sec], v, section_key);
}

/* A key of sweep: a dotted key that can be swept, with a non-empty list of values. */
static int sweep_key(Ctx *x, SecId sec, yaml_node_t *pk, yaml_node_t *pv, const char *kt,
                     const char *shown) {
    (void)sec;
    Assign a;
    memset(&a, 0, sizeof a);
    if (resolve_path(x, kt, shown, 6, node_loc(x, pk), &a)) return -1;
    if (a.sec == SEC_SWEEP || (a.sec == SEC_EXP && a.idx == E_NAME))
        return fail(x, node_loc(x, pk), shown, "cannot be swept");
    if (pv->type != YAML_SEQUENCE_NODE ||
        pv->data.sequence.items.top == pv->data.sequence.items.start)
        return fail(x, node_loc(x, pv), shown, "expected a non-empty list of values");
    a.origin = ORIG_SWEEP;
    a.kloc = node_loc(x, pk);
    if (x->n_sw == x->cap_sw) {
        x->cap_sw = x->cap_sw ? 2 * x->cap_sw : 8;
        x->sw = realloc(x->sw, (size_t)x->cap_sw * sizeof *x->sw);
        XB_ASSERT(x->sw);
    }
    SweepKey *s = &x->sw[x->n_sw++];
    s->a = a;
    const char *dot = strrchr(kt, '.');
    snprintf(s->leaf, sizeof s->leaf, "%s", dot ? dot + 1 : kt);
    s->seq = pv;
    return 0;
}

static int walk_sweep(Ctx *x, yaml_node_t *k, yaml_node_t *v) {
    x->sweep_kloc = node_loc(x, k);
    if (node_is_null(v)) return 0;
    return walk_keys(x, SEC_SWEEP, "sweep", v, sweep_key);
}

static int walk_root(Ctx *x) {
    yaml_node_t *root = yaml_document_get_root_node(x->doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        return fail(x, (Loc){x->path, 1, 1}, NULL,
                    "expected a mapping with sections experiment, task, model, train, sweep");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *pk = node(x, p->key), *pv = node(x, p->value);
        const char *kt = NULL;
        if (key_text(x, pk, NULL, &kt)) return -1;
        if (check_dup(x, root, p, kt)) return -1;
        int sec = -1;
        for (int i = 0; i < N_TOP; i++)
            if (!strcmp(kt, cfg_sections[i])) sec = i;
        if (sec < 0) return key_error(x, node_loc(x, pk), kt, 0, (int)strlen(kt), SEC_TOP, -1, -1);
        if (sec == SEC_SWEEP ? walk_sweep(x, pk, pv) : walk_section(x, (SecId)sec, pk, pv))
            return -1;
    }
    return 0;
}

static int parse_overrides(Ctx *x, const char *const *ov, int n) {
    for (int i = 0; i < n; i++) {
        const char *s = ov[i] ? ov[i] : "";
        const char *eq = strchr(s, '=');
        Loc kl = {"--set", i + 1, 1};
        char show[256];
        if (!eq || eq == s)
            return fail(x, kl, NULL, "expected KEY=VALUE, got \"%s\"",
                        show_value(show, sizeof show, s));
        char key[320];
        snprintf(key, sizeof key, "%.*s", (int)(eq - s), s);
        Assign *a = new_assign(x);
        if (resolve_path(x, key, key, 0, kl, a)) return -1;
        if (a->sec == SEC_SWEEP) return fail(x, kl, key, "cannot be set with --set");
        const size_t vlen = strlen(eq + 1), ok = fileio_utf8_prefix(eq + 1, vlen);
        if (ok < vlen) /* a YAML file cannot hold such bytes; the report must not either */
            return fail(x, (Loc){"--set", i + 1, (int)(eq - s) + 2}, key,
                        "expected UTF-8 text (byte 0x%02x at column %d)", (unsigned char)eq[1 + ok],
                        (int)(eq - s) + 2 + (int)ok);
        a->origin = ORIG_SET;
        a->kind = VK_PLAIN;
        a->text = eq + 1;
        a->kloc = kl;
        a->vloc = (Loc){"--set", i + 1, (int)(eq - s) + 2};
    }
    return 0;
}

/* ---- one run: resolve the names, apply every assignment in order, cross-check ---- */

typedef struct SecVals {
    OptValues v;
    Loc loc[XB_MAX_OPTS]; /* where each given value came from */
} SecVals;
typedef struct RunState {
    SecVals s[N_SEC];
} RunState;

static int parse_int(const char *t, long long *out) { /* 0 ok, 1 not an integer, 2 overflow */
    const char *p = t + (*t == '+' || *t == '-');
    if (!*p) return 1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return 1;
    errno = 0;
    *out = strtoll(t, NULL, 10);
    return errno == ERANGE ? 2 : 0;
}

static int parse_float(const char *t, double *out) { /* 0 ok, 1 not a number, 2 overflow */
    if (!*t) return 1;
    for (const char *q = t; *q; q++)
        if (!strchr("0123456789+-.eE", *q)) return 1;
    char *end;
    *out = strtod(t, &end);
    if (end == t || *end) return 1;
    return isfinite(*out) ? 0 : 2;
}

static int name_char_ok(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* A run name is a file name (OUTPUT_DIR/NAME.json): no path separator, and nothing that reads as
 * a directory (".", "..", ".hidden") or as an option to a command (-rf). */
static int name_ok(const char *t) {
    size_t n = strlen(t);
    if (n < 1 || n > CFG_NAME_MAX || t[0] == '.' || t[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(t[i])) return 0;
    return 1;
}

static int apply_value(Ctx *x, const Assign *a, const OptSpec *s, SecVals *sv, int i) {
    char valid[600], key[300];
    snprintf(key, sizeof key, "%s.%s", cfg_sec_path[a->sec], s->name);
    const int is_name = a->sec == SEC_EXP && i == E_NAME;
    if (is_name)
        snprintf(valid, sizeof valid,
                 "a name of 1 to %d characters from A-Z a-z 0-9 . _ -, not starting with . or - "
                 "(it names the run's files)",
                 CFG_NAME_MAX);
    else
        opt_describe_valid(s, valid, sizeof valid);
    if (a->kind == VK_MAPPING || a->kind == VK_SEQUENCE)
        return fail(x, a->vloc, key, "expected %s, got a %s", valid, g_kind_names[a->kind]);
    const char *t = a->text;
    const int quoted = a->kind == VK_QUOTED;
    int bad = 0, range = 0;
    double num = 0;
    switch (s->type) {
    case OPT_INT: {
        long long v = 0;
        int r = quoted ? 1 : parse_int(t, &v);
        bad = r == 1;
        range = r == 2 || (!r && ((double)v < s->min || (double)v > s->max));
        num = (double)v;
        break;
    }
    case OPT_FLOAT: {
        int r = quoted ? 1 : parse_float(t, &num);
        bad = r == 1;
        range = r == 2 || (!r && (num < s->min || num > s->max));
        break;
    }
    case OPT_BOOL:
        bad = quoted || (strcmp(t, "true") && strcmp(t, "false"));
        num = !strcmp(t, "true");
        break;
    case OPT_ENUM:
        bad = 1;
        for (int k = 0; s->choices[k]; k++)
            if (!strcmp(t, s->choices[k])) bad = 0, num = k;
        break;
    case OPT_STRING:
        if (strlen(t) >= XB_OPT_STRLEN)
            return fail(x, a->vloc, key, "expected a string of at most %d characters, got %zu",
                        XB_OPT_STRLEN - 1, strlen(t));
        bad = is_name && !name_ok(t);
        if (!bad) snprintf(sv->v.str[i], XB_OPT_STRLEN, "%s", t);
        break;
    }
    char show[256];
    if (bad)
        return fail(x, a->vloc, key, "expected %s, got \"%s\"", valid,
                    show_value(show, sizeof show, t));
    if (range)
        return fail(x, a->vloc, key, "%s is out of range (%s)", show_value(show, sizeof show, t),
                    valid);
    sv->v.num[i] = num;
    sv->v.set[i] = 1;
    sv->loc[i] = a->vloc;
    return 0;
}

/* The task's or the mixer's name from one assignment. */
static int resolve_name(Ctx *x, const Assign *a, int is_task, int *out) {
    const char *key = is_task ? "task.name" : "model.mixer.name";
    const char *names[CFG_MAX_NAMES];
    char list[900];
    int n = cfg_registry_names(is_task, names);
    cfg_join_names(list, sizeof list, names, n);
    if (a->kind == VK_MAPPING || a->kind == VK_SEQUENCE)
        return fail(x, a->vloc, key, "expected one of: %s, got a %s", list, g_kind_names[a->kind]);
    int i = is_task ? task_find(a->text) : mixer_find(a->text);
    if (i < 0) {
        const char *what = is_task ? "task" : "mechanism";
        int b = cfg_suggest(a->text, (int)strlen(a->text), names, n);
        char show[256];
        show_value(show, sizeof show, a->text);
        if (b >= 0)
            return fail(x, a->vloc, key, "unknown %s \"%s\" (did you mean %s?)", what, show,
                        names[b]);
        return fail(x, a->vloc, key, "unknown %s \"%s\" (valid: %s)", what, show, list);
    }
    *out = i;
    return 0;
}

static void default_name(const char *path, char *out) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot > b ? (size_t)(dot - b) : strlen(b);
    if (n > CFG_NAME_MAX) n = CFG_NAME_MAX;
    for (size_t i = 0; i < n; i++) out[i] = name_char_ok(b[i]) ? b[i] : '_';
    if (n && (out[0] == '.' || out[0] == '-')) out[0] = '_'; /* as name_ok wants */
    out[n] = '\0';
    if (!n) strcpy(out, "experiment");
}

static void set_defaults(SecVals *sv, SecId sec, int task, int mixer) {
    Schema s = cfg_schema_of(sec, task, mixer);
    if (s.specs) {
        opt_defaults(&sv->v, s.specs, s.n);
        return;
    }
    memset(&sv->v, 0, sizeof sv->v);
    sv->v.n = s.n;
    for (int i = 0; i < s.n; i++) sv->v.num[i] = s.fields[i].o.def;
}

ModelShape cfg_model_shape(const ExperimentConfig *c) {
    return (ModelShape){.layers = c->layers,
                        .max_len = c->max_len,
                        .cls = c->pooling == POOL_CLS,
                        .funnel = c->funnel,
                        .latents = c->latents,
                        .cross_attends = c->cross_attends,
                        .segment = c->segment,
                        .memory = c->memory,
                        .compress = c->compress,
                        .compressed_memory = c->compressed_memory};
}

/* The model's shape (the blocks and their lengths) from the model section's values. */
static ModelShape shape_of(const OptValues *m) {
    return (ModelShape){.layers = (int)m->num[M_LAYERS],
                        .max_len = (int)m->num[M_MAX_LEN],
                        .cls = (int)m->num[M_POOLING] == POOL_CLS,
                        .funnel = (int)m->num[M_FUNNEL],
                        .latents = (int)m->num[M_LATENTS],
                        .cross_attends = (int)m->num[M_CROSS_ATTENDS],
                        .segment = (int)m->num[M_SEGMENT],
                        .memory = (int)m->num[M_MEMORY],
                        .compress = (int)m->num[M_COMPRESS],
                        .compressed_memory = (int)m->num[M_COMPRESSED]};
}

/* The mechanism's own check at every length it will run at: the SELF blocks' (the model's
 * length, the latents', the recurrence's window, a pooled Funnel stage's), each once. */
static int check_mixer_lengths(Ctx *x, const SecVals *m, const OptValues *mixer_opts, int mixer,
                               Loc mixer_loc) {
    const MixerSpec *ms = mixer_get(mixer);
    if (!ms->ops || !ms->ops->check) return 0;
    const ModelShape shape = shape_of(&m->v);
    const int N = layout_blocks(&shape), D = (int)m->v.num[M_D_MODEL], H = (int)m->v.num[M_HEADS];
    BlockLayout *b = malloc((size_t)(N > 0 ? N : 1) * sizeof *b);
    XB_ASSERT(b);
    layout_blocks_of(&shape, b);
    int done = 0;
    for (int l = 0; l < N && !done; l++) {
        const int L = b[l].Lmix;
        int seen = b[l].kind != BLOCK_SELF;
        for (int k = 0; k < l && !seen; k++) seen = b[k].kind == BLOCK_SELF && b[k].Lmix == L;
        if (seen) continue;
        XbError e2;
        xb_error_clear(&e2);
        if (!ms->ops->check(mixer_opts, D, H, L, &e2)) continue;
        const char *key = e2.key[0] ? e2.key : NULL;
        if (L == shape.max_len)
            fail(x, mixer_loc, key, "%s", e2.msg);
        else
            fail(x, mixer_loc, key, "%s; the mechanism runs at length %d there (%s)", e2.msg, L,
                 shape.latents > 0   ? "over model.latents"
                 : shape.segment > 0 ? (shape.compress > 0 ? "compressed memory, memory and segment"
                                                           : "memory and segment")
                                     : "a pooled funnel stage");
        done = 1;
    }
    free(b);
    return done ? -1 : 0;
}

/* The run's task and mechanism from the names among its assignments (the mechanism `full` when
 * none is named). Returns 0, or -1 with the error (a task must be named). */
static int resolve_names(Ctx *x, const Assign *const *seq, int n, int *task, int *mixer) {
    *task = -1, *mixer = mixer_find("full");
    if (*mixer < 0) *mixer = 0;
    for (int i = 0; i < n; i++)
        if (seq[i]->idx == IDX_NAME && resolve_name(x, seq[i], seq[i]->sec == SEC_TASK,
                                                    seq[i]->sec == SEC_TASK ? task : mixer))
            return -1;
    if (*task >= 0) return 0;
    const char *names[CFG_MAX_NAMES];
    char list[900];
    cfg_join_names(list, sizeof list, names, cfg_registry_names(1, names));
    Loc l = x->have_task ? x->task_kloc : (Loc){x->path, 1, 1};
    return fail(x, l, "task.name", "missing (one of: %s)", list);
}

/* Every section's defaults, then the assignments in order (file, sweep member, --set), each
 * checked against its section's table; *mixer_loc gets where the mechanism was last set (its
 * checks point there). Returns 0, or -1 with the error. */
static int apply_all(Ctx *x, const Assign *const *seq, int n, RunState *rs, int task, int mixer,
                     Loc *mixer_loc) {
    memset(rs, 0, sizeof *rs);
    static const SecId secs[] = {SEC_EXP, SEC_TASK, SEC_MODEL, SEC_MIXER, SEC_TRAIN};
    for (size_t i = 0; i < XB_ARRAY_LEN(secs); i++)
        set_defaults(&rs->s[secs[i]], secs[i], task, mixer);
    *mixer_loc = x->have_mixer   ? x->mixer_kloc
                 : x->have_model ? x->model_kloc
                                 : (Loc){x->path, 1, 1};
    for (int k = 0; k < n; k++) {
        const Assign *a = seq[k];
        if (a->sec == SEC_MIXER && a->origin != ORIG_FILE)
            *mixer_loc = a->origin == ORIG_SET ? a->kloc : a->vloc;
        if (a->idx == IDX_NAME) continue;
        Schema s = cfg_schema_of(a->sec, task, mixer);
        int i = a->idx;
        if (i == IDX_DEFER) {
            i = cfg_schema_find(&s, a->key, strlen(a->key));
            if (i < 0)
                return key_error(x, a->kloc, a->shown, a->seg_off, (int)strlen(a->key), a->sec,
                                 task, mixer);
        }
        if (apply_value(x, a, cfg_schema_spec(&s, i), &rs->s[a->sec], i)) return -1;
    }
    OptValues *e = &rs->s[SEC_EXP].v;
    if (!e->set[E_NAME]) default_name(x->path, e->str[E_NAME]);
    if (!e->set[E_OUTPUT_DIR])
        snprintf(e->str[E_OUTPUT_DIR], XB_OPT_STRLEN, "results/%.*s", CFG_NAME_MAX, e->str[E_NAME]);
    return 0;
}

/* model.heads divides model.d_model; the warm-up fits in the run (but before rsqrt). */
static int check_heads_warmup(Ctx *x, const RunState *rs) {
    const SecVals *m = &rs->s[SEC_MODEL];
    const int D = (int)m->v.num[M_D_MODEL], H = (int)m->v.num[M_HEADS];
    if (D % H) {
        char divs[128];
        size_t k = 0;
        divs[0] = '\0';
        for (int d = 1, cnt = 0; d <= XB_MIN(D, 16) && cnt < 8; d++)
            if (D % d == 0)
                k += (size_t)snprintf(divs + k, sizeof divs - k, "%s%d", cnt++ ? ", " : "", d);
        Loc l = m->v.set[M_HEADS] ? m->loc[M_HEADS] : m->loc[M_D_MODEL];
        return fail(x, l, "model.heads",
                    "%d does not divide model.d_model = %d (valid: a divisor of %d, e.g. %s)", H, D,
                    D, divs);
    }
    const SecVals *t = &rs->s[SEC_TRAIN];
    const long long W = (long long)t->v.num[T_WARMUP], S = (long long)t->v.num[T_STEPS];
    /* A warm-up longer than the run is legitimate before an inverse-sqrt decay (LRA's retrieval:
     * 8000 warm-up steps, 5000 steps, so the rate only rises); with the other schedules it is a
     * mistake. */
    if (W > S && t->v.num[T_SCHEDULE] != SCHED_RSQRT)
        return fail(x, t->loc[T_WARMUP], "train.warmup",
                    "%lld is greater than train.steps = %lld (valid: 0 to %lld)", W, S, S);
    return 0;
}

/* The Funnel's stages, the Perceiver's latents and its cross-attends, the segment recurrence and
 * its compressed memory fit the blocks, the length and each other. */
static int check_shape(Ctx *x, const SecVals *m) {
    const int layers = (int)m->v.num[M_LAYERS], funnel = (int)m->v.num[M_FUNNEL];
    const int latents = (int)m->v.num[M_LATENTS], xrep = (int)m->v.num[M_CROSS_ATTENDS];
    if (funnel > 1 && layers % funnel)
        return fail(
            x, m->loc[M_FUNNEL], "model.funnel",
            "%d stages cannot share model.layers = %d blocks (valid: 0, or a divisor of %d)",
            funnel, layers, layers);
    if (latents > 0 && funnel > 1)
        return fail(x, m->loc[M_LATENTS], "model.latents",
                    "a Perceiver's latents cannot be combined with model.funnel = %d (valid: "
                    "model.latents: 0, or model.funnel: 0)",
                    funnel);
    if (xrep > 1 && latents == 0)
        return fail(x, m->loc[M_CROSS_ATTENDS], "model.cross_attends",
                    "%d cross-attends, but there is no latent array to attend from (valid: "
                    "model.cross_attends: 1, or model.latents > 0)",
                    xrep);
    const int seg = (int)m->v.num[M_SEGMENT], maxlen = (int)m->v.num[M_MAX_LEN];
    if (seg > 0 && maxlen % seg)
        return fail(x, m->loc[M_SEGMENT], "model.segment",
                    "%d does not divide model.max_len = %d (valid: 0, or a divisor of %d)", seg,
                    maxlen, maxlen);
    if (seg > 0 && (latents > 0 || funnel > 1))
        return fail(x, m->loc[M_SEGMENT], "model.segment",
                    "segment recurrence cannot be combined with model.%s (valid: model.segment: "
                    "0, or model.%s: 0)",
                    latents > 0 ? "latents" : "funnel", latents > 0 ? "latents" : "funnel");
    const int mem0 = (int)m->v.num[M_MEMORY] ? (int)m->v.num[M_MEMORY] : seg;
    const int crate = (int)m->v.num[M_COMPRESS], ncm0 = (int)m->v.num[M_COMPRESSED];
    if (crate > 0 && seg == 0)
        return fail(x, m->loc[M_COMPRESS], "model.compress",
                    "compresses the memory of the segment recurrence, which is off (valid: "
                    "model.compress: 0, or model.segment > 0)");
    if (crate > 0 && (seg % crate || mem0 % crate))
        return fail(x, m->loc[M_COMPRESS], "model.compress",
                    "%d does not divide model.segment = %d and the memory of %d (valid: 0, or a "
                    "common divisor of the two)",
                    crate, seg, mem0);
    if (ncm0 > 0 && crate == 0)
        return fail(x, m->loc[M_COMPRESSED], "model.compressed_memory",
                    "%d slots, but model.compress is 0 (valid: model.compressed_memory: 0, or "
                    "model.compress > 0)",
                    ncm0);
    return 0;
}

/* The pooling fits the task (a sequence task's default is none: the head at every position) and
 * the model's output length. */
static int check_pooling(Ctx *x, SecVals *m, const TaskSpec *ts) {
    if (ts->sequence && !m->v.set[M_POOLING]) m->v.num[M_POOLING] = POOL_NONE;
    const int pooling = (int)m->v.num[M_POOLING];
    const int latents = (int)m->v.num[M_LATENTS], funnel = (int)m->v.num[M_FUNNEL];
    if (latents > 0 && pooling == POOL_CLS)
        return fail(x, m->loc[M_LATENTS], "model.latents",
                    "the Perceiver averages its latents (valid: model.pooling: mean with "
                    "model.latents = %d, or model.latents: 0)",
                    latents);
    /* pooling none: the head reads every input position, so the output must keep the input's
     * length (a pair task never has per-position targets: sequence tasks are single documents) */
    if (pooling == POOL_NONE && (latents > 0 || funnel > 1))
        return fail(x, latents > 0 ? m->loc[M_LATENTS] : m->loc[M_FUNNEL],
                    latents > 0 ? "model.latents" : "model.funnel",
                    "%s, but model.pooling: none puts the classifier at every input position "
                    "(valid: model.%s: 0, or model.pooling: cls or mean)",
                    latents > 0 ? "the Perceiver's blocks run over its latents, not the input"
                                : "the Funnel's stages shorten the sequence",
                    latents > 0 ? "latents" : "funnel");
    if (ts->sequence && pooling != POOL_NONE)
        return fail(x, m->loc[M_POOLING], "model.pooling",
                    "%s pools the sequence to one vector, but task %s has a target at some "
                    "positions (valid: none)",
                    cfg_pool_name((PoolKind)pooling), ts->name);
    if (!ts->sequence && pooling == POOL_NONE)
        return fail(x, m->loc[M_POOLING], "model.pooling",
                    "none puts the classifier at every position, but task %s has one label per "
                    "example (valid: cls, mean)",
                    ts->name);
    return 0;
}

/* The checked values of every section into c. */
static void store_run(const Ctx *x, const RunState *rs, int task, int mixer, ExperimentConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->source, sizeof c->source, "%s", x->path);
    /* where the model is described: errors found later (a memory plan) point there */
    const Loc ml = x->have_model ? x->model_kloc : (Loc){x->path, 1, 1};
    c->model_line = ml.line, c->model_col = ml.col;
    cfg_schema_store(c, SEC_EXP, &rs->s[SEC_EXP].v);
    cfg_schema_store(c, SEC_MODEL, &rs->s[SEC_MODEL].v);
    cfg_schema_store(c, SEC_TRAIN, &rs->s[SEC_TRAIN].v);
    c->task_index = task;
    c->task_opts = rs->s[SEC_TASK].v;
    c->mixer_index = mixer;
    c->mixer_opts = rs->s[SEC_MIXER].v;
}

/* One run from its assignments (file, sweep member, --set): names, values, the checks across
 * keys, the mechanism's own check at every length it will run at. */
static int build_run(Ctx *x, const Assign *const *seq, int n, RunState *rs, ExperimentConfig *c) {
    int task, mixer;
    Loc mixer_loc;
    if (resolve_names(x, seq, n, &task, &mixer) ||
        apply_all(x, seq, n, rs, task, mixer, &mixer_loc) || check_heads_warmup(x, rs) ||
        check_shape(x, &rs->s[SEC_MODEL]) || check_pooling(x, &rs->s[SEC_MODEL], task_get(task)) ||
        check_mixer_lengths(x, &rs->s[SEC_MODEL], &rs->s[SEC_MIXER].v, mixer, mixer_loc))
        return -1;
    store_run(x, rs, task, mixer, c);
    return 0;
}

static void append_id(char *buf, size_t cap, size_t *k, const char *s, int sanitize) {
    for (; *s && *k + 1 < cap; s++) {
        char ch = *s;
        if (sanitize && !(name_char_ok(ch) && ch != '_')) ch = '_';
        buf[(*k)++] = ch;
    }
    buf[*k] = '\0';
}

/* Sweep members' run ids are unique by construction (an index lists each once and no two runs
 * write one file): ids that collide (values that sanitise to the same text, or ids cut at the
 * buffer's length) each get "-" and 8 hex digits of their config hash, and, for configs equal in
 * everything, their index in the sweep. */
static void unique_ids(ConfigSet *cs) {
    char *clash = calloc((size_t)cs->n, 1);
    XB_ASSERT(clash);
    for (int r = 0; r < cs->n; r++)
        for (int q = r + 1; q < cs->n; q++)
            if (!strcmp(cs->runs[r].run_id, cs->runs[q].run_id)) clash[r] = clash[q] = 1;
    for (int r = 0; r < cs->n; r++) {
        if (!clash[r]) continue;
        ExperimentConfig *c = &cs->runs[r];
        const uint64_t h = cfg_hash(c);
        int twin = 0; /* another run of the sweep with the very same config */
        for (int q = 0; q < cs->n && !twin; q++) twin = q != r && cfg_hash(&cs->runs[q]) == h;
        char suffix[40];
        if (twin)
            snprintf(suffix, sizeof suffix, "-%08llx-%d", (unsigned long long)(h >> 32), r);
        else
            snprintf(suffix, sizeof suffix, "-%08llx", (unsigned long long)(h >> 32));
        const size_t room = CFG_MAX_RUN_ID - strlen(suffix);
        if (strlen(c->run_id) > room) c->run_id[room] = '\0';
        strcat(c->run_id, suffix);
    }
    free(clash);
}

static int expand(Ctx *x, ConfigSet *out) {
    long long total = 1;
    for (int k = 0; k < x->n_sw; k++) {
        const yaml_node_t *s = x->sw[k].seq;
        total *= (long long)(s->data.sequence.items.top - s->data.sequence.items.start);
        if (total > CFG_MAX_RUNS)
            return fail(x, x->sweep_kloc, "sweep",
                        "expands to more than %d runs (valid: at most %d)", CFG_MAX_RUNS,
                        CFG_MAX_RUNS);
    }
    const int n = (int)total;
    out->runs = calloc((size_t)n, sizeof *out->runs);
    XB_ASSERT(out->runs);
    out->n = n;
    RunState *rs = malloc(sizeof *rs);
    Assign *swa = calloc((size_t)x->n_sw + 1, sizeof *swa);
    const Assign **seq = calloc((size_t)(x->n_as + x->n_sw) + 1, sizeof *seq);
    XB_ASSERT(rs && swa && seq);
    int rc = 0;
    for (int r = 0; r < n && !rc; r++) {
        int m = 0, rem = r;
        for (int i = 0; i < x->n_file; i++) seq[m++] = &x->as[i];
        for (int k = x->n_sw - 1; k >= 0; k--) { /* the last key varies fastest */
            const yaml_node_t *s = x->sw[k].seq;
            const int nk = (int)(s->data.sequence.items.top - s->data.sequence.items.start);
            swa[k] = x->sw[k].a;
            set_value(x, &swa[k], node(x, s->data.sequence.items.start[rem % nk]));
            rem /= nk;
        }
        for (int k = 0; k < x->n_sw; k++) seq[m++] = &swa[k];
        for (int i = x->n_file; i < x->n_as; i++) seq[m++] = &x->as[i];
        ExperimentConfig *c = &out->runs[r];
        rc = build_run(x, seq, m, rs, c);
        if (rc) break;
        c->sweep_index = r;
        c->sweep_size = n;
        size_t k = 0;
        const size_t cap = CFG_MAX_RUN_ID + 1;
        append_id(c->run_id, cap, &k, c->name, 0);
        for (int j = 0; j < x->n_sw; j++) {
            append_id(c->run_id, cap, &k, "__", 0);
            append_id(c->run_id, cap, &k, x->sw[j].leaf, 1);
            append_id(c->run_id, cap, &k, "-", 0);
            append_id(c->run_id, cap, &k, swa[j].text ? swa[j].text : "", 1);
        }
    }
    free(rs);
    free(swa);
    free(seq);
    return rc;
}

/* libyaml's error, at its position. */
static int yaml_error(Ctx *x, const yaml_parser_t *p) {
    Loc l = {x->path, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1};
    const char *problem = p->problem ? p->problem : "out of memory";
    if (p->context) return fail(x, l, NULL, "YAML syntax error: %s (%s)", problem, p->context);
    return fail(x, l, NULL, "YAML syntax error: %s", problem);
}

/* ---- the checks before the document is built ---- */

/* A config nests three levels (section, key, mixer option or sweep list); JSON reprinted from a
 * report the same. Deeper is refused as soon as it is seen: libyaml's scanner takes time
 * quadratic in the nesting, so a deep document must not reach it whole. */
#define CFG_MAX_DEPTH 32

/* Keys in one mapping: a section has a few dozen; the duplicate-key check is quadratic. */
#define CFG_MAX_KEYS 256
/* Anchors (&name) in a config: libyaml looks each alias up in a list of them. */
#define CFG_MAX_ANCHORS 256

typedef struct Level {
    int map, want_key, as_key; /* a mapping expecting its next key; the node is itself a key */
    int keys;                  /* keys seen in the mapping */
    char key[64];
} Level;

/* The dotted current keys of the mappings open at levels 1 to upto (level 0 is the stream). */
static void level_path(const Level *st, int upto, char *out, size_t n) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 1; i <= upto && k < n; i++)
        if (st[i].map && st[i].key[0])
            k += (size_t)snprintf(out + k, n - k, "%s%s", k ? "." : "", st[i].key);
}

/* A tag as written: !!str for the core schema's tags. */
static void tag_text(const char *tag, char *out, size_t n) {
    static const char core[] = "tag:yaml.org,2002:";
    if (!strncmp(tag, core, sizeof core - 1))
        snprintf(out, n, "!!%s", tag + sizeof core - 1);
    else
        snprintf(out, n, "%s", tag);
}

/* The state of prescan: the open mappings and sequences, documents and anchors seen. */
typedef struct Scan {
    Level st[CFG_MAX_DEPTH + 2];
    int top, docs, anchors;
} Scan;

/* A node's checks: no NUL byte in a scalar, no tag, at most CFG_MAX_KEYS keys per mapping, at
 * most CFG_MAX_DEPTH levels; keeps the path of keys for messages. Returns 0, or -1 with err. */
static int scan_node(Ctx *x, Scan *sc, const yaml_event_t *ev, Loc l, const yaml_char_t *tag) {
    Level *par = &sc->st[sc->top];
    const int is_key = par->map && par->want_key;
    char path[320];
    level_path(sc->st, is_key ? sc->top - 1 : sc->top, path, sizeof path);
    const char *key = path[0] ? path : NULL;
    if (ev->type == YAML_SCALAR_EVENT &&
        memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
        return fail(x, l, key,
                    "a NUL byte in the value (a \\0 escape; a config's text holds none)");
    if (tag) {
        char t[128];
        tag_text((const char *)tag, t, sizeof t);
        return fail(x, l, key,
                    "YAML tags are not supported, got %s (a config's values take their type from "
                    "their key: write the value without the tag)",
                    t);
    }
    const int opens = ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT;
    if (is_key && ++par->keys > CFG_MAX_KEYS)
        return fail(x, l, key, "more than %d keys in one mapping (a section has a few dozen)",
                    CFG_MAX_KEYS);
    if (is_key) {
        par->want_key = 0;
        show_value(par->key, sizeof par->key,
                   ev->type == YAML_SCALAR_EVENT ? (const char *)ev->data.scalar.value : "?");
    } else if (par->map && !opens) {
        par->want_key = 1;
    }
    if (!opens) return 0;
    if (sc->top == CFG_MAX_DEPTH)
        return fail(x, l, key,
                    "YAML nested more than %d levels deep (a config nests 3: section, key, and a "
                    "mixer option or sweep list)",
                    CFG_MAX_DEPTH);
    sc->st[++sc->top] =
        (Level){.map = ev->type == YAML_MAPPING_START_EVENT, .want_key = 1, .as_key = is_key};
    return 0;
}

/* One event: a second document, too many anchors, a node's checks, the end of a collection.
 * Returns 0, 1 at the end of the stream, or -1 with err set. */
static int scan_event(Ctx *x, Scan *sc, const yaml_event_t *ev) {
    const Loc l = {x->path, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1};
    const yaml_char_t *tag = NULL, *anchor = NULL;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++sc->docs > 1)
            return fail(x, l, NULL,
                        "a second YAML document (a config is one document: remove this '---' and "
                        "what follows, or split them into two files)");
        return 0;
    case YAML_SCALAR_EVENT:
        tag = ev->data.scalar.tag, anchor = ev->data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
        tag = ev->data.sequence_start.tag, anchor = ev->data.sequence_start.anchor;
        break;
    case YAML_MAPPING_START_EVENT:
        tag = ev->data.mapping_start.tag, anchor = ev->data.mapping_start.anchor;
        break;
    case YAML_ALIAS_EVENT:
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        const int as_key = sc->st[sc->top].as_key;
        if (sc->top > 0) sc->top--;
        if (!as_key && sc->st[sc->top].map) sc->st[sc->top].want_key = 1;
        return 0;
    }
    default:
        return 0;
    }
    if (anchor && ++sc->anchors > CFG_MAX_ANCHORS)
        return fail(x, l, NULL, "more than %d anchors (&name) in one config", CFG_MAX_ANCHORS);
    return scan_node(x, sc, ev, l, tag);
}

/* One pass over libyaml's events before the document is loaded: a config is one document, with
 * no tags (values are typed by the key they belong to: `!!str 5` for an integer, or an unknown
 * tag, would mean something the schema does not) and no NUL bytes in its values, nested at most
 * CFG_MAX_DEPTH levels, with at most CFG_MAX_KEYS keys per mapping and CFG_MAX_ANCHORS anchors:
 * the limits keep libyaml's loader and the checks after it linear in the text. */
static int prescan(Ctx *x, const char *yaml, size_t len) {
    yaml_parser_t p;
    XB_ASSERT(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    Scan sc;
    memset(&sc, 0, sizeof sc);
    int rc = 0;
    while (!rc) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_error(x, &p);
            break;
        }
        rc = scan_event(x, &sc, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc < 0 ? -1 : 0;
}

/* Loads len bytes of YAML text (NUL-free: callers check). */
static int load_text(const char *yaml, size_t len, const char *path, const char *const *overrides,
                     int n_overrides, ConfigSet *out, XbError *err) {
    memset(out, 0, sizeof *out);
    if (err) xb_error_clear(err);
    Ctx x;
    memset(&x, 0, sizeof x);
    x.path = path ? path : "";
    x.err = err;
    if (prescan(&x, yaml, len)) return -1;
    yaml_parser_t p;
    XB_ASSERT(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&p, &doc)) {
        yaml_error(&x, &p);
        yaml_parser_delete(&p);
        return -1;
    }
    yaml_parser_delete(&p);
    x.doc = &doc;
    int rc = walk_root(&x);
    x.n_file = x.n_as;
    if (!rc) rc = parse_overrides(&x, overrides, n_overrides);
    if (!rc) rc = expand(&x, out);
    if (!rc) unique_ids(out);
    yaml_document_delete(&doc);
    free(x.as);
    free(x.sw);
    if (rc) cfg_set_free(out);
    return rc ? -1 : 0;
}

int cfg_load_string(const char *yaml, const char *path, const char *const *overrides,
                    int n_overrides, ConfigSet *out, XbError *err) {
    if (!yaml) yaml = "";
    return load_text(yaml, strlen(yaml), path, overrides, n_overrides, out, err);
}

int cfg_load(const char *path, const char *const *overrides, int n_overrides, ConfigSet *out,
             XbError *err) {
    memset(out, 0, sizeof *out);
    if (err) xb_error_clear(err);
    size_t len = 0;
    char *buf = fileio_read_all(path, XB_FILE_CONFIG, NULL, &len, err);
    if (!buf) return -1;
    const char *nul = memchr(buf, '\0', len);
    if (nul) { /* libyaml would stop there, and the rest of the file would be ignored */
        int line = 1, col = 1;
        for (const char *c = buf; c < nul; c++) {
            if (*c == '\n')
                line++, col = 1;
            else if (((unsigned char)*c & 0xc0) != 0x80) /* columns count characters */
                col++;
        }
        free(buf);
        return xb_error_set(err, path, line, col, NULL,
                            "a NUL byte (a config is text: UTF-8 without NUL bytes)");
    }
    int rc = load_text(buf, len, path, overrides, n_overrides, out, err);
    free(buf);
    return rc;
}

void cfg_set_free(ConfigSet *s) {
    if (!s) return;
    free(s->runs);
    s->runs = NULL;
    s->n = 0;
}
