#include "report/summary.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "core/hash.h"
#include "core/profile.h"
#include "core/xassert.h"
#include "report/report.h"

/* The item at a dotted path ("measured.steps_per_s"), or NULL. */
static const cJSON *at(const cJSON *doc, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *j = doc;
    for (char *save = NULL, *p = strtok_r(buf, ".", &save); p && j; p = strtok_r(NULL, ".", &save))
        j = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, p) : NULL;
    return j;
}

static int want_string(const cJSON *doc, const char *path, const char *file, char *out, size_t n,
                       XbError *err) {
    const cJSON *j = at(doc, path);
    if (!j) return xb_error_set(err, file, 0, 0, path, "missing (expected a string)");
    if (!cJSON_IsString(j))
        return xb_error_set(err, file, 0, 0, path, "expected a string, found %s",
                            report_json_type_name(j));
    snprintf(out, n, "%s", j->valuestring);
    return 0;
}

/* The numbers a summary takes from a report, each with the range a report of this tool can hold:
 * a value outside it (max_len 1e300, an accuracy of 1e308) would become an undefined cast or a
 * coordinate of NaN downstream, so it is refused here, naming the file and the key. */
typedef enum { NUM_REAL, NUM_WHOLE, NUM_CONFIG } NumKind;
typedef struct NumField {
    const char *path;
    NumKind kind;
    double lo, hi; /* NUM_CONFIG: the range of the config key (section and key in the path) */
    int nullable;  /* null reads as NaN (a run that did not get that far) */
    int optional;  /* absent reads as NaN (reports written before the field existed) */
    size_t off; /* a double (NUM_REAL), uint64_t (NUM_WHOLE) or int (NUM_CONFIG) of the summary */
} NumField;

#define REPORT_MAX_WHOLE 9007199254740992.0 /* 2^53: larger integers do not survive a double */
#define S(f) offsetof(ReportSummary, f)
static const NumField NUM_FIELDS[] = {
    {"config.model.max_len", NUM_CONFIG, 0, 0, 0, 0, S(max_len)},
    {"config.train.batch_size", NUM_CONFIG, 0, 0, 0, 0, S(batch_size)},
    {"test.accuracy", NUM_REAL, 0, 1, 1, 0, S(test_acc)},
    {"test.majority_baseline", NUM_REAL, 0, 1, 1, 0, S(baseline)},
    {"measured.steps_per_s", NUM_REAL, 0, 1e9, 0, 0, S(steps_per_s)},
    {"measured.tokens_per_s", NUM_REAL, 0, 1e15, 0, 0, S(tokens_per_s)},
    {"measured.step_s_median", NUM_REAL, 0, 1e9, 1, 1, S(step_s_median)},
    {"measured.wall_s", NUM_REAL, 0, 1e9, 0, 0, S(wall_s)},
    {"measured.calibration.core_share", NUM_REAL, 0, 1, 1, 1, S(core_share)},
    {"measured.calibration.sgemm_gflops_per_s", NUM_REAL, 0, 1e9, 1, 1, S(calib_sgemm)},
    {"measured.calibration.cpu_s", NUM_REAL, 0, 1e12, 1, 1, S(calib_cpu_s)},
    {"training.steps", NUM_REAL, 0, REPORT_MAX_WHOLE, 0, 1, S(steps)},
    {"measured.peak_rss", NUM_REAL, 0, REPORT_MAX_WHOLE, 0, 0, S(peak_rss)},
    {"memory.planned_total", NUM_REAL, 0, REPORT_MAX_WHOLE, 0, 0, S(planned)},
    {"flops.analytic_train_step", NUM_WHOLE, 0, REPORT_MAX_WHOLE, 0, 0, S(flops_step)},
    {"flops.counted_train_step", NUM_WHOLE, 0, REPORT_MAX_WHOLE, 0, 0, S(flops_counted)},
    {"model.parameters", NUM_WHOLE, 0, REPORT_MAX_WHOLE, 0, 0, S(params)},
    {"config.experiment.seed", NUM_WHOLE, 0, REPORT_MAX_WHOLE, 0, 0, S(seed)},
};
#undef S

void summary_shortest(char *buf, size_t n, double x) {
    char t[32]; /* "%.17g" of any double fits; a local buffer also keeps GCC's UBSan build from
                 * warning that buf might be null */
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, x);
        if (strtod(t, NULL) == x) break;
    }
    snprintf(buf, n, "%s", t);
}

/* The range of config key "config.SECTION.KEY" from the config's schema. */
static void config_range(const char *path, double *lo, double *hi) {
    char sec[32];
    const char *a = strchr(path, '.') + 1, *b = strchr(a, '.');
    snprintf(sec, sizeof sec, "%.*s", (int)(b - a), a);
    for (int i = 0; i < cfg_key_count(sec); i++)
        if (!strcmp(cfg_key(sec, i)->name, b + 1)) {
            *lo = cfg_key(sec, i)->min, *hi = cfg_key(sec, i)->max;
            return;
        }
    XB_ASSERT(!"a summary field names a config key that does not exist");
}

static int want_field(const cJSON *doc, const NumField *f, const char *file, ReportSummary *s,
                      XbError *err) {
    double lo = f->lo, hi = f->hi;
    if (f->kind == NUM_CONFIG) config_range(f->path, &lo, &hi);
    const int whole = f->kind != NUM_REAL;
    char valid[96];
    snprintf(valid, sizeof valid, "%s in [%.17g, %.17g]%s", whole ? "an integer" : "a number", lo,
             hi, f->nullable ? ", or null" : "");
    const cJSON *j = at(doc, f->path);
    double v = NAN;
    if (!j && !f->optional)
        return xb_error_set(err, file, 0, 0, f->path, "missing (expected %s)", valid);
    if (j && !(f->nullable && cJSON_IsNull(j))) {
        if (!cJSON_IsNumber(j))
            return xb_error_set(err, file, 0, 0, f->path, "expected %s, found %s", valid,
                                report_json_type_name(j));
        v = j->valuedouble;
        char text[32];
        summary_shortest(text, sizeof text, v);
        if (!(v >= lo && v <= hi))
            return xb_error_set(err, file, 0, 0, f->path, "%s is out of range (%s)", text, valid);
        if (whole && v != floor(v))
            return xb_error_set(err, file, 0, 0, f->path, "expected %s, found %s", valid, text);
    }
    char *dst = (char *)s + f->off;
    if (f->kind == NUM_CONFIG)
        *(int *)dst = (int)v; /* in the int range of the config key */
    else if (f->kind == NUM_WHOLE)
        *(uint64_t *)dst = (uint64_t)v;
    else
        *(double *)dst = v;
    return 0;
}

/* The hash of the report's config as cfg_hash takes it (without experiment.name, output_dir and
 * threads, train.checkpoint_every) and without experiment.seed: the same for every seed of one
 * experiment. A report without a config object gets the hash of nothing. */
static uint64_t cell_key(const cJSON *doc) {
    cJSON *c = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(doc, "config"), 1);
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        return XB_FNV_OFFSET;
    }
    static const char *const DROP[][2] = {{"experiment", "name"},
                                          {"experiment", "output_dir"},
                                          {"experiment", "threads"},
                                          {"experiment", "seed"},
                                          {"train", "checkpoint_every"}};
    for (size_t i = 0; i < XB_ARRAY_LEN(DROP); i++) {
        cJSON *sec = cJSON_GetObjectItemCaseSensitive(c, DROP[i][0]);
        if (cJSON_IsObject(sec)) cJSON_DeleteItemFromObjectCaseSensitive(sec, DROP[i][1]);
    }
    char *text = cJSON_PrintUnformatted(c);
    XB_ASSERT(text);
    const uint64_t h = xb_fnv1a64(XB_FNV_OFFSET, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(c);
    return h;
}

int summary_read(const char *path, ReportSummary *s, XbError *err) {
    cJSON *doc;
    if (report_read(path, &doc, err)) return -1;
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    int bad = want_string(doc, "run_id", path, s->run_id, sizeof s->run_id, err) ||
              want_string(doc, "status", path, s->status, sizeof s->status, err) ||
              want_string(doc, "config.task.name", path, s->task, sizeof s->task, err) ||
              want_string(doc, "config_hash", path, s->hash, sizeof s->hash, err) ||
              want_string(doc, "model.mixer", path, s->mixer, sizeof s->mixer, err) ||
              want_string(doc, "model.mixer_classes", path, s->classes, sizeof s->classes, err);
    for (size_t i = 0; i < XB_ARRAY_LEN(NUM_FIELDS) && !bad; i++)
        bad = want_field(doc, &NUM_FIELDS[i], path, s, err);
    if (!bad) s->cell_key = cell_key(doc);
    cJSON_Delete(doc);
    return bad ? -1 : 0;
}

/* A number; null reads as NaN (a run that did not get that far). */
static int want_number_or_null(const cJSON *doc, const char *key, const char *path, double *out,
                               XbError *err) {
    const cJSON *j = at(doc, key);
    if (!j) return xb_error_set(err, path, 0, 0, key, "missing (expected a number or null)");
    if (cJSON_IsNull(j)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return xb_error_set(err, path, 0, 0, key, "expected a number or null, found %s",
                            report_json_type_name(j));
    *out = j->valuedouble;
    return 0;
}

/* The run, the step and the accuracies of report doc (at path), and its config resolved again. */
static int read_run(const cJSON *doc, const char *path, ReportRun *s, XbError *err) {
    double step = NAN;
    int rc = want_string(doc, "run_id", path, s->run_id, sizeof s->run_id, err) ||
             want_string(doc, "dataset.checksum", path, s->checksum, sizeof s->checksum, err) ||
             want_number_or_null(doc, "training.best_step", path, &step, err) ||
             want_number_or_null(doc, "test.accuracy", path, &s->test_acc, err) ||
             want_number_or_null(doc, "training.best_val_accuracy", path, &s->val_acc, err);
    const cJSON *config = at(doc, "config");
    if (!rc && !config)
        rc = xb_error_set(err, path, 0, 0, "config", "missing (expected an object)");
    if (!rc && !cJSON_IsObject(config))
        rc = xb_error_set(err, path, 0, 0, "config", "expected an object, found %s",
                          report_json_type_name(config));
    if (!rc && strchr(s->run_id, '/'))
        rc = xb_error_set(err, path, 0, 0, "run_id", "'%s' is not a file name", s->run_id);
    if (!rc && isnan(step))
        rc = xb_error_set(err, path, 0, 0, "training.best_step",
                          "is null: the run never evaluated, so it saved no checkpoint");
    if (!rc && (step < 0 || step != floor(step)))
        rc = xb_error_set(err, path, 0, 0, "training.best_step",
                          "expected a training step (a whole number), found %g", step);
    if (rc) return -1;
    s->best_step = (int64_t)step;
    /* the resolved config is JSON, which is YAML: it loads as a config file would. Printed as
     * the report was (cJSON's printer rounds to 15 digits whatever reads back within its
     * tolerance, so a seed of 16 digits would come back another number) */
    char *text = report_json_print(config);
    XB_ASSERT(text);
    rc = cfg_load_string(text, path, NULL, 0, &s->cs, err);
    free(text);
    if (rc) { /* positions in the reprinted text mean nothing: name the key in the report */
        char key[sizeof err->key + 8];
        snprintf(key, sizeof key, "config%s%s", err->key[0] ? "." : "", err->key);
        snprintf(err->key, sizeof err->key, "%.*s", (int)sizeof err->key - 1, key);
        snprintf(err->file, sizeof err->file, "%s", path);
        err->line = err->col = 0;
        return -1;
    }
    if (s->cs.n != 1) {
        cfg_set_free(&s->cs);
        return xb_error_set(err, path, 0, 0, "config",
                            "expands to %d runs (a report's resolved config is one run)", s->cs.n);
    }
    const char *slash = strrchr(path, '/');
    snprintf(s->ckpt, sizeof s->ckpt, "%.*s%s.safetensors", slash ? (int)(slash - path + 1) : 0,
             path, s->run_id);
    return 0;
}

/* The report's record of its checkpoint (run since reports name it): file and hash into s. */
static int read_checkpoint_record(const cJSON *doc, const char *path, ReportRun *s, XbError *err) {
    const cJSON *c = at(doc, "checkpoint");
    int rc = 0;
    if (c && cJSON_IsNull(c)) {
        rc = xb_error_set(err, path, 0, 0, "checkpoint",
                          "is null: the run put no checkpoint beside its report");
    } else if (c) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(c, "file"),
                    *hash = cJSON_GetObjectItemCaseSensitive(c, "fnv1a64");
        if (!cJSON_IsString(file) || !file->valuestring[0] || strchr(file->valuestring, '/'))
            rc = xb_error_set(err, path, 0, 0, "checkpoint.file",
                              "expected a file name beside the report");
        else if (!cJSON_IsString(hash) || strlen(hash->valuestring) != 16 ||
                 strspn(hash->valuestring, "0123456789abcdef") != 16)
            rc = xb_error_set(err, path, 0, 0, "checkpoint.fnv1a64",
                              "expected 16 lowercase hex digits");
        else {
            const char *slash = strrchr(path, '/');
            snprintf(s->ckpt, sizeof s->ckpt, "%.*s%s", slash ? (int)(slash - path + 1) : 0, path,
                     file->valuestring);
            snprintf(s->ckpt_hash, sizeof s->ckpt_hash, "%s", hash->valuestring);
        }
    }
    return rc;
}

int summary_read_run(const char *path, ReportRun *r, XbError *err) {
    memset(r, 0, sizeof *r);
    cJSON *doc;
    if (report_read(path, &doc, err)) return -1;
    int rc = read_run(doc, path, r, err);
    if (!rc && read_checkpoint_record(doc, path, r, err)) {
        cfg_set_free(&r->cs);
        rc = -1;
    }
    cJSON_Delete(doc);
    return rc;
}

_Static_assert(REPORT_PROFILE_MAX >= 2 * PROF_N, "room for each kernel family in each direction");

static double number_at(const cJSON *obj, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

/* The entries of profile prof with time, forward and backward, into p. */
static void profile_entries(const cJSON *prof, ReportProfile *p) {
    const cJSON *f;
    cJSON_ArrayForEach(f, prof) {
        for (int d = 0; d < 2 && cJSON_IsObject(f) && p->n < REPORT_PROFILE_MAX; d++) {
            const double s = number_at(f, d ? "backward_s" : "forward_s");
            if (!(s > 0)) continue;
            ProfileEntry *e = &p->e[p->n++];
            snprintf(e->family, sizeof e->family, "%s", f->string);
            e->backward = d, e->s = s;
        }
    }
}

void summary_read_profile(const char *path, ReportProfile *p) {
    memset(p, 0, sizeof *p);
    cJSON *doc;
    XbError err;
    xb_error_clear(&err);
    if (report_read(path, &doc, &err)) return;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "measured");
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(m, "profile");
    if (cJSON_IsObject(prof)) {
        p->read = 1;
        p->train_s = number_at(m, "train_s");
        p->steps = (long long)number_at(cJSON_GetObjectItemCaseSensitive(doc, "training"), "steps");
        p->other_s = number_at(prof, "other_s");
        p->regions = (long long)number_at(prof, "regions");
        profile_entries(prof, p);
    }
    cJSON_Delete(doc);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void push_path(char ***names, int *n, int *cap, const char *path) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *names = realloc(*names, (size_t)*cap * sizeof **names);
        XB_ASSERT(*names);
    }
    char *p = strdup(path);
    XB_ASSERT(p);
    (*names)[(*n)++] = p;
}

/* Appends the *.json files of dir (but index.json) to *names, sorted, then those of its
 * subdirectories in name order (results/lra-small/TASK/...), down to depth levels below dir. */
static int collect(const char *dir, int depth, char ***names, int *n, int *cap, XbError *err) {
    DIR *d = opendir(dir);
    if (!d)
        return xb_error_set(err, dir, 0, 0, NULL, "cannot read the directory: %s", strerror(errno));
    const int first = *n;
    char **subs = NULL;
    int ns = 0, cs = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.') continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len >= 6 && !strcmp(e->d_name + len - 5, ".json") && strcmp(e->d_name, "index.json"))
            push_path(names, n, cap, path);
        else if (depth > 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            push_path(&subs, &ns, &cs, path);
    }
    closedir(d);
    if (*n > first) qsort(*names + first, (size_t)(*n - first), sizeof **names, by_name);
    if (ns) qsort(subs, (size_t)ns, sizeof *subs, by_name);
    int rc = 0;
    for (int i = 0; i < ns; i++) {
        if (!rc) rc = collect(subs[i], depth - 1, names, n, cap, err);
        free(subs[i]);
    }
    free(subs);
    return rc;
}

/* The reports of dir and of its subdirectories two levels down; an error if there are none. */
static int list_dir(const char *dir, char ***names, int *n, int *cap, XbError *err) {
    const int first = *n;
    if (collect(dir, 2, names, n, cap, err)) return -1;
    if (*n == first)
        return xb_error_set(err, dir, 0, 0, NULL,
                            "no reports in this directory (expected RUN_ID.json files written by "
                            "xformer-bench run)");
    return 0;
}

int summary_load(const char *const *paths, int n, ReportSummary **out, int *count, XbError *err) {
    char **names = NULL;
    int nn = 0, cap = 0, rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        struct stat st;
        if (stat(paths[i], &st)) {
            rc = xb_error_set(err, paths[i], 0, 0, NULL, "cannot read: %s", strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = list_dir(paths[i], &names, &nn, &cap, err);
        } else {
            if (nn == cap) {
                cap = cap ? 2 * cap : 64;
                names = realloc(names, (size_t)cap * sizeof *names);
                XB_ASSERT(names);
            }
            names[nn++] = strdup(paths[i]);
        }
    }
    ReportSummary *s = rc ? NULL : calloc((size_t)(nn ? nn : 1), sizeof *s);
    for (int i = 0; i < nn && !rc; i++) rc = summary_read(names[i], &s[i], err);
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names);
    if (rc) {
        free(s);
        return -1;
    }
    *out = s;
    *count = nn;
    return 0;
}
