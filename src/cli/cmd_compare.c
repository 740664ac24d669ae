/* xformer-bench compare: a regression gate between two sets of reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/error.h"
#include "core/xassert.h"
#include "report/stats.h"
#include "report/summary.h"

typedef struct Limits {
    CliList paths;                          /* the operands: BASE, NEW */
    double acc_drop, slowdown, mem_growth;  /* points, percent, percent */
    double alpha;                           /* significance level of the seeds' t-test */
    double cal_slowdown, mean_cal_slowdown; /* percent, of calibrated steps/s; < 0: not asked */
    double mean_cpu_growth; /* percent, of CPU seconds per step over the runs; < 0: not asked */
} Limits;

enum {
    CMP_ACC_DROP,
    CMP_SLOWDOWN,
    CMP_CAL_SLOWDOWN,
    CMP_MEAN_CAL_SLOWDOWN,
    CMP_MEAN_CPU_GROWTH,
    CMP_MEM_GROWTH,
    CMP_ALPHA,
    N_CMP_OPTS
};
#define CMP_PCT(field) CLI_REAL, CLI_AT(Limits, field, double), "PCT", .min = 0, .max = INFINITY
static const CliOpt CMP_OPTS[] = {
    [CMP_ACC_DROP] = {"--max-acc-drop", 0, CLI_REAL, CLI_AT(Limits, acc_drop, double), "POINTS",
                      .min = 0, .max = INFINITY, .def = "1",
                      .help = "a run regresses when its test accuracy falls by more than POINTS "
                              "percentage points"},
    [CMP_SLOWDOWN] = {"--max-slowdown", 0, CMP_PCT(slowdown), .def = "25",
                      .help = "a run regresses when its steps/s fall by more than PCT percent"},
    [CMP_CAL_SLOWDOWN] = {"--max-calibrated-slowdown", 0, CMP_PCT(cal_slowdown),
                          .help = "a run regresses when its calibrated steps/s fall by more than "
                                  "PCT percent (in place of --max-slowdown)"},
    [CMP_MEAN_CAL_SLOWDOWN] = {"--max-mean-calibrated-slowdown", 0, CMP_PCT(mean_cal_slowdown),
                               .help = "the matched runs together regress when the geometric mean "
                                       "of their calibrated speed ratios falls by more than PCT "
                                       "percent: a slowdown common to all of them, held more "
                                       "tightly than any one run can be"},
    [CMP_MEAN_CPU_GROWTH] = {"--max-mean-cpu-growth", 0, CMP_PCT(mean_cpu_growth),
                             .help = "the matched runs together regress when the geometric mean "
                                     "of their CPU seconds per step (training and evaluation, "
                                     "measured.calibration.cpu_s) grows by more than PCT percent: "
                                     "the work of a step, which the other jobs change less than "
                                     "its wall time (not parallelism)"},
    [CMP_MEM_GROWTH] = {"--max-mem-growth", 0, CMP_PCT(mem_growth), .def = "10",
                        .help = "a run regresses when its peak RSS grows by more than PCT "
                                "percent"},
    [CMP_ALPHA] = {"--alpha", 0, CLI_REAL, CLI_AT(Limits, alpha, double), "LEVEL", .min = 0,
                   .max = 1, .open = 1, .def = "0.05",
                   .help = "the significance level of the seeds' t-test (see Seeds)"},
};
#undef CMP_PCT

static const CliHelp CMP_HELP[] = {
    {"Compares the reports of NEW with those of BASE (each a report file or a directory of them)\n"
     "and prints them side by side. Runs are matched by task, mechanism and resolved-config hash;\n"
     "a run whose config changed is matched by task, mechanism and run id instead. A matched run\n"
     "regresses when its test accuracy falls by more than --max-acc-drop points, its steps/s\n"
     "fall by more than --max-slowdown percent, its peak RSS grows by more than --max-mem-growth\n"
     "percent, it no longer finishes, or, with the same config, its FLOPs per step or its\n"
     "parameter count differ at all. A BASE run missing from NEW is a regression too.\n",
     ~0u},
    {"Seeds: the reports of a run's task and mechanism whose configs differ only in\n"
     "experiment.seed (and name, output directory, threads) are the seeds of its cell, one\n"
     "value per seed. When the cell has 3 or more seeds on both sides, accuracy is judged by\n"
     "Welch's t-test instead of --max-acc-drop: a regression when the new seeds' mean is lower\n"
     "with a one-sided p-value below LEVEL (--alpha), named once for the cell.\n"
     "With fewer seeds on either side, or no spread on both, each run keeps the fixed drop.\n"
     "The verdict column says which rule judged the accuracy (\"acc: Welch p=0.31, 3 vs 3\n"
     "seeds\" or \"acc: fixed limit 1.00\").\n\n"
     "On a machine shared with other jobs steps/s say more about the other jobs than about the\n"
     "code. Each report's calibration (measured.calibration) holds the share of the cores its\n"
     "threads got while they trained: the time they ran over the time they were runnable. The\n"
     "calibrated steps/s, steps/s divided by that share, are the run's speed on cores of its own\n"
     "(--max-calibrated-slowdown, --max-mean-calibrated-slowdown). A pair where either report has\n"
     "no core share (older reports, or a kernel without per-thread schedstat) is judged by\n"
     "--max-slowdown on raw steps/s, with a note saying so.\n\n"
     "Exit status: 0 within tolerances, 1 a regression (each is named), 2 bad input or usage.\n",
     0},
};

static int compare(const void *args, const CliSeen *seen);
static const Limits CMP_INIT = {.cal_slowdown = -1, .mean_cal_slowdown = -1, .mean_cpu_growth = -1};

typedef struct Pair {
    const ReportSummary *a, *b; /* base, new (either NULL when unmatched) */
    int same_config;
} Pair;

/* Steps/s at a full share of the cores: steps/s over the share its threads got (core/calib.h);
 * NaN when the report has no share. */
static double calibrated_speed(const ReportSummary *r) {
    return r->core_share > 0 ? r->steps_per_s / r->core_share : NAN;
}

/* 1 when the speed of the pair is judged calibrated: asked for, and both reports have a share. */
static int calibrated_pair(const ReportSummary *a, const ReportSummary *b, const Limits *lim) {
    return (lim->cal_slowdown >= 0 || lim->mean_cal_slowdown >= 0) && !isnan(calibrated_speed(a)) &&
           !isnan(calibrated_speed(b));
}

/* The speed rule for one pair: calibrated steps/s when asked and both reports have a share,
 * else raw steps/s (with a note when calibrated speed was asked). Prints the regression or the
 * note; returns 1 for a regression. */
static int judge_speed(const char *name, const ReportSummary *a, const ReportSummary *b,
                       const Limits *lim) {
    const double ca = calibrated_speed(a), cb = calibrated_speed(b);
    if (calibrated_pair(a, b, lim)) {
        const double slow = 100.0 * (ca / cb - 1.0);
        if (lim->cal_slowdown >= 0 && ca > 0 && (!(cb > 0) || slow > lim->cal_slowdown + 1e-9)) {
            printf("regression: %s: %.1f%% slower calibrated, %.3g -> %.3g steps/s at a full "
                   "share of the cores (raw %.3g -> %.3g steps/s, core share %.2f -> %.2f; "
                   "limit %.1f%%)\n",
                   name, slow, ca, cb, a->steps_per_s, b->steps_per_s, a->core_share, b->core_share,
                   lim->cal_slowdown);
            return 1;
        }
        if (lim->cal_slowdown >= 0) return 0;
    } else if ((lim->cal_slowdown >= 0 || lim->mean_cal_slowdown >= 0) && a->steps_per_s > 0) {
        printf("note: %s: no core share in %s (a report older than the calibration, or a kernel "
               "without schedstat): steps/s judged raw (limit %.1f%%)\n",
               name, isnan(ca) ? (isnan(cb) ? "BASE and NEW" : "BASE") : "NEW", lim->slowdown);
    }
    const double slow = 100.0 * (a->steps_per_s / b->steps_per_s - 1.0);
    if (a->steps_per_s > 0 && (!(b->steps_per_s > 0) || slow > lim->slowdown + 1e-9)) {
        printf("regression: %s: %.1f%% slower, %.3g -> %.3g steps/s (limit %.1f%%)\n", name, slow,
               a->steps_per_s, b->steps_per_s, lim->slowdown);
        return 1;
    }
    return 0;
}

/* The CPU seconds per step of a run (training and evaluation over the steps trained); NaN when
 * the report has none. */
static double cpu_per_step(const ReportSummary *r) {
    return r->steps > 0 ? r->calib_cpu_s / r->steps : NAN;
}

/* A rule on the matched runs together: the geometric mean over the pairs where fig is positive on
 * both sides of fig(new) / fig(base). */
typedef struct MeanRule {
    double (*fig)(const ReportSummary *r);
    int worse_is_lower; /* 1: a fall is the regression (speed); 0: a rise (CPU time) */
    const char *label;  /* "calibrated steps/s", "CPU seconds per step" */
} MeanRule;

/* Judges rule r over the pairs with limit (percent; < 0: not asked): prints the regression, or
 * else the figure as information after the table (info, of size n); returns 1 for a regression.
 * A slowdown is stated as the base's speed over the new one, a growth as the new over the base. */
static int judge_mean(const MeanRule *r, const Pair *p, int n, double limit, char *info,
                      size_t info_n) {
    info[0] = '\0';
    if (limit < 0) return 0;
    double log_sum = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!p[i].a || !p[i].b) continue;
        const double fa = r->fig(p[i].a), fb = r->fig(p[i].b);
        if (!(fa > 0) || !(fb > 0)) continue;
        log_sum += log(fb / fa);
        k++;
    }
    if (k == 0) return 0;
    const double change = 100.0 * (exp(log_sum / k) - 1.0);
    const double worse = 100.0 * (exp((r->worse_is_lower ? -log_sum : log_sum) / k) - 1.0);
    const char *how = r->worse_is_lower ? "slower" : "more";
    if (worse > limit + 1e-9) {
        printf("regression: all %d run%s with a calibration: %.1f%% %s %s (the geometric mean "
               "of their ratios; limit %.1f%%)\n",
               k, k == 1 ? "" : "s", worse, how, r->label, limit);
        return 1;
    }
    snprintf(info, info_n,
             "%s of the %d run%s with a calibration: %+.1f%% (the geometric mean of their "
             "ratios; %.1f%% %s is a regression)",
             r->label, k, k == 1 ? "" : "s", change, limit, how);
    return 0;
}

static int same_run(const ReportSummary *a, const ReportSummary *b, int by_hash) {
    if (strcmp(a->task, b->task) || strcmp(a->mixer, b->mixer)) return 0;
    return by_hash ? !strcmp(a->hash, b->hash) : !strcmp(a->run_id, b->run_id);
}

/* Pairs every NEW run with a BASE run: first by config hash, then by run id; the rest alone. */
static int match(const ReportSummary *A, int na, const ReportSummary *B, int nb, Pair *p) {
    int n = 0;
    char *used_a = calloc((size_t)na + 1, 1), *used_b = calloc((size_t)nb + 1, 1);
    XB_ASSERT(used_a && used_b);
    for (int pass = 1; pass >= 0; pass--)
        for (int j = 0; j < nb; j++) {
            if (used_b[j]) continue;
            for (int i = 0; i < na; i++)
                if (!used_a[i] && same_run(&A[i], &B[j], pass)) {
                    used_a[i] = used_b[j] = 1;
                    p[n++] = (Pair){&A[i], &B[j], pass};
                    break;
                }
        }
    for (int i = 0; i < na; i++)
        if (!used_a[i]) p[n++] = (Pair){&A[i], NULL, 0};
    for (int j = 0; j < nb; j++)
        if (!used_b[j]) p[n++] = (Pair){NULL, &B[j], 0};
    free(used_a);
    free(used_b);
    return n;
}

static void fmt_acc(char *buf, size_t n, double a) {
    if (isnan(a))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.2f", 100.0 * a);
}

/* Both sides' reports, where a run's cell (its seeds) is looked up. */
typedef struct Sides {
    const ReportSummary *set[2]; /* BASE, NEW */
    int n[2];
} Sides;

/* The cells judged by the t-test so far (base run, new run of the first pair of each), so that
 * a cell's regression is named once. */
typedef struct JudgedCells {
    const ReportSummary **a, **b;
    int n;
} JudgedCells;

/* The per-seed accuracies (%) of r's cell within side k: reports of r's task and mechanism with
 * r's config but for the seed. v has room for every report of the side; returns how many. */
static int cell_seeds(double *v, const Sides *sides, int k, const ReportSummary *r) {
    const ReportSummary **runs = malloc((size_t)(sides->n[k] ? sides->n[k] : 1) * sizeof *runs);
    XB_ASSERT(runs);
    size_t m = 0;
    for (int i = 0; i < sides->n[k]; i++) {
        const ReportSummary *q = &sides->set[k][i];
        if (q->cell_key == r->cell_key && !strcmp(q->task, r->task) && !strcmp(q->mixer, r->mixer))
            runs[m++] = q;
    }
    SeedCell c;
    stats_seed_cell(&c, v, runs, m, 0.0);
    free(runs);
    return c.n;
}

/* Whether the cell pair of (a, b) was judged already; records it when not. */
static int judged_before(JudgedCells *done, const ReportSummary *a, const ReportSummary *b) {
    for (int i = 0; i < done->n; i++)
        if (done->a[i]->cell_key == a->cell_key && done->b[i]->cell_key == b->cell_key &&
            !strcmp(done->a[i]->task, a->task) && !strcmp(done->a[i]->mixer, a->mixer))
            return 1;
    done->a[done->n] = a, done->b[done->n] = b, done->n++;
    return 0;
}

/* The accuracy judgement of a matched pair: by Welch's t-test over the seeds of its cell when
 * both sides have 3 or more (and some spread), else by the fixed drop. Prints the regression
 * (a cell's once) and returns how many it printed; rule receives which rule judged. */
static int judge_accuracy(const Pair *p, const Sides *sides, const Limits *lim, const char *name,
                          char *rule, size_t rn, JudgedCells *done) {
    const ReportSummary *a = p->a, *b = p->b;
    if (isnan(a->test_acc)) return 0;
    if (isnan(b->test_acc)) {
        printf("regression: %s: no test accuracy (was %.2f%%)\n", name, 100.0 * a->test_acc);
        return 1;
    }
    const int most = sides->n[0] > sides->n[1] ? sides->n[0] : sides->n[1];
    double *va = malloc((size_t)most * 2 * sizeof *va), *vb = va + most;
    XB_ASSERT(va);
    const int na = cell_seeds(va, sides, 0, a), nb = cell_seeds(vb, sides, 1, b);
    Welch w;
    const int tested = na >= 3 && nb >= 3 && !stats_welch_less(&w, va, (size_t)na, vb, (size_t)nb);
    int bad = 0;
    if (tested) {
        snprintf(rule, rn, "acc: Welch p=%.2g, %d vs %d seeds", w.p, na, nb);
        if (w.p < lim->alpha) {
            bad = 1; /* every run of the cell; the cell is named once */
            if (!judged_before(done, a, b)) {
                double ma, sa, mb, sb;
                stats_mean_sd(&ma, &sa, va, (size_t)na);
                stats_mean_sd(&mb, &sb, vb, (size_t)nb);
                printf("regression: %s/%s: test accuracy fell %.2f points over the seeds, "
                       "%.2f%% -> %.2f%% (mean of %d -> %d seeds; Welch's t-test, one-sided "
                       "p = %.2g < %g)\n",
                       a->task, a->mixer, ma - mb, ma, mb, na, nb, w.p, lim->alpha);
            }
        }
    } else {
        snprintf(rule, rn, "acc: fixed limit %.2f%s", lim->acc_drop,
                 na >= 3 && nb >= 3 ? ", the seeds have no spread" : "");
        const double drop = 100.0 * (a->test_acc - b->test_acc);
        if (drop > lim->acc_drop + 1e-9) {
            printf("regression: %s: test accuracy fell %.2f points, %.2f%% -> %.2f%% (limit "
                   "%.2f)\n",
                   name, drop, 100.0 * a->test_acc, 100.0 * b->test_acc, lim->acc_drop);
            bad = 1;
        }
    }
    free(va);
    return bad;
}

/* Prints the regressions of one pair (one line each, after "regression: NAME: ") and returns how
 * many there are. */
static int judge(const Pair *p, const Sides *sides, const Limits *lim, char *verdict, size_t vn,
                 JudgedCells *done) {
    const ReportSummary *a = p->a, *b = p->b;
    char name[512], rule[128] = "";
    snprintf(name, sizeof name, "%s/%s/%s", (a ? a : b)->task, (a ? a : b)->mixer,
             (b ? b : a)->run_id);
    int bad = 0;
    if (!b) {
        printf("regression: %s: in BASE (%s) but not in NEW\n", name, a->path);
        snprintf(verdict, vn, "MISSING");
        return 1;
    }
    if (!a) {
        snprintf(verdict, vn, "new");
        return 0;
    }
    if (!strcmp(a->status, "ok") && strcmp(b->status, "ok")) {
        printf("regression: %s: status %s (was ok)\n", name, b->status);
        bad++;
    }
    bad += judge_accuracy(p, sides, lim, name, rule, sizeof rule, done);
    bad += judge_speed(name, a, b, lim);
    const double grow = 100.0 * (b->peak_rss / a->peak_rss - 1.0);
    if (a->peak_rss > 0 && grow > lim->mem_growth + 1e-9) {
        printf("regression: %s: peak RSS grew %.1f%%, %.1f -> %.1f MiB (limit %.1f%%)\n", name,
               grow, a->peak_rss / 1048576.0, b->peak_rss / 1048576.0, lim->mem_growth);
        bad++;
    }
    if (p->same_config && a->flops_step != b->flops_step) {
        printf("regression: %s: FLOPs per training step changed with the same config, %llu -> "
               "%llu\n",
               name, (unsigned long long)a->flops_step, (unsigned long long)b->flops_step);
        bad++;
    }
    if (p->same_config && a->params != b->params) {
        printf("regression: %s: parameter count changed with the same config, %llu -> %llu\n", name,
               (unsigned long long)a->params, (unsigned long long)b->params);
        bad++;
    }
    /* the verdict, then in parentheses what it rests on: a changed config, the accuracy's rule */
    const char *what = bad ? "REGRESSION" : "ok",
               *changed = p->same_config || bad ? "" : "config changed";
    if (*changed || *rule)
        snprintf(verdict, vn, "%s (%s%s%s)", what, changed, *changed && *rule ? "; " : "", rule);
    else
        snprintf(verdict, vn, "%s", what);
    return bad;
}

/* Loads both sides' reports; returns 0 or the exit code after the error. */
static int load_sides(const Limits *lim, ReportSummary **set, int *n) {
    for (int k = 0; k < 2; k++) {
        XbError err;
        xb_error_clear(&err);
        if (summary_load(&lim->paths.v[k], 1, &set[k], &n[k], &err)) {
            free(set[0]);
            return cli_command_error("compare", &err);
        }
    }
    return XB_EXIT_OK;
}

/* Judges every pair (verdict[i] for pair i) and the runs together (info: what to print after
 * the table); prints the regressions and returns how many there are. */
static int judge_all(const Pair *pairs, int npairs, const Sides *sides, const Limits *lim,
                     char (*verdict)[160], char (*info)[256]) {
    JudgedCells done = {malloc((size_t)(npairs + 1) * sizeof *done.a),
                        malloc((size_t)(npairs + 1) * sizeof *done.b), 0};
    XB_ASSERT(done.a && done.b);
    int bad = 0;
    for (int i = 0; i < npairs; i++)
        bad += judge(&pairs[i], sides, lim, verdict[i], sizeof verdict[i], &done);
    free(done.a), free(done.b);
    static const MeanRule mean_speed = {calibrated_speed, 1, "calibrated steps/s"};
    static const MeanRule mean_cpu = {cpu_per_step, 0, "CPU seconds per step"};
    bad += judge_mean(&mean_speed, pairs, npairs, lim->mean_cal_slowdown, info[0], sizeof info[0]);
    bad += judge_mean(&mean_cpu, pairs, npairs, lim->mean_cpu_growth, info[1], sizeof info[1]);
    return bad;
}

/* The table's cells of a matched pair: accuracy, steps/s, peak RSS and FLOPs, base -> new. */
/* x for a change printed with `decimals` decimals: 0 when it would print as -0.0 (a ratio of two
 * equal figures that floating point puts a hair below 1). */
static double change(double x, int decimals) {
    return fabs(x) < 0.5 * pow(10.0, -decimals) ? 0.0 : x;
}

static void matched_cells(const ReportSummary *a, const ReportSummary *b, const Limits *lim,
                          char (*cell)[96]) {
    char x[16], y[16];
    fmt_acc(x, sizeof x, a->test_acc), fmt_acc(y, sizeof y, b->test_acc);
    if (isnan(a->test_acc) || isnan(b->test_acc))
        snprintf(cell[0], sizeof cell[0], "%s -> %s", x, y);
    else
        snprintf(cell[0], sizeof cell[0], "%s -> %s (%+.2f)", x, y,
                 change(100.0 * (b->test_acc - a->test_acc), 2));
    const double ca = calibrated_speed(a), cb = calibrated_speed(b);
    const int cal = calibrated_pair(a, b, lim) && ca > 0;
    int k = snprintf(
        cell[1], sizeof cell[1], "%.3g -> %.3g (%+.1f%%%s", a->steps_per_s, b->steps_per_s,
        a->steps_per_s > 0 ? change(100.0 * (b->steps_per_s / a->steps_per_s - 1.0), 1) : 0.0,
        cal ? "" : ")");
    if (cal)
        snprintf(cell[1] + k, sizeof cell[1] - (size_t)k, "; calibrated %+.1f%%)",
                 change(100.0 * (cb / ca - 1.0), 1));
    snprintf(cell[2], sizeof cell[2], "%.1f -> %.1f (%+.1f%%)", a->peak_rss / 1048576.0,
             b->peak_rss / 1048576.0,
             a->peak_rss > 0 ? change(100.0 * (b->peak_rss / a->peak_rss - 1.0), 1) : 0.0);
    if (a->flops_step == b->flops_step)
        snprintf(cell[3], sizeof cell[3], "%.3f", (double)b->flops_step / 1e9);
    else
        snprintf(cell[3], sizeof cell[3], "%.3f -> %.3f", (double)a->flops_step / 1e9,
                 (double)b->flops_step / 1e9);
}

/* A row of the table: a matched pair, or a run on one side only. */
static void print_row(const Pair *p, const Limits *lim, const char *verdict) {
    const ReportSummary *a = p->a, *b = p->b, *r = b ? b : a;
    char cell[4][96], x[16];
    if (a && b) {
        matched_cells(a, b, lim, cell);
    } else {
        fmt_acc(x, sizeof x, r->test_acc);
        snprintf(cell[0], sizeof cell[0], a ? "%s -> -" : "- -> %s", x);
        snprintf(cell[1], sizeof cell[1], a ? "%.3g -> -" : "- -> %.3g", r->steps_per_s);
        snprintf(cell[2], sizeof cell[2], a ? "%.1f -> -" : "- -> %.1f", r->peak_rss / 1048576.0);
        snprintf(cell[3], sizeof cell[3], "%.3f", (double)r->flops_step / 1e9);
    }
    printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->task, r->mixer, r->run_id, cell[0],
           cell[1], cell[2], cell[3], verdict);
}

/* The table, the information on the runs together and the closing count. */
static void print_table(const Pair *pairs, int npairs, const Limits *lim, char (*verdict)[160],
                        char (*info)[256], int bad) {
    if (bad) printf("\n");
    printf("| task | mechanism | run | test acc %% (base -> new) | steps/s (base -> new) | "
           "peak RSS MiB (base -> new) | GFLOP/step | verdict |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    int matched = 0, only_a = 0, only_b = 0;
    for (int i = 0; i < npairs; i++) {
        print_row(&pairs[i], lim, verdict[i]);
        matched += pairs[i].a && pairs[i].b;
        only_a += !pairs[i].b;
        only_b += !pairs[i].a;
    }
    for (int i = 0; i < 2; i++)
        if (info[i][0]) printf("%s%s\n", i == 0 || !info[0][0] ? "\n" : "", info[i]);
    printf("\n%d matched, %d only in BASE, %d only in NEW: %s\n", matched, only_a, only_b,
           bad ? "regressions (see above)" : "within tolerances");
}

static int compare(const void *args, const CliSeen *seen) {
    const Limits *lim = args;
    (void)seen;
    ReportSummary *set[2] = {NULL, NULL};
    int n[2] = {0, 0};
    if (load_sides(lim, set, n)) return XB_EXIT_USAGE;
    Pair *pairs = malloc((size_t)(n[0] + n[1]) * sizeof *pairs);
    XB_ASSERT(pairs);
    const int npairs = match(set[0], n[0], set[1], n[1], pairs);
    /* the regressions first (one line each), then the table */
    char(*verdict)[160] = malloc((size_t)(npairs ? npairs : 1) * sizeof *verdict);
    XB_ASSERT(verdict);
    const Sides sides = {{set[0], set[1]}, {n[0], n[1]}};
    char info[2][256];
    const int bad = judge_all(pairs, npairs, &sides, lim, verdict, info);
    print_table(pairs, npairs, lim, verdict, info, bad);
    free(verdict);
    free(pairs);
    free(set[0]);
    free(set[1]);
    return bad ? XB_EXIT_REGRESSION : XB_EXIT_OK;
}

CLI_CHECK_TABLE(CMP_OPTS, N_CMP_OPTS);
const CliCommand CMD_COMPARE =
    CLI_COMMAND("compare", Limits, paths, compare, CMP_OPTS, CMP_HELP,
                .summary = "compare two sets of reports; exit 1 on a regression (a CI gate)",
                .operands = "BASE NEW", .min_operands = 2, .max_operands = 2,
                .one_more = "two paths, BASE and NEW",
                .missing = "expected BASE and NEW (report files or directories; see --help)",
                .args_init = &CMP_INIT);
