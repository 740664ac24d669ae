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
#include "core/error.h"
#include "core/fileio.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "model/encoder.h"
#include "report/report.h"
#include "report/summary.h"
#include "tasks/task.h"

static const char *const USAGE =
    "usage: xformer-bench bench CONFIG [--lengths L1,L2,...] [--mixers M1,M2,...] [--steps N]\n"
    "                          [--warmup N] [--max-memory MIB] [--set KEY=VALUE]... [-o DIR]\n"
    "                          [--threads N] [--quiet]\n\n"
    "Measures training steps of the model that CONFIG describes for every mechanism and length:\n"
    "the median time of a step after the warm-up, tokens/s, the process's peak RSS (each point\n"
    "runs in a child process) and the planned memory, the analytic FLOPs of a step and the\n"
    "GFLOP/s achieved, and speed and memory relative to `full` at the same length. There is no\n"
    "evaluation. Each point writes a report DIR/MIXER-L.json (readable by table and plot); the\n"
    "whole benchmark is summarised in DIR/index.json and printed as a table.\n\n"
    "  --lengths L,...   sequence lengths (model.max_len), default 1024,2048,4096\n"
    "  --mixers M,...    mechanisms, default the config's (`all`: every registered one)\n"
    "  --steps N         training steps per point, default 10\n"
    "  --warmup N        steps left out of the median, default 2\n"
    "  --max-memory MIB  skip a point whose planned memory exceeds MIB, default 4096\n"
    "  --set KEY=VALUE   override a config value (repeatable)\n"
    "  -o, --output DIR  where the reports go, default results/bench\n"
    "  --threads N       threads, 0 = all cores (experiment.threads)\n"
    "  --quiet           no progress lines\n\n"
    "Exit status: 0 every point ran or was skipped by the budget, 2 bad input, 3 a point failed.\n";

typedef struct Point {
    char mixer[64];
    int L;
    const char *status; /* "ok", "skipped" (budget or length), "failed" */
    char why[1400];
    size_t planned;
    ReportSummary s;
    double median;
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
static int summarise(const Point *pt, int n, const char *outdir, long long steps, int warmup) {
    printf("| mechanism | L | s/step (median) | tokens/s | peak RSS MiB | planned MiB | "
           "GFLOP/step | GFLOP/s | speed vs full | memory vs full |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
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
            printf("| %s | %d | %s: %s | | | | | | | |\n", p->mixer, p->L, p->status, p->why);
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
        cJSON_AddItemToObject(o, "speed_vs_full", num_or_null(f ? tf / t : NAN));
        cJSON_AddItemToObject(o, "memory_vs_full",
                              num_or_null(f ? p->s.peak_rss / f->s.peak_rss : NAN));
        cJSON_AddItemToArray(arr, o);
        char sp[32] = "-", mem[32] = "-";
        if (f) {
            snprintf(sp, sizeof sp, "%.2fx", tf / t);
            snprintf(mem, sizeof mem, "%.2fx", p->s.peak_rss / f->s.peak_rss);
        }
        printf("| %s | %d | %.4f | %.0f | %.1f | %.1f | %.2f | %.1f | %s | %s |\n", p->mixer, p->L,
               t, tok, p->s.peak_rss / 1048576.0, (double)p->planned / 1048576.0,
               (double)p->s.flops_step / 1e9, gfs, sp, mem);
    }
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

int cmd_bench(int argc, char **argv) {
    const char *config = NULL, *outdir = "results/bench";
    char lengths_buf[1024] = "1024,2048,4096", mixers_buf[4096] = "";
    long long steps = 10, warmup = 2, max_mib = 4096, threads = -1;
    int quiet = 0;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    XB_ASSERT(sets);
    int n_sets = 0, bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(sets);
            return XB_EXIT_OK;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        const int takes = !strcmp(a, "--lengths") || !strcmp(a, "--mixers") ||
                          !strcmp(a, "--steps") || !strcmp(a, "--warmup") ||
                          !strcmp(a, "--max-memory") || !strcmp(a, "--set") || !strcmp(a, "-o") ||
                          !strcmp(a, "--output") || !strcmp(a, "--threads");
        if (takes && !v) {
            bad = cli_usage_error("bench", "%s needs a value (see --help)", a);
        } else if (takes) {
            i++;
            if (!strcmp(a, "--lengths"))
                snprintf(lengths_buf, sizeof lengths_buf, "%s", v);
            else if (!strcmp(a, "--mixers"))
                snprintf(mixers_buf, sizeof mixers_buf, "%s", v);
            else if (!strcmp(a, "--set"))
                sets[n_sets++] = v;
            else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
                outdir = v;
            else if (!strcmp(a, "--steps") && cli_parse_int(v, 1, 1000000, &steps))
                bad = cli_usage_error("bench",
                                      "--steps: expected an integer in [1, 1000000], got "
                                      "'%s'",
                                      v);
            else if (!strcmp(a, "--warmup") && cli_parse_int(v, 0, 1000000, &warmup))
                bad = cli_usage_error("bench",
                                      "--warmup: expected an integer in [0, 1000000], "
                                      "got '%s'",
                                      v);
            else if (!strcmp(a, "--max-memory") && cli_parse_int(v, 1, 1LL << 40, &max_mib))
                bad = cli_usage_error("bench",
                                      "--max-memory: expected a number of MiB >= 1, got "
                                      "'%s'",
                                      v);
            else if (!strcmp(a, "--threads") && cli_parse_int(v, 0, 1024, &threads))
                bad = cli_usage_error("bench",
                                      "--threads: expected an integer in [0, 1024], got "
                                      "'%s'",
                                      v);
        } else if (a[0] == '-' && a[1]) {
            bad = cli_usage_error("bench", "unknown option '%s' (see --help)", a);
        } else if (!config) {
            config = a;
        } else {
            bad = cli_usage_error("bench", "more than one config file ('%s' and '%s')", config, a);
        }
    }
    if (!bad && !config) bad = cli_usage_error("bench", "expected a CONFIG (see --help)");
    if (!bad && warmup >= steps)
        bad = cli_usage_error("bench", "--warmup %lld leaves no step of --steps %lld to time",
                              warmup, steps);
    int L[64], nl = 0;
    char *lens[64];
    const int nlen = bad ? 0 : split(lengths_buf, lens, 64);
    for (int k = 0; k < nlen && !bad; k++) {
        long long v;
        if (cli_parse_int(lens[k], 2, 1048576, &v))
            bad = cli_usage_error("bench", "--lengths: '%s' is not a length in [2, 1048576]",
                                  lens[k]);
        L[nl++] = (int)v;
    }
    if (!bad && !nl) bad = cli_usage_error("bench", "--lengths: expected a comma-separated list");
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
    rc = summarise(pt, np, outdir, steps, (int)warmup);
    free(pt);
    dataset_free(&ds);
    cfg_set_free(&base);
    free(sets);
    return rc ? rc : failed ? XB_EXIT_RUNFAIL : XB_EXIT_OK;
}
