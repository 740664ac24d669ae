/* xformer-bench bench: the efficiency benchmark (the Long Range Arena's Table 2 and Figure 3):
 * training steps at each length for each mechanism, each point in a child process so that its
 * peak RSS is its own, with no convergence goal. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/timer.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "model/encoder.h"
#include "report/report.h"
#include "report/summary.h"
#include "tasks/task.h"

static const char *const USAGE =
    "usage: xformer-bench bench CONFIG [--lengths L1,L2,...] [--mixers M1,M2,...] [--steps N]\n"
    "                          [--warmup N] [--max-memory MIB] [--set KEY=VALUE]... [-o DIR]\n"
    "                          [--threads N] [--profile] [--quiet]\n"
    "       mpirun -np P xformer-bench bench --allreduce [--sizes S1,S2,...] [--repeats N]\n"
    "                          [-o DIR] [--quiet]\n\n"
    "Measures training steps of the model that CONFIG describes for every mechanism and length:\n"
    "the median time of a step after the warm-up, tokens/s, the process's peak RSS (each point\n"
    "runs in a child process) and the planned memory, the analytic FLOPs of a step and the\n"
    "GFLOP/s achieved, as a percentage of the sgemm GFLOP/s of the point's own calibration\n"
    "(measured.calibration, a probe on the same threads after the steps), and speed and memory\n"
    "relative to `full` at the same length. There is no evaluation. Each point writes a report\n"
    "DIR/MIXER-L.json (readable by table and plot); the whole benchmark is summarised in\n"
    "DIR/index.json and printed as a table.\n\n"
    "  --lengths L,...   sequence lengths (model.max_len), default 1024,2048,4096\n"
    "  --mixers M,...    mechanisms, default the config's (`all`: every registered one)\n"
    "  --steps N         training steps per point, default 10\n"
    "  --warmup N        steps left out of the median, default 2\n"
    "  --max-memory MIB  skip a point whose planned memory exceeds MIB, default 4096\n"
    "  --set KEY=VALUE   override a config value (repeatable)\n"
    "  -o, --output DIR  where the reports go, default results/bench\n"
    "  --threads N       threads, 0 = all cores (experiment.threads)\n"
    "  --profile         after the table, where each point's steps went: the largest entries of\n"
    "                    its report's measured.profile (kernel family and direction) in ms per\n"
    "                    step and % of the step, and the time in no kernel (core/profile.h);\n"
    "                    means over all --steps steps, the warm-up included\n"
    "  --quiet           no progress lines\n\n"
    "With --allreduce (no CONFIG; under mpirun or srun with 2 or more processes) it times the\n"
    "gradient all-reduce of data-parallel training instead: an in-place sum of a float32 buffer\n"
    "over the processes, for each size. Each call follows a barrier; a call's time is that of\n"
    "the slowest process, and a size's time the median of --repeats calls after one untimed.\n"
    "It prints a table and writes DIR/allreduce.json, with the least-squares fit (on relative\n"
    "error) of the ring all-reduce's cost T(n) = 2(P-1)*alpha + 2(P-1)/P*n*beta: alpha the\n"
    "latency of one of its 2(P-1) steps, beta seconds per byte (scripts/scaling-model.py).\n\n"
    "  --sizes S,...     buffer sizes in bytes, a multiple of 4, K M G for KiB MiB GiB;\n"
    "                    default 4K,16K,64K,256K,1M,4M,16M,64M,256M\n"
    "  --repeats N       timed calls per size, default 20\n\n"
    "Exit status: 0 every point ran or was skipped by the budget, 2 bad input, 3 a point failed.\n";

enum { PROFILE_TOP = 8, PROFILE_MAX = 64 };

/* One entry of a report's measured.profile: a kernel family in one direction. */
typedef struct ProfileEntry {
    char family[48];
    int backward;
    double s; /* seconds over all training steps */
} ProfileEntry;

/* A point's profile, read back from its report. */
typedef struct PointProfile {
    int read; /* 1: the report was read (the fields below are valid) */
    int n;
    ProfileEntry e[PROFILE_MAX];
    double other_s, train_s; /* not in any kernel; all training steps */
    long long regions, steps;
} PointProfile;

typedef struct Point {
    char mixer[64];
    int L;
    const char *status; /* "ok", "skipped" (budget or length), "failed" */
    char why[1400];
    size_t planned;
    ReportSummary s;
    double median;
    PointProfile prof; /* bench --profile */
} Point;

/* Splits a comma list into its items (pointers into buf, which is modified). */
static int split(char *buf, char **items, int max) {
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p && n < max;
         p = strtok_r(NULL, ",", &save))
        items[n++] = p;
    return n;
}

/* The config of one point: the user's overrides, then the mechanism, length, steps and name. */
static int point_config(const char *config, const char *const *sets, int n_sets, const char *mixer,
                        int L, long long steps, const char *outdir, ConfigSet *cs, XbError *err) {
    const char **all = malloc(((size_t)n_sets + 6) * sizeof *all);
    XB_ASSERT(all);
    char a[5][1200];
    snprintf(a[0], sizeof a[0], "model.mixer.name=%s", mixer);
    snprintf(a[1], sizeof a[1], "model.max_len=%d", L);
    snprintf(a[2], sizeof a[2], "train.steps=%lld", steps);
    snprintf(a[3], sizeof a[3], "experiment.name=%s-%d", mixer, L);
    snprintf(a[4], sizeof a[4], "experiment.output_dir=%s", outdir);
    int n = 0;
    /* the mechanism first, so that the user's mechanism options apply to it */
    all[n++] = a[0];
    for (int i = 0; i < n_sets; i++) all[n++] = sets[i];
    for (int i = 1; i < 5; i++) all[n++] = a[i];
    const int rc = cfg_load(config, all, n, cs, err);
    free((void *)all);
    return rc;
}

static double number_at(const cJSON *obj, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

/* Reads measured.profile, measured.train_s and training.steps of the report at path into *pp
 * (pp->read stays 0 when the report has no profile). */
static void read_profile(const char *path, PointProfile *pp) {
    memset(pp, 0, sizeof *pp);
    cJSON *doc;
    XbError err;
    xb_error_clear(&err);
    if (report_read(path, &doc, &err)) return;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "measured");
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(m, "profile");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(doc, "training");
    if (cJSON_IsObject(prof)) {
        pp->read = 1;
        pp->train_s = number_at(m, "train_s");
        pp->steps = (long long)number_at(tr, "steps");
        pp->other_s = number_at(prof, "other_s");
        pp->regions = (long long)number_at(prof, "regions");
        const cJSON *f;
        cJSON_ArrayForEach(f, prof) {
            for (int d = 0; d < 2 && cJSON_IsObject(f) && pp->n < PROFILE_MAX; d++) {
                const double s = number_at(f, d ? "backward_s" : "forward_s");
                if (!(s > 0)) continue;
                ProfileEntry *e = &pp->e[pp->n++];
                snprintf(e->family, sizeof e->family, "%s", f->string);
                e->backward = d, e->s = s;
            }
        }
    }
    cJSON_Delete(doc);
}

/* Largest first; equal times by family name, forward first. */
static int cmp_entry(const void *a, const void *b) {
    const ProfileEntry *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    const int c = strcmp(x->family, y->family);
    return c ? c : x->backward - y->backward;
}

/* Prints where a point's training steps went: the PROFILE_TOP largest entries of its profile in
 * ms per step and percent of the step, the rest summed, and the time in no kernel. */
static void print_profile(const Point *p) {
    PointProfile pp = p->prof;
    if (!pp.read || pp.regions <= 0 || pp.steps <= 0 || !(pp.train_s > 0)) {
        printf("\nprofile of %s at L = %d: none recorded (XB_PROFILE=0 turns it off)\n", p->mixer,
               p->L);
        return;
    }
    qsort(pp.e, (size_t)pp.n, sizeof *pp.e, cmp_entry);
    const double per = 1e3 / (double)pp.steps, pct = 100.0 / pp.train_s;
    printf("\nprofile of %s at L = %d: %lld steps, %.3f ms per step (mean), %lld timed regions "
           "per step\n",
           p->mixer, p->L, pp.steps, pp.train_s * per, pp.regions / pp.steps);
    printf("  %-20s %-9s %11s %10s\n", "kernel family", "direction", "ms/step", "% of step");
    double rest = 0.0;
    for (int i = 0; i < pp.n; i++) {
        if (i >= PROFILE_TOP) {
            rest += pp.e[i].s;
            continue;
        }
        printf("  %-20s %-9s %11.3f %10.1f\n", pp.e[i].family,
               pp.e[i].backward ? "backward" : "forward", pp.e[i].s * per, pp.e[i].s * pct);
    }
    if (pp.n > PROFILE_TOP) {
        char label[48];
        snprintf(label, sizeof label, "%d more entries", pp.n - PROFILE_TOP);
        printf("  %-30s %11.3f %10.1f\n", label, rest * per, rest * pct);
    }
    printf("  %-30s %11.3f %10.1f\n", "not in any kernel", pp.other_s * per, pp.other_s * pct);
}

/* Runs one point in a child process; fills p from its report. */
static void run_point(Point *p, const ExperimentConfig *cfg, const Dataset *ds, int warmup,
                      int quiet) {
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        const CliRun how = {.quiet = quiet, .silent = 1, .no_eval = 1, .time_warmup = warmup};
        _exit(cli_run_loaded(cfg, ds, &how));
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        p->status = "failed";
        snprintf(p->why, sizeof p->why, "%s",
                 pid < 0           ? "cannot start a process"
                 : WIFSIGNALED(st) ? "the process was killed"
                                   : "the run failed (see above)");
        return;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.json", cfg->output_dir, cfg->run_id);
    XbError err;
    xb_error_clear(&err);
    if (summary_read(path, &p->s, &err)) {
        p->status = "failed";
        xb_error_format(&err, p->why, sizeof p->why);
        return;
    }
    p->median = p->s.step_s_median;
    p->status = "ok";
    read_profile(path, &p->prof);
}

static const Point *find(const Point *pt, int n, const char *mixer, int L) {
    for (int i = 0; i < n; i++)
        if (pt[i].L == L && !strcmp(pt[i].mixer, mixer) && !strcmp(pt[i].status, "ok"))
            return &pt[i];
    return NULL;
}

static cJSON *num_or_null(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* Prints the table and writes DIR/index.json. */
static int summarise(const Point *pt, int n, const char *outdir, long long steps, int warmup,
                     int profile) {
    printf("| mechanism | L | s/step (median) | tokens/s | peak RSS MiB | planned MiB | "
           "GFLOP/step | GFLOP/s | %% of sgemm | speed vs full | memory vs full |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    cJSON *idx = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    XB_ASSERT(idx && arr);
    cJSON_AddNumberToObject(idx, "schema_version", XB_REPORT_SCHEMA_VERSION);
    cJSON_AddStringToObject(idx, "kind", "bench");
    cJSON_AddNumberToObject(idx, "steps", (double)steps);
    cJSON_AddNumberToObject(idx, "warmup", warmup);
    cJSON_AddItemToObject(idx, "points", arr);
    for (int i = 0; i < n; i++) {
        const Point *p = &pt[i];
        cJSON *o = cJSON_CreateObject();
        XB_ASSERT(o);
        cJSON_AddStringToObject(o, "mixer", p->mixer);
        cJSON_AddNumberToObject(o, "length", p->L);
        cJSON_AddStringToObject(o, "status", p->status);
        cJSON_AddItemToObject(o, "planned_bytes",
                              num_or_null(p->planned ? (double)p->planned : NAN));
        if (strcmp(p->status, "ok")) {
            cJSON_AddStringToObject(o, "reason", p->why);
            cJSON_AddItemToArray(arr, o);
            printf("| %s | %d | %s: %s | | | | | | | | |\n", p->mixer, p->L, p->status, p->why);
            continue;
        }
        const Point *f = find(pt, n, "full", p->L);
        const double t = p->median, tf = f ? f->median : NAN;
        const double gfs = (double)p->s.flops_step / 1e9 / t;
        const double tok = (double)p->s.batch_size * p->L / t;
        char report[1100];
        snprintf(report, sizeof report, "%s-%d.json", p->mixer, p->L);
        cJSON_AddStringToObject(o, "report", report);
        cJSON_AddItemToObject(o, "step_s_median", num_or_null(t));
        cJSON_AddItemToObject(o, "tokens_per_s", num_or_null(tok));
        cJSON_AddNumberToObject(o, "peak_rss", p->s.peak_rss);
        cJSON_AddNumberToObject(o, "flops_step", (double)p->s.flops_step);
        cJSON_AddItemToObject(o, "gflops_per_s", num_or_null(gfs));
        /* against the sgemm of the point's own calibration (core/calib.h) */
        const double frac = gfs / p->s.calib_sgemm;
        cJSON_AddItemToObject(o, "sgemm_gflops_per_s", num_or_null(p->s.calib_sgemm));
        cJSON_AddItemToObject(o, "fraction_of_sgemm", num_or_null(frac));
        cJSON_AddItemToObject(o, "speed_vs_full", num_or_null(f ? tf / t : NAN));
        cJSON_AddItemToObject(o, "memory_vs_full",
                              num_or_null(f ? p->s.peak_rss / f->s.peak_rss : NAN));
        cJSON_AddItemToArray(arr, o);
        char sp[32] = "-", mem[32] = "-", fr[32] = "-";
        if (isfinite(frac)) snprintf(fr, sizeof fr, "%.1f", 100.0 * frac);
        if (f) {
            snprintf(sp, sizeof sp, "%.2fx", tf / t);
            snprintf(mem, sizeof mem, "%.2fx", p->s.peak_rss / f->s.peak_rss);
        }
        printf("| %s | %d | %.4f | %.0f | %.1f | %.1f | %.2f | %.1f | %s | %s | %s |\n", p->mixer,
               p->L, t, tok, p->s.peak_rss / 1048576.0, (double)p->planned / 1048576.0,
               (double)p->s.flops_step / 1e9, gfs, fr, sp, mem);
    }
    for (int i = 0; i < n && profile; i++)
        if (!strcmp(pt[i].status, "ok")) print_profile(&pt[i]);
    char path[1200];
    snprintf(path, sizeof path, "%s/index.json", outdir);
    XbError err;
    xb_error_clear(&err);
    const int rc = report_write(path, idx, &err);
    cJSON_Delete(idx);
    if (rc) return print_error(&err);
    printf("\n%d points -> %s\n", n, path);
    return XB_EXIT_OK;
}

/* ---- bench --allreduce: the cost of the gradient all-reduce ---- */

/* Usage errors are the same on every process of a group (same arguments): rank 0 says them. */
#define BENCH_USAGE(...)                                                                           \
    (dist_world_rank() == 0 ? cli_usage_error("bench", __VA_ARGS__) : XB_EXIT_USAGE)

enum { AR_MAX_SIZES = 64 };

/* Parses "4096", "4K", "16M", "1G" (KiB, MiB, GiB) into bytes; 0 on success. */
static int parse_size(const char *s, size_t *out) {
    long long v;
    char num[32];
    const size_t n = strlen(s);
    if (!n || n >= sizeof num) return -1;
    memcpy(num, s, n + 1);
    size_t scale = 1;
    const char last = num[n - 1];
    if (last == 'K' || last == 'M' || last == 'G') {
        scale = last == 'K' ? (size_t)1 << 10 : last == 'M' ? (size_t)1 << 20 : (size_t)1 << 30;
        num[n - 1] = '\0';
    }
    if (cli_parse_int(num, 1, 1LL << 31, &v)) return -1;
    const size_t bytes = (size_t)v * scale;
    if (bytes % sizeof(float) || bytes > (size_t)1 << 31) return -1;
    *out = bytes;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The ring all-reduce's cost T(n) = c + b x with x = 2(P-1)/P n and c = 2(P-1) alpha, fitted by
 * least squares on the relative error (weights 1/T^2, so that microseconds at 4 KiB count as
 * much as a second at 256 MiB), with c, b >= 0: when the free fit makes one negative, it is fitted
 * again with that one at 0. Returns the number of parameters fitted (0: fewer than two sizes). */
static int fit_ring(const double *x, const double *t, int n, double *c, double *b) {
    double s0 = 0, s1 = 0, s2 = 0, sy = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        const double w = 1.0 / (t[i] * t[i]);
        s0 += w, s1 += w * x[i], s2 += w * x[i] * x[i], sy += w * t[i], sxy += w * x[i] * t[i];
    }
    const double det = s0 * s2 - s1 * s1;
    *c = NAN, *b = NAN;
    if (n < 2 || !(det > 0)) return 0;
    *c = (s2 * sy - s1 * sxy) / det;
    *b = (s0 * sxy - s1 * sy) / det;
    if (*c < 0) *c = 0, *b = sxy / s2;
    if (*b < 0) *b = 0, *c = sy / s0;
    return 2;
}

static int bench_allreduce(const char *sizes_arg, long long repeats, const char *outdir,
                           int quiet) {
    const int P = dist_world_size(), lead = dist_world_rank() == 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", sizes_arg);
    char *items[AR_MAX_SIZES + 1];
    const int ns = split(buf, items, AR_MAX_SIZES + 1);
    if (ns == 0) return BENCH_USAGE("--sizes: expected a comma-separated list");
    if (ns > AR_MAX_SIZES) return BENCH_USAGE("--sizes: at most %d sizes", AR_MAX_SIZES);
    size_t bytes[AR_MAX_SIZES], largest = 0;
    for (int k = 0; k < ns; k++) {
        if (parse_size(items[k], &bytes[k]))
            return BENCH_USAGE("--sizes: '%s' is not a buffer size (bytes, a multiple of 4 from 4 "
                               "to 2G; K, M, G for KiB, MiB, GiB)",
                               items[k]);
        if (bytes[k] > largest) largest = bytes[k];
    }
    if (!dist_available())
        return BENCH_USAGE("--allreduce needs a build with MPI (libopenmpi-dev; meson setup "
                           "-Dmpi=enabled)");
    if (P < 2)
        return BENCH_USAGE("--allreduce times a collective between processes: start it under "
                           "mpirun or srun with 2 or more (e.g. mpirun -np 2 xformer-bench bench "
                           "--allreduce)");
    XbError err;
    xb_error_clear(&err);
    int64_t rc = lead && fileio_probe_dir(outdir, &err) ? print_error(&err) : 0;
    float *data = rc ? NULL : calloc(largest / sizeof(float), sizeof(float)); /* zeros stay 0 */
    if (!rc && !data) {
        if (lead) fprintf(stderr, "xformer-bench bench: cannot allocate %zu bytes\n", largest);
        rc = XB_EXIT_RUNFAIL;
    }
    if (dist_max_i64(rc)) { /* any process that cannot go on stops them all */
        free(data);
        return rc ? (int)rc : XB_EXIT_RUNFAIL;
    }
    const int R = (int)repeats;
    double *times = malloc((size_t)P * R * sizeof *times), *call = malloc(R * sizeof *call);
    double med[AR_MAX_SIZES], lo[AR_MAX_SIZES], hi[AR_MAX_SIZES], x[AR_MAX_SIZES];
    XB_ASSERT(times && call);
    for (int k = 0; k < ns; k++) {
        const size_t n = bytes[k] / sizeof(float);
        if (lead && !quiet) fprintf(stderr, "bench: all-reduce of %zu bytes\n", bytes[k]);
        dist_barrier();
        dist_allreduce_f32(data, n); /* untimed: first touch, the library's own buffers */
        memset(times, 0, (size_t)P * R * sizeof *times);
        for (int r = 0; r < R; r++) {
            dist_barrier();
            const double t0 = timer_now();
            dist_allreduce_f32(data, n);
            times[(size_t)dist_world_rank() * R + r] = timer_now() - t0;
        }
        dist_allreduce_f64(times, (size_t)P * R); /* every process's times, everywhere */
        for (int r = 0; r < R; r++) {
            call[r] = 0;
            for (int q = 0; q < P; q++) call[r] = fmax(call[r], times[(size_t)q * R + r]);
        }
        qsort(call, R, sizeof *call, cmp_double);
        med[k] = R % 2 ? call[R / 2] : 0.5 * (call[R / 2 - 1] + call[R / 2]);
        lo[k] = call[0], hi[k] = call[R - 1];
        x[k] = 2.0 * (P - 1) / P * (double)bytes[k];
    }
    free(data);
    free(times);
    free(call);
    if (!lead) return XB_EXIT_OK;

    /* the fit of the medians (this machine as it was), and of the fastest calls (the closest
     * to an idle machine when other processes share the cores) */
    double c, beta, c_min, beta_min;
    const int fitted = fit_ring(x, med, ns, &c, &beta);
    fit_ring(x, lo, ns, &c_min, &beta_min);
    const double alpha = c / (2.0 * (P - 1)), alpha_min = c_min / (2.0 * (P - 1));
    double load[3] = {NAN, NAN, NAN};
    const int nload = getloadavg(load, 3);
    printf("all-reduce of float32 over %d processes, median of %lld calls (load average %.2f)\n\n",
           P, repeats, nload > 0 ? load[0] : NAN);
    printf("| bytes | median s | min s | max s | algbw GB/s | busbw GB/s | model s | "
           "median / model |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    cJSON *doc = cJSON_CreateObject(), *pts = cJSON_CreateArray(), *fit = cJSON_CreateObject();
    XB_ASSERT(doc && pts && fit);
    cJSON_AddNumberToObject(doc, "schema_version", XB_REPORT_SCHEMA_VERSION);
    cJSON_AddStringToObject(doc, "kind", "allreduce");
    cJSON_AddNumberToObject(doc, "processes", P);
    cJSON_AddNumberToObject(doc, "repeats", (double)repeats);
    cJSON *la = cJSON_AddArrayToObject(doc, "load_average");
    for (int i = 0; i < 3; i++) cJSON_AddItemToArray(la, num_or_null(nload > i ? load[i] : NAN));
    cJSON_AddItemToObject(doc, "points", pts);
    for (int k = 0; k < ns; k++) {
        const double model = c + beta * x[k];
        const double algbw = (double)bytes[k] / med[k], busbw = x[k] / med[k];
        cJSON *o = cJSON_CreateObject();
        XB_ASSERT(o);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes[k]);
        cJSON_AddNumberToObject(o, "median_s", med[k]);
        cJSON_AddNumberToObject(o, "min_s", lo[k]);
        cJSON_AddNumberToObject(o, "max_s", hi[k]);
        cJSON_AddItemToObject(o, "algbw_bytes_per_s", num_or_null(algbw));
        cJSON_AddItemToObject(o, "busbw_bytes_per_s", num_or_null(busbw));
        cJSON_AddItemToObject(o, "model_s", num_or_null(model));
        cJSON_AddItemToArray(pts, o);
        printf("| %zu | %.3e | %.3e | %.3e | %.3f | %.3f | %.3e | %.2f |\n", bytes[k], med[k],
               lo[k], hi[k], algbw / 1e9, busbw / 1e9, model, med[k] / model);
    }
    cJSON *fit_min = cJSON_CreateObject();
    XB_ASSERT(fit_min);
    const struct {
        cJSON *o;
        const char *of;
        double alpha, beta;
    } fits[2] = {{fit, "median_s", alpha, beta}, {fit_min, "min_s", alpha_min, beta_min}};
    for (int f = 0; f < 2; f++) {
        cJSON_AddStringToObject(fits[f].o, "model", "T(n) = 2(P-1)*alpha + 2(P-1)/P*n*beta");
        cJSON_AddStringToObject(fits[f].o, "of", fits[f].of);
        cJSON_AddStringToObject(fits[f].o, "method",
                                "least squares on the relative error, alpha, "
                                "beta >= 0");
        cJSON_AddItemToObject(fits[f].o, "alpha_s", num_or_null(fitted ? fits[f].alpha : NAN));
        cJSON_AddItemToObject(fits[f].o, "beta_s_per_byte",
                              num_or_null(fitted ? fits[f].beta : NAN));
        cJSON_AddItemToObject(fits[f].o, "bandwidth_bytes_per_s",
                              num_or_null(fitted && fits[f].beta > 0 ? 1.0 / fits[f].beta : NAN));
        if (fitted)
            printf("%sfit of the %s: alpha = %.3e s (latency of a step), beta = %.3e s/byte "
                   "(%.3f GB/s)\n",
                   f ? "" : "\n", f ? "minima" : "medians", fits[f].alpha, fits[f].beta,
                   fits[f].beta > 0 ? 1e-9 / fits[f].beta : INFINITY);
    }
    if (!fitted) printf("\nno fit: it needs two sizes or more\n");
    cJSON_AddItemToObject(doc, "fit", fit);
    cJSON_AddItemToObject(doc, "fit_min", fit_min);
    char path[1200];
    snprintf(path, sizeof path, "%s/allreduce.json", outdir);
    const int w = report_write(path, doc, &err);
    cJSON_Delete(doc);
    if (w) return print_error(&err);
    printf("-> %s\n", path);
    return XB_EXIT_OK;
}

int cmd_bench(int argc, char **argv) {
    const char *config = NULL, *outdir = "results/bench";
    const char *point_opt = NULL, *ar_opt = NULL; /* the first option of each mode given */
    char lengths_buf[1024] = "1024,2048,4096", mixers_buf[4096] = "";
    char sizes_buf[1024] = "4K,16K,64K,256K,1M,4M,16M,64M,256M";
    long long steps = 10, warmup = 2, max_mib = 4096, threads = -1, repeats = 20;
    int quiet = 0, allreduce = 0, profile = 0;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    XB_ASSERT(sets);
    int n_sets = 0, bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (dist_world_rank() == 0) fputs(USAGE, stdout);
            free(sets);
            return XB_EXIT_OK;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "--allreduce")) {
            allreduce = 1;
            continue;
        }
        if (!strcmp(a, "--profile")) {
            profile = 1;
            if (!point_opt) point_opt = a;
            continue;
        }
        const int takes = !strcmp(a, "--lengths") || !strcmp(a, "--mixers") ||
                          !strcmp(a, "--steps") || !strcmp(a, "--warmup") ||
                          !strcmp(a, "--max-memory") || !strcmp(a, "--set") || !strcmp(a, "-o") ||
                          !strcmp(a, "--output") || !strcmp(a, "--threads") ||
                          !strcmp(a, "--sizes") || !strcmp(a, "--repeats");
        const int ar = !strcmp(a, "--sizes") || !strcmp(a, "--repeats");
        if (takes && !ar && a[1] != 'o' && strcmp(a, "--output") && !point_opt) point_opt = a;
        if (ar && !ar_opt) ar_opt = a;
        if (takes && !v) {
            bad = BENCH_USAGE("%s needs a value (see --help)", a);
        } else if (takes) {
            i++;
            if (!strcmp(a, "--lengths"))
                snprintf(lengths_buf, sizeof lengths_buf, "%s", v);
            else if (!strcmp(a, "--mixers"))
                snprintf(mixers_buf, sizeof mixers_buf, "%s", v);
            else if (!strcmp(a, "--sizes"))
                snprintf(sizes_buf, sizeof sizes_buf, "%s", v);
            else if (!strcmp(a, "--set"))
                sets[n_sets++] = v;
            else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
                outdir = v;
            else if (!strcmp(a, "--steps") && cli_parse_int(v, 1, 1000000, &steps))
                bad = BENCH_USAGE("--steps: expected an integer in [1, 1000000], got '%s'", v);
            else if (!strcmp(a, "--warmup") && cli_parse_int(v, 0, 1000000, &warmup))
                bad = BENCH_USAGE("--warmup: expected an integer in [0, 1000000], got '%s'", v);
            else if (!strcmp(a, "--max-memory") && cli_parse_int(v, 1, 1LL << 40, &max_mib))
                bad = BENCH_USAGE("--max-memory: expected a number of MiB >= 1, got '%s'", v);
            else if (!strcmp(a, "--threads") && cli_parse_int(v, 0, 1024, &threads))
                bad = BENCH_USAGE("--threads: expected an integer in [0, 1024], got '%s'", v);
            else if (!strcmp(a, "--repeats") && cli_parse_int(v, 1, 100000, &repeats))
                bad = BENCH_USAGE("--repeats: expected an integer in [1, 100000], got '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            bad = BENCH_USAGE("unknown option '%s' (see --help)", a);
        } else if (!config) {
            config = a;
        } else {
            bad = BENCH_USAGE("more than one config file ('%s' and '%s')", config, a);
        }
    }
    if (!bad && allreduce) {
        free(sets);
        if (config)
            return BENCH_USAGE("--allreduce takes no CONFIG (got '%s'; see --help)", config);
        if (point_opt)
            return BENCH_USAGE("%s does not apply to --allreduce (see --help)", point_opt);
        return bench_allreduce(sizes_buf, repeats, outdir, quiet);
    }
    if (!bad && ar_opt) bad = BENCH_USAGE("%s applies only to --allreduce (see --help)", ar_opt);
    if (!bad && dist_world_size() > 1) /* each point forks a child: one process times one point */
        bad = BENCH_USAGE("under mpirun only --allreduce applies; bench CONFIG times each point in "
                          "a process of its own (run it without mpirun)");
    if (!bad && !config) bad = BENCH_USAGE("expected a CONFIG (see --help)");
    if (!bad && warmup >= steps)
        bad = BENCH_USAGE("--warmup %lld leaves no step of --steps %lld to time", warmup, steps);
    int L[64], nl = 0;
    char *lens[64];
    const int nlen = bad ? 0 : split(lengths_buf, lens, 64);
    for (int k = 0; k < nlen && !bad; k++) {
        long long v;
        if (cli_parse_int(lens[k], 2, 1048576, &v))
            bad = BENCH_USAGE("--lengths: '%s' is not a length in [2, 1048576]", lens[k]);
        L[nl++] = (int)v;
    }
    if (!bad && !nl) bad = BENCH_USAGE("--lengths: expected a comma-separated list");
    if (bad) {
        free(sets);
        return XB_EXIT_USAGE;
    }
    /* the base config: errors in it or in the overrides stop here */
    ConfigSet base;
    XbError err;
    xb_error_clear(&err);
    if (cfg_load(config, sets, n_sets, &base, &err)) {
        free(sets);
        return print_error(&err);
    }
    if (base.n != 1) {
        cfg_set_free(&base);
        free(sets);
        return cli_usage_error("bench",
                               "%s has a sweep of %d runs; bench varies the mechanism "
                               "and the length itself (remove the sweep: section)",
                               config, base.n);
    }
    char *mix[128];
    int nm = 0;
    char all_buf[4096] = "";
    if (!mixers_buf[0])
        snprintf(mixers_buf, sizeof mixers_buf, "%s", mixer_get(base.runs[0].mixer_index)->name);
    if (!strcmp(mixers_buf, "all")) {
        for (int i = 0; i < mixer_count(); i++)
            snprintf(all_buf + strlen(all_buf), sizeof all_buf - strlen(all_buf), "%s%s",
                     i ? "," : "", mixer_get(i)->name);
        snprintf(mixers_buf, sizeof mixers_buf, "%s", all_buf);
    }
    nm = split(mixers_buf, mix, 128);
    for (int k = 0; k < nm; k++)
        if (mixer_find(mix[k]) < 0) {
            cfg_set_free(&base);
            free(sets);
            return cli_usage_error("bench",
                                   "--mixers: unknown mechanism '%s' (see xformer-bench "
                                   "list mechanisms)",
                                   mix[k]);
        }
    if (threads >= 0) base.runs[0].threads = (int)threads;
    cli_set_threads(&base.runs[0]);
    Dataset ds;
    int rc = cli_load_dataset(&base.runs[0], &ds, quiet, NULL, NULL, 0);
    if (rc) {
        cfg_set_free(&base);
        free(sets);
        return rc;
    }
    Point *pt = calloc((size_t)nm * nl, sizeof *pt);
    XB_ASSERT(pt);
    int np = 0, failed = 0;
    for (int k = 0; k < nm; k++)
        for (int j = 0; j < nl; j++) {
            Point *p = &pt[np++];
            snprintf(p->mixer, sizeof p->mixer, "%s", mix[k]);
            p->L = L[j];
            ConfigSet cs;
            xb_error_clear(&err);
            if (point_config(config, sets, n_sets, mix[k], L[j], steps, outdir, &cs, &err)) {
                /* e.g. a mechanism that cannot take this length */
                p->status = "skipped";
                snprintf(p->why, sizeof p->why, "%s%s%s", err.key, err.key[0] ? ": " : "", err.msg);
                continue;
            }
            ExperimentConfig *c = &cs.runs[0];
            c->threads = base.runs[0].threads;
            p->planned = encoder_planned_bytes(c, ds.vocab_size, ds.n_classes, ds.pairs);
            if (p->planned > (size_t)max_mib << 20) {
                p->status = "skipped";
                snprintf(p->why, sizeof p->why, "needs %.0f MiB planned, above --max-memory %lld",
                         (double)p->planned / 1048576.0, max_mib);
            } else {
                if (!quiet) fprintf(stderr, "bench: %s at L = %d\n", mix[k], L[j]);
                run_point(p, c, &ds, (int)warmup, 1);
                failed += !strcmp(p->status, "failed");
            }
            cfg_set_free(&cs);
        }
    rc = summarise(pt, np, outdir, steps, (int)warmup, profile);
    free(pt);
    dataset_free(&ds);
    cfg_set_free(&base);
    free(sets);
    return rc ? rc : failed ? XB_EXIT_RUNFAIL : XB_EXIT_OK;
}
