/* The indexes beside the run reports (report/index.h): a sweep's, a benchmark's, and bench
 * --allreduce's measurements. */
#include "report/index.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/xassert.h"
#include "report/report.h"

static cJSON *num_or_null(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* An index's first members: the schema's version and its kind. */
static cJSON *index_doc(const char *kind) {
    cJSON *idx = cJSON_CreateObject();
    XB_ASSERT(idx);
    cJSON_AddNumberToObject(idx, "schema_version", XB_REPORT_SCHEMA_VERSION);
    cJSON_AddStringToObject(idx, "kind", kind);
    return idx;
}

/* ---- a sweep's index ---- */

/* The outcome of an exit code (-1: not run). */
static const char *outcome(int code) {
    return code < 0                  ? "not run"
           : code == XB_EXIT_OK      ? "ok"
           : code == XB_EXIT_RUNFAIL ? "failed"
                                     : "bad input";
}

/* The outcome another shard wrote for run r of the index on disk (old_runs), if it names the
 * same run; else NULL. */
static const char *other_outcome(const cJSON *old_runs, int r, const char *run_id) {
    const cJSON *prev = old_runs ? cJSON_GetArrayItem(old_runs, r) : NULL;
    const cJSON *id = prev ? cJSON_GetObjectItemCaseSensitive(prev, "run_id") : NULL;
    const cJSON *out = prev ? cJSON_GetObjectItemCaseSensitive(prev, "outcome") : NULL;
    return cJSON_IsString(id) && !strcmp(id->valuestring, run_id) && cJSON_IsString(out)
               ? out->valuestring
               : NULL;
}

static cJSON *sweep_run(const ConfigSet *cs, int r, int code, const cJSON *old_runs) {
    const ExperimentConfig *c = &cs->runs[r];
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    char rel[1400], h[17];
    if (!strcmp(c->output_dir, cs->runs[0].output_dir))
        snprintf(rel, sizeof rel, "%s.json", c->run_id);
    else
        snprintf(rel, sizeof rel, "%s/%s.json", c->output_dir, c->run_id);
    cJSON_AddStringToObject(o, "run_id", c->run_id);
    cJSON_AddStringToObject(o, "report", rel);
    snprintf(h, sizeof h, "%016llx", (unsigned long long)cfg_hash(c));
    cJSON_AddStringToObject(o, "config_hash", h);
    const char *other = code < 0 ? other_outcome(old_runs, r, c->run_id) : NULL;
    cJSON_AddStringToObject(o, "outcome", other ? other : outcome(code));
    return o;
}

int report_write_sweep_index(const ConfigSet *cs, const int *codes, XbError *err) {
    char path[1200], lock[1200];
    snprintf(path, sizeof path, "%s/index.json", cs->runs[0].output_dir);
    snprintf(lock, sizeof lock, "%s/index.lock", cs->runs[0].output_dir);
    const int fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) flock(fd, LOCK_EX); /* waits for another shard's merge */
    cJSON *old = NULL, *old_runs = NULL;
    XbError ignored;
    xb_error_clear(&ignored);
    if (access(path, F_OK) == 0 && report_read(path, &old, &ignored) == 0) {
        old_runs = cJSON_GetObjectItemCaseSensitive(old, "runs");
        if (!cJSON_IsArray(old_runs) || cJSON_GetArraySize(old_runs) != cs->n) old_runs = NULL;
    }
    cJSON *idx = index_doc("sweep"), *arr = cJSON_CreateArray();
    XB_ASSERT(arr);
    cJSON_AddStringToObject(idx, "config", cs->runs[0].source);
    cJSON_AddItemToObject(idx, "runs", arr);
    for (int r = 0; r < cs->n; r++) cJSON_AddItemToArray(arr, sweep_run(cs, r, codes[r], old_runs));
    const int rc = report_write(path, idx, err);
    cJSON_Delete(idx);
    cJSON_Delete(old);
    if (fd >= 0) close(fd);
    return rc;
}

/* ---- a benchmark's index ---- */

static const BenchPoint *find_ok(const BenchPoint *pt, int n, const char *mixer, int L) {
    for (int i = 0; i < n; i++)
        if (pt[i].L == L && !strcmp(pt[i].mixer, mixer) && !strcmp(pt[i].status, "ok"))
            return &pt[i];
    return NULL;
}

void report_bench_figures(const BenchPoint *pt, int n, int i, BenchFigures *f) {
    const BenchPoint *p = &pt[i], *full = find_ok(pt, n, "full", p->L);
    const double t = p->s.step_s_median;
    f->step_s = t;
    f->tokens_per_s = (double)p->s.batch_size * p->L / t;
    f->gflops_per_s = (double)p->s.flops_step / 1e9 / t;
    f->sgemm_gflops_per_s = p->s.calib_sgemm; /* the point's own calibration (core/calib.h) */
    f->fraction_of_sgemm = f->gflops_per_s / p->s.calib_sgemm;
    f->full_step_s = full ? full->s.step_s_median : NAN;
    f->full_peak_rss = full ? full->s.peak_rss : NAN;
    f->speed_vs_full = full ? f->full_step_s / t : NAN;
    f->memory_vs_full = full ? p->s.peak_rss / f->full_peak_rss : NAN;
}

static cJSON *bench_point(const BenchPoint *pt, int n, int i) {
    const BenchPoint *p = &pt[i];
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    cJSON_AddStringToObject(o, "mixer", p->mixer);
    cJSON_AddNumberToObject(o, "length", p->L);
    cJSON_AddStringToObject(o, "status", p->status);
    cJSON_AddItemToObject(o, "planned_bytes", num_or_null(p->planned ? (double)p->planned : NAN));
    if (strcmp(p->status, "ok")) {
        cJSON_AddStringToObject(o, "reason", p->why);
        return o;
    }
    BenchFigures f;
    report_bench_figures(pt, n, i, &f);
    char report[1100];
    snprintf(report, sizeof report, "%s-%d.json", p->mixer, p->L);
    cJSON_AddStringToObject(o, "report", report);
    cJSON_AddItemToObject(o, "step_s_median", num_or_null(f.step_s));
    cJSON_AddItemToObject(o, "tokens_per_s", num_or_null(f.tokens_per_s));
    cJSON_AddNumberToObject(o, "peak_rss", p->s.peak_rss);
    cJSON_AddNumberToObject(o, "flops_step", (double)p->s.flops_step);
    cJSON_AddItemToObject(o, "gflops_per_s", num_or_null(f.gflops_per_s));
    cJSON_AddItemToObject(o, "sgemm_gflops_per_s", num_or_null(f.sgemm_gflops_per_s));
    cJSON_AddItemToObject(o, "fraction_of_sgemm", num_or_null(f.fraction_of_sgemm));
    cJSON_AddItemToObject(o, "speed_vs_full", num_or_null(f.speed_vs_full));
    cJSON_AddItemToObject(o, "memory_vs_full", num_or_null(f.memory_vs_full));
    return o;
}

int report_write_bench_index(const char *path, const BenchPoint *pt, int n, long long steps,
                             int warmup, XbError *err) {
    cJSON *idx = index_doc("bench"), *arr = cJSON_CreateArray();
    XB_ASSERT(arr);
    cJSON_AddNumberToObject(idx, "steps", (double)steps);
    cJSON_AddNumberToObject(idx, "warmup", warmup);
    cJSON_AddItemToObject(idx, "points", arr);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, bench_point(pt, n, i));
    const int rc = report_write(path, idx, err);
    cJSON_Delete(idx);
    return rc;
}

/* ---- bench --allreduce ---- */

static cJSON *allreduce_point(const AllreducePoint *p, const AllreduceFit *fit) {
    const double model = fit->c + fit->beta * p->x;
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    cJSON_AddNumberToObject(o, "bytes", (double)p->bytes);
    cJSON_AddNumberToObject(o, "median_s", p->median_s);
    cJSON_AddNumberToObject(o, "min_s", p->min_s);
    cJSON_AddNumberToObject(o, "max_s", p->max_s);
    cJSON_AddItemToObject(o, "algbw_bytes_per_s", num_or_null((double)p->bytes / p->median_s));
    cJSON_AddItemToObject(o, "busbw_bytes_per_s", num_or_null(p->x / p->median_s));
    cJSON_AddItemToObject(o, "model_s", num_or_null(model));
    return o;
}

static cJSON *allreduce_fit(const AllreduceFit *f, const char *of) {
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    cJSON_AddStringToObject(o, "model", "T(n) = 2(P-1)*alpha + 2(P-1)/P*n*beta");
    cJSON_AddStringToObject(o, "of", of);
    cJSON_AddStringToObject(o, "method", "least squares on the relative error, alpha, beta >= 0");
    cJSON_AddItemToObject(o, "alpha_s", num_or_null(f->alpha));
    cJSON_AddItemToObject(o, "beta_s_per_byte", num_or_null(f->beta));
    cJSON_AddItemToObject(o, "bandwidth_bytes_per_s",
                          num_or_null(f->beta > 0 ? 1.0 / f->beta : NAN));
    return o;
}

int report_write_allreduce(const char *path, int P, long long repeats, const double load[3],
                           const AllreducePoint *pt, int n, const AllreduceFit *fit,
                           const AllreduceFit *fit_min, XbError *err) {
    cJSON *doc = index_doc("allreduce"), *pts = cJSON_CreateArray();
    XB_ASSERT(pts);
    cJSON_AddNumberToObject(doc, "processes", P);
    cJSON_AddNumberToObject(doc, "repeats", (double)repeats);
    cJSON *la = cJSON_AddArrayToObject(doc, "load_average");
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(la, num_or_null(load[i]));
    cJSON_AddItemToObject(doc, "points", pts);
    for (int k = 0; k < n; k++) cJSON_AddItemToArray(pts, allreduce_point(&pt[k], fit));
    cJSON_AddItemToObject(doc, "fit", allreduce_fit(fit, "median_s"));
    cJSON_AddItemToObject(doc, "fit_min", allreduce_fit(fit_min, "min_s"));
    const int rc = report_write(path, doc, err);
    cJSON_Delete(doc);
    return rc;
}
