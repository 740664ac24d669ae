#include "report/summary.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* A number; with nullable, null reads as NaN (a run that did not get that far). */
static int want_number(const cJSON *doc, const char *path, const char *file, int nullable,
                       double *out, XbError *err) {
    const cJSON *j = at(doc, path);
    if (!j)
        return xb_error_set(err, file, 0, 0, path, "missing (expected a number%s)",
                            nullable ? " or null" : "");
    if (nullable && cJSON_IsNull(j)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0))
        return xb_error_set(err, file, 0, 0, path, "expected a non-negative number, found %s",
                            cJSON_IsNumber(j) ? "a negative number" : report_json_type_name(j));
    *out = j->valuedouble;
    return 0;
}

static int want_count(const cJSON *doc, const char *path, const char *file, uint64_t *out,
                      XbError *err) {
    double d;
    if (want_number(doc, path, file, 0, &d, err)) return -1;
    if (d != floor(d) || d > 9007199254740992.0)
        return xb_error_set(err, file, 0, 0, path, "expected a whole number, found %.17g", d);
    *out = (uint64_t)d;
    return 0;
}

int summary_read(const char *path, ReportSummary *s, XbError *err) {
    cJSON *doc;
    if (report_read(path, &doc, err)) return -1;
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    double d[2];
    const int bad =
        want_string(doc, "run_id", path, s->run_id, sizeof s->run_id, err) ||
        want_string(doc, "status", path, s->status, sizeof s->status, err) ||
        want_string(doc, "config.task.name", path, s->task, sizeof s->task, err) ||
        want_string(doc, "config_hash", path, s->hash, sizeof s->hash, err) ||
        want_string(doc, "model.mixer", path, s->mixer, sizeof s->mixer, err) ||
        want_string(doc, "model.mixer_classes", path, s->classes, sizeof s->classes, err) ||
        want_number(doc, "config.model.max_len", path, 0, &d[0], err) ||
        want_number(doc, "config.train.batch_size", path, 0, &d[1], err) ||
        want_number(doc, "test.accuracy", path, 1, &s->test_acc, err) ||
        want_number(doc, "test.majority_baseline", path, 1, &s->baseline, err) ||
        want_number(doc, "measured.steps_per_s", path, 0, &s->steps_per_s, err) ||
        want_number(doc, "measured.tokens_per_s", path, 0, &s->tokens_per_s, err) ||
        /* absent from reports written before it existed */
        (at(doc, "measured.step_s_median")
             ? want_number(doc, "measured.step_s_median", path, 1, &s->step_s_median, err)
             : (s->step_s_median = NAN, 0)) ||
        want_number(doc, "measured.wall_s", path, 0, &s->wall_s, err) ||
        want_number(doc, "measured.peak_rss", path, 0, &s->peak_rss, err) ||
        want_number(doc, "memory.planned_total", path, 0, &s->planned, err) ||
        want_count(doc, "flops.analytic_train_step", path, &s->flops_step, err) ||
        want_count(doc, "flops.counted_train_step", path, &s->flops_counted, err) ||
        want_count(doc, "model.parameters", path, &s->params, err);
    cJSON_Delete(doc);
    if (bad) return -1;
    s->max_len = (int)d[0];
    s->batch_size = (int)d[1];
    return 0;
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
