/* xformer-bench bench: the efficiency benchmark (the Long Range Arena's Table 2 and Figure 3):
 * training steps at each length for each mechanism, each point in a child process so that its
 * peak RSS is its own, with no convergence goal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "config/config.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "model/encoder.h"
#include "report/index.h"
#include "report/summary.h"
#include "tasks/task.h"

/* Usage errors are the same on every process of a group (same arguments): rank 0 says them. */
#define BENCH_USAGE(...)                                                                           \
    (dist_world_rank() == 0 ? cli_usage_error("bench", __VA_ARGS__) : XB_EXIT_USAGE)

enum { PROFILE_TOP = 8 };

/* The arguments of `bench`. */
typedef struct BenchArgs {
    CliList config; /* the operand: one config (none with --allreduce) */
    CliInts lengths;
    const char *mixers; /* NULL: the config's */
    long long steps, warmup, max_mib, threads, repeats;
    CliList sets;
    const char *output;
    int profile, quiet, allreduce;
    BenchSizes sizes;
} BenchArgs;

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

/* --sizes S1,S2,...: buffer sizes; got the first that is not one (or the whole list). */
static int parse_sizes(void *dst, const char *v, char *got, size_t n) {
    BenchSizes *s = dst;
    s->n = 0;
    for (const char *p = v;;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        if (s->n == BENCH_MAX_SIZES) return -1;
        if (len >= sizeof item || parse_size(item, &s->bytes[s->n])) {
            if (len) snprintf(got, n, "%.*s", (int)len, p);
            return -1;
        }
        s->n++;
        if (!comma) return 0;
        p = comma + 1;
    }
}

_Static_assert(BENCH_MAX_SIZES == 64, "--sizes' message says at most 64");
_Static_assert(CLI_MAX_INTS == 64, "--lengths' message says up to 64");

enum { MODE_POINTS, MODE_ALLREDUCE };
enum {
    BENCH_LENGTHS,
    BENCH_MIXERS,
    BENCH_STEPS,
    BENCH_WARMUP,
    BENCH_MAX_MEMORY,
    BENCH_SET,
    BENCH_OUTPUT,
    BENCH_THREADS,
    BENCH_PROFILE,
    BENCH_QUIET,
    BENCH_ALLREDUCE,
    BENCH_SIZES,
    BENCH_REPEATS,
    N_BENCH_OPTS
};
#define POINTS (1u << MODE_POINTS)
#define ALLREDUCE (1u << MODE_ALLREDUCE)
static const CliOpt BENCH_OPTS[] = {
    [BENCH_LENGTHS] = {"--lengths", 0, CLI_INTS, CLI_AT(BenchArgs, lengths, CliInts), "L1,L2,...",
                       .min = 2, .max = 1048576, .def = "1024,2048,4096", .modes = POINTS,
                       .valid = "up to 64 lengths in [2, 1048576] separated by commas",
                       .help = "sequence lengths (model.max_len)"},
    [BENCH_MIXERS] = {"--mixers", 0, CLI_STR, CLI_AT(BenchArgs, mixers, const char *), "M1,M2,...",
                      .modes = POINTS,
                      .help = "mechanisms, separated by commas; default the config's (`all`: "
                              "every registered one)"},
    [BENCH_STEPS] = {"--steps", 0, CLI_INT, CLI_AT(BenchArgs, steps, long long), "N", .min = 1,
                     .max = 1000000, .def = "10", .modes = POINTS,
                     .help = "training steps per point"},
    [BENCH_WARMUP] = {"--warmup", 0, CLI_INT, CLI_AT(BenchArgs, warmup, long long), "N", .min = 0,
                      .max = 1000000, .def = "2", .modes = POINTS,
                      .help = "steps left out of the median"},
    [BENCH_MAX_MEMORY] = {"--max-memory", 0, CLI_INT, CLI_AT(BenchArgs, max_mib, long long), "MIB",
                          .min = 1, .max = 1099511627776.0, .def = "4096", .modes = POINTS,
                          .valid = "a number of MiB >= 1",
                          .help = "skip a point whose planned memory exceeds MIB"},
    [BENCH_SET] = {"--set", 0, CLI_LIST, CLI_AT(BenchArgs, sets, CliList), "KEY=VALUE",
                   .modes = POINTS, .help = "override a config value (repeatable)"},
    [BENCH_OUTPUT] = {"--output", 'o', CLI_STR, CLI_AT(BenchArgs, output, const char *), "DIR",
                      .def = "results/bench", .help = "where the reports go"},
    [BENCH_THREADS] = {"--threads", 0, CLI_INT, CLI_AT(BenchArgs, threads, long long), "N",
                       .min = 0, .max = 1024, .modes = POINTS,
                       .help = "threads, 0 = all cores (experiment.threads)"},
    [BENCH_PROFILE] = {"--profile", 0, CLI_FLAG, CLI_AT(BenchArgs, profile, int), .modes = POINTS,
                       .help = "after the table, where each point's steps went: the largest "
                               "entries of its report's measured.profile (kernel family and "
                               "direction) in ms per step and % of the step, and the time in no "
                               "kernel (core/profile.h); means over all --steps steps, the warm-up "
                               "included"},
    [BENCH_QUIET] = {"--quiet", 'q', CLI_FLAG, CLI_AT(BenchArgs, quiet, int),
                     .help = "no progress lines"},
    [BENCH_ALLREDUCE] = {"--allreduce", 0, CLI_FLAG, CLI_AT(BenchArgs, allreduce, int),
                         .modes = ALLREDUCE,
                         .help = "time the gradient all-reduce of data-parallel training instead"},
    [BENCH_SIZES] = {"--sizes", 0, CLI_PARSE, CLI_AT(BenchArgs, sizes, BenchSizes), "S1,S2,...",
                     .parse = parse_sizes, .def = "4K,16K,64K,256K,1M,4M,16M,64M,256M",
                     .valid = "buffer sizes separated by commas, at most 64 (bytes, a multiple of "
                              "4 from 4 to 2G; K, M, G for KiB, MiB, GiB)",
                     .modes = ALLREDUCE,
                     .help = "buffer sizes in bytes, a multiple of 4, K M G for KiB MiB GiB"},
    [BENCH_REPEATS] = {"--repeats", 0, CLI_INT, CLI_AT(BenchArgs, repeats, long long), "N",
                       .min = 1, .max = 100000, .def = "20", .modes = ALLREDUCE,
                       .help = "timed calls per size"},
};

static const CliMode BENCH_MODES[] = {
    [MODE_POINTS] = {NULL, -1},
    [MODE_ALLREDUCE] = {"--allreduce", BENCH_ALLREDUCE, 0, "mpirun -np P ", "--allreduce"},
};
_Static_assert(XB_ARRAY_LEN(BENCH_MODES) == MODE_ALLREDUCE + 1, "an entry for every mode");

static const CliHelp BENCH_HELP[] = {
    {"Measures training steps of the model that CONFIG describes for every mechanism and length:\n"
     "the median time of a step after the warm-up, tokens/s, the process's peak RSS (each point\n"
     "runs in a child process) and the planned memory, the analytic FLOPs of a step and the\n"
     "GFLOP/s achieved, as a percentage of the sgemm GFLOP/s of the point's own calibration\n"
     "(measured.calibration, a probe on the same threads after the steps), and speed and memory\n"
     "relative to `full` at the same length. There is no evaluation. Each point writes a report\n"
     "DIR/MIXER-L.json (readable by table and plot); the whole benchmark is summarised in\n"
     "DIR/index.json and printed as a table.\n",
     POINTS},
    {"With --allreduce (no CONFIG; under mpirun or srun with 2 or more processes) it times the\n"
     "gradient all-reduce of data-parallel training instead: an in-place sum of a float32 buffer\n"
     "over the processes, for each size. Each call follows a barrier; a call's time is that of\n"
     "the slowest process, and a size's time the median of --repeats calls after one untimed.\n"
     "It prints a table and writes DIR/allreduce.json, with the least-squares fit (on relative\n"
     "error) of the ring all-reduce's cost T(n) = 2(P-1)*alpha + 2(P-1)/P*n*beta: alpha the\n"
     "latency of one of its 2(P-1) steps, beta seconds per byte (scripts/scaling-model.py).\n",
     ALLREDUCE},
    {"Exit status: 0 every point ran or was skipped by the budget, 2 bad input, 3 a point "
     "failed.\n",
     0},
};
#undef POINTS
#undef ALLREDUCE

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

/* Largest first; equal times by family name, forward first. */
static int cmp_entry(const void *a, const void *b) {
    const ProfileEntry *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    const int c = strcmp(x->family, y->family);
    return c ? c : x->backward - y->backward;
}

/* Prints where a point's training steps went: the PROFILE_TOP largest entries of its profile in
 * ms per step and percent of the step, the rest summed, and the time in no kernel. */
static void print_profile(const BenchPoint *p) {
    ReportProfile pp = p->prof;
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
static void run_point(BenchPoint *p, const ExperimentConfig *cfg, const Dataset *ds, int warmup,
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
    p->status = "ok";
    summary_read_profile(path, &p->prof);
}

/* A row of the table. */
static void print_point(const BenchPoint *pt, int n, int i) {
    const BenchPoint *p = &pt[i];
    if (strcmp(p->status, "ok")) {
        printf("| %s | %d | %s: %s | | | | | | | | |\n", p->mixer, p->L, p->status, p->why);
        return;
    }
    BenchFigures f;
    report_bench_figures(pt, n, i, &f);
    char sp[32] = "-", mem[32] = "-", fr[32] = "-";
    if (isfinite(f.fraction_of_sgemm)) snprintf(fr, sizeof fr, "%.1f", 100.0 * f.fraction_of_sgemm);
    if (!isnan(f.full_step_s)) {
        snprintf(sp, sizeof sp, "%.2fx", f.full_step_s / f.step_s);
        snprintf(mem, sizeof mem, "%.2fx", p->s.peak_rss / f.full_peak_rss);
    }
    printf("| %s | %d | %.4f | %.0f | %.1f | %.1f | %.2f | %.1f | %s | %s | %s |\n", p->mixer, p->L,
           f.step_s, f.tokens_per_s, p->s.peak_rss / 1048576.0, (double)p->planned / 1048576.0,
           (double)p->s.flops_step / 1e9, f.gflops_per_s, fr, sp, mem);
}

/* Prints the table (and the profiles) and writes DIR/index.json. */
static int summarise(const BenchPoint *pt, int n, const BenchArgs *a) {
    printf("| mechanism | L | s/step (median) | tokens/s | peak RSS MiB | planned MiB | "
           "GFLOP/step | GFLOP/s | %% of sgemm | speed vs full | memory vs full |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) print_point(pt, n, i);
    for (int i = 0; i < n && a->profile; i++)
        if (!strcmp(pt[i].status, "ok")) print_profile(&pt[i]);
    char path[1200];
    snprintf(path, sizeof path, "%s/index.json", a->output);
    XbError err;
    xb_error_clear(&err);
    if (report_write_bench_index(path, pt, n, a->steps, (int)a->warmup, &err))
        return print_error(&err);
    printf("\n%d points -> %s\n", n, path);
    return XB_EXIT_OK;
}

/* The checks of the points' mode beyond the options' own: under mpirun only --allreduce applies,
 * a CONFIG, and a warm-up that leaves a step to time. */
static int check_points(const BenchArgs *a) {
    if (dist_world_size() > 1) /* each point forks a child: one process times one point */
        return BENCH_USAGE("under mpirun only --allreduce applies; bench CONFIG times each point "
                           "in a process of its own (run it without mpirun)");
    if (!a->config.n) return BENCH_USAGE("expected a CONFIG (see --help)");
    if (a->warmup >= a->steps)
        return BENCH_USAGE("--warmup %lld leaves no step of --steps %lld to time", a->warmup,
                           a->steps);
    return XB_EXIT_OK;
}

/* The mechanisms to time, comma-separated into buf (n bytes): --mixers, `all`, or the config's. */
static int mechanisms(const BenchArgs *a, const ExperimentConfig *base, char *buf, size_t n,
                      char **mix, int max) {
    snprintf(buf, n, "%s", a->mixers ? a->mixers : mixer_get(base->mixer_index)->name);
    if (!strcmp(buf, "all")) {
        size_t k = 0;
        for (int i = 0; i < mixer_count() && k < n; i++)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "," : "", mixer_get(i)->name);
    }
    const int nm = split(buf, mix, max);
    for (int k = 0; k < nm; k++)
        if (mixer_find(mix[k]) < 0)
            return -cli_usage_error("bench",
                                    "--mixers: unknown mechanism \"%s\" (see xformer-bench list "
                                    "mechanisms)",
                                    mix[k]);
    return nm;
}

/* Sizes, then times one point (unless the budget or the mechanism skips it). */
static void time_point(BenchPoint *p, const BenchArgs *a, const ExperimentConfig *base,
                       const Dataset *ds) {
    ConfigSet cs;
    XbError err;
    xb_error_clear(&err);
    if (point_config(a->config.v[0], a->sets.v, a->sets.n, p->mixer, p->L, a->steps, a->output, &cs,
                     &err)) { /* e.g. a mechanism that cannot take this length */
        p->status = "skipped";
        snprintf(p->why, sizeof p->why, "%s%s%s", err.key, err.key[0] ? ": " : "", err.msg);
        return;
    }
    ExperimentConfig *c = &cs.runs[0];
    c->threads = base->threads;
    p->planned = encoder_planned_bytes(c, ds->vocab_size, ds->n_classes, ds->pairs);
    if (p->planned > (size_t)a->max_mib << 20) {
        p->status = "skipped";
        snprintf(p->why, sizeof p->why, "needs %.0f MiB planned, above --max-memory %lld",
                 (double)p->planned / 1048576.0, a->max_mib);
    } else {
        if (!a->quiet) fprintf(stderr, "bench: %s at L = %d\n", p->mixer, p->L);
        run_point(p, c, ds, (int)a->warmup, 1);
    }
    cfg_set_free(&cs);
}

/* Every point of mechanisms mix[0..nm) at every length, on the base config's data. */
static int time_points(const BenchArgs *a, ExperimentConfig *base, char **mix, int nm) {
    Dataset ds;
    int rc = cli_load_dataset(base, &ds, a->quiet, NULL, NULL, 0);
    if (rc) return rc;
    const int nl = a->lengths.n;
    BenchPoint *pt = calloc((size_t)nm * nl, sizeof *pt);
    XB_ASSERT(pt);
    int failed = 0;
    for (int k = 0; k < nm; k++)
        for (int j = 0; j < nl; j++) {
            BenchPoint *p = &pt[k * nl + j];
            snprintf(p->mixer, sizeof p->mixer, "%s", mix[k]);
            p->L = (int)a->lengths.v[j];
            time_point(p, a, base, &ds);
            failed += p->status && !strcmp(p->status, "failed");
        }
    rc = summarise(pt, nm * nl, a);
    free(pt);
    dataset_free(&ds);
    return rc ? rc : failed ? XB_EXIT_RUNFAIL : XB_EXIT_OK;
}

static int bench_points(const BenchArgs *a, const CliSeen *seen) {
    int rc = check_points(a);
    if (rc) return rc;
    ConfigSet base; /* the base config: errors in it or in the overrides stop here */
    XbError err;
    xb_error_clear(&err);
    if (cfg_load(a->config.v[0], a->sets.v, a->sets.n, &base, &err)) return print_error(&err);
    char buf[4096], *mix[128];
    const int nm = base.n != 1 ? 0 : mechanisms(a, &base.runs[0], buf, sizeof buf, mix, 128);
    if (base.n != 1)
        rc = cli_usage_error("bench",
                             "%s has a sweep of %d runs; bench varies the mechanism and the "
                             "length itself (remove the sweep: section)",
                             a->config.v[0], base.n);
    else if (nm < 0)
        rc = -nm;
    if (!rc) {
        if (seen->given[BENCH_THREADS]) base.runs[0].threads = (int)a->threads;
        cli_set_threads(&base.runs[0]);
        rc = time_points(a, &base.runs[0], mix, nm);
    }
    cfg_set_free(&base);
    return rc;
}

static int bench(const void *args, const CliSeen *seen) {
    const BenchArgs *a = args;
    if (seen->mode == MODE_POINTS) return bench_points(a, seen);
    if (a->config.n)
        return BENCH_USAGE("--allreduce takes no CONFIG (got \"%s\"; see --help)", a->config.v[0]);
    return bench_allreduce(&a->sizes, a->repeats, a->output, a->quiet);
}

CLI_CHECK_TABLE(BENCH_OPTS, N_BENCH_OPTS);
const CliCommand CMD_BENCH = CLI_COMMAND(
    "bench", BenchArgs, config, bench, BENCH_OPTS, BENCH_HELP,
    .summary = "time training steps of mechanisms across lengths (LRA's efficiency table)",
    .operands = "CONFIG", .max_operands = 1, .one_more = "one CONFIG", .modes = BENCH_MODES,
    .n_modes = XB_ARRAY_LEN(BENCH_MODES));
