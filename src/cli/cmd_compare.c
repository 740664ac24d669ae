/* xformer-bench compare: a regression gate between two sets of reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/xassert.h"
#include "report/stats.h"
#include "report/summary.h"

static const char *const USAGE =
    "usage: xformer-bench compare BASE NEW [--max-acc-drop POINTS] [--max-slowdown PCT]\n"
    "                             [--max-mem-growth PCT] [--alpha LEVEL]\n\n"
    "Compares the reports of NEW with those of BASE (each a report file or a directory of them)\n"
    "and prints them side by side. Runs are matched by task, mechanism and resolved-config hash;\n"
    "a run whose config changed is matched by task, mechanism and run id instead. A matched run\n"
    "regresses when its test accuracy falls by more than POINTS percentage points (default 1),\n"
    "its steps/s fall by more than PCT percent (default 25), its peak RSS grows by more than PCT\n"
    "percent (default 10), it no longer finishes, or, with the same config, its FLOPs per step or\n"
    "its parameter count differ at all. A BASE run missing from NEW is a regression too.\n\n"
    "Seeds: the reports of a run's task and mechanism whose configs differ only in\n"
    "experiment.seed (and name, output directory, threads) are the seeds of its cell, one\n"
    "value per seed. When the cell has 3 or more seeds on both sides, accuracy is judged by\n"
    "Welch's t-test instead of --max-acc-drop: a regression when the new seeds' mean is lower\n"
    "with a one-sided p-value below LEVEL (--alpha, default 0.05), named once for the cell.\n"
    "With fewer seeds on either side, or no spread on both, each run keeps the fixed drop.\n"
    "The verdict column says which rule judged the accuracy (\"acc: Welch p=0.31, 3 vs 3\n"
    "seeds\" or \"acc: fixed limit 1.00\").\n\n"
    "Exit status: 0 within tolerances, 1 a regression (each is named), 2 bad input or usage.\n";

typedef struct Limits {
    double acc_drop, slowdown, mem_growth; /* points, percent, percent */
    double alpha;                          /* significance level of the seeds' t-test */
} Limits;

typedef struct Pair {
    const ReportSummary *a, *b; /* base, new (either NULL when unmatched) */
    int same_config;
} Pair;

static int parse_limit(const char *flag, const char *v, double *out) {
    char *end;
    if (!v) return cli_usage_error("compare", "%s needs a value (see --help)", flag);
    const double d = strtod(v, &end);
    if (end == v || *end || !(d >= 0) || !isfinite(d))
        return cli_usage_error("compare", "%s: expected a number >= 0, got \"%s\"", flag, v);
    *out = d;
    return 0;
}

/* A significance level: a number strictly between 0 and 1. */
static int parse_level(const char *flag, const char *v, double *out) {
    char *end;
    if (!v) return cli_usage_error("compare", "%s needs a value (see --help)", flag);
    const double d = strtod(v, &end);
    if (end == v || *end || !(d > 0 && d < 1))
        return cli_usage_error("compare", "%s: expected a number in (0, 1), got \"%s\"", flag, v);
    *out = d;
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
    const double slow = 100.0 * (a->steps_per_s / b->steps_per_s - 1.0);
    if (a->steps_per_s > 0 && (!(b->steps_per_s > 0) || slow > lim->slowdown + 1e-9)) {
        printf("regression: %s: %.1f%% slower, %.3g -> %.3g steps/s (limit %.1f%%)\n", name, slow,
               a->steps_per_s, b->steps_per_s, lim->slowdown);
        bad++;
    }
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

int cmd_compare(int argc, char **argv) {
    Limits lim = {1.0, 25.0, 10.0, 0.05};
    const char *paths[2];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return XB_EXIT_OK;
        }
        double *dst = !strcmp(a, "--max-acc-drop")     ? &lim.acc_drop
                      : !strcmp(a, "--max-slowdown")   ? &lim.slowdown
                      : !strcmp(a, "--max-mem-growth") ? &lim.mem_growth
                                                       : NULL;
        if (dst) {
            if (parse_limit(a, i + 1 < argc ? argv[i + 1] : NULL, dst)) return XB_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--alpha")) {
            if (parse_level(a, i + 1 < argc ? argv[i + 1] : NULL, &lim.alpha)) return XB_EXIT_USAGE;
            i++;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("compare",
                                   "unknown option '%s' (valid: --max-acc-drop, --max-slowdown, "
                                   "--max-mem-growth, --alpha, --help)",
                                   a);
        } else if (np < 2) {
            paths[np++] = a;
        } else {
            return cli_usage_error("compare", "expected two paths, BASE and NEW, got a third: %s",
                                   a);
        }
    }
    if (np < 2)
        return cli_usage_error("compare", "expected BASE and NEW (report files or directories; "
                                          "see --help)");
    ReportSummary *set[2] = {NULL, NULL};
    int n[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        XbError err;
        xb_error_clear(&err);
        if (summary_load(&paths[k], 1, &set[k], &n[k], &err)) {
            char line[2048];
            xb_error_format(&err, line, sizeof line);
            fprintf(stderr, "xformer-bench compare: %s\n", line);
            free(set[0]);
            return XB_EXIT_USAGE;
        }
    }
    Pair *pairs = malloc((size_t)(n[0] + n[1]) * sizeof *pairs);
    XB_ASSERT(pairs);
    const int npairs = match(set[0], n[0], set[1], n[1], pairs);

    /* the regressions first (one line each), then the table */
    char(*verdict)[160] = malloc((size_t)npairs * sizeof *verdict);
    const Sides sides = {{set[0], set[1]}, {n[0], n[1]}};
    JudgedCells done = {malloc((size_t)(npairs + 1) * sizeof *done.a),
                        malloc((size_t)(npairs + 1) * sizeof *done.b), 0};
    XB_ASSERT(verdict && done.a && done.b);
    int bad = 0;
    for (int i = 0; i < npairs; i++)
        bad += judge(&pairs[i], &sides, &lim, verdict[i], sizeof verdict[i], &done);
    free(done.a), free(done.b);
    if (bad) printf("\n");
    printf("| task | mechanism | run | test acc %% (base -> new) | steps/s (base -> new) | "
           "peak RSS MiB (base -> new) | GFLOP/step | verdict |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < npairs; i++) {
        const ReportSummary *a = pairs[i].a, *b = pairs[i].b, *r = b ? b : a;
        char acc[64], sps[64], rss[64], fl[64], x[16], y[16];
        if (a && b) {
            fmt_acc(x, sizeof x, a->test_acc), fmt_acc(y, sizeof y, b->test_acc);
            if (isnan(a->test_acc) || isnan(b->test_acc))
                snprintf(acc, sizeof acc, "%s -> %s", x, y);
            else
                snprintf(acc, sizeof acc, "%s -> %s (%+.2f)", x, y,
                         100.0 * (b->test_acc - a->test_acc));
            snprintf(sps, sizeof sps, "%.3g -> %.3g (%+.1f%%)", a->steps_per_s, b->steps_per_s,
                     a->steps_per_s > 0 ? 100.0 * (b->steps_per_s / a->steps_per_s - 1.0) : 0.0);
            snprintf(rss, sizeof rss, "%.1f -> %.1f (%+.1f%%)", a->peak_rss / 1048576.0,
                     b->peak_rss / 1048576.0,
                     a->peak_rss > 0 ? 100.0 * (b->peak_rss / a->peak_rss - 1.0) : 0.0);
            if (a->flops_step == b->flops_step)
                snprintf(fl, sizeof fl, "%.3f", (double)b->flops_step / 1e9);
            else
                snprintf(fl, sizeof fl, "%.3f -> %.3f", (double)a->flops_step / 1e9,
                         (double)b->flops_step / 1e9);
        } else {
            fmt_acc(x, sizeof x, r->test_acc);
            snprintf(acc, sizeof acc, a ? "%s -> -" : "- -> %s", x);
            snprintf(sps, sizeof sps, a ? "%.3g -> -" : "- -> %.3g", r->steps_per_s);
            snprintf(rss, sizeof rss, a ? "%.1f -> -" : "- -> %.1f", r->peak_rss / 1048576.0);
            snprintf(fl, sizeof fl, "%.3f", (double)r->flops_step / 1e9);
        }
        printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->task, r->mixer, r->run_id, acc,
               sps, rss, fl, verdict[i]);
    }
    int matched = 0, only_a = 0, only_b = 0;
    for (int i = 0; i < npairs; i++) {
        matched += pairs[i].a && pairs[i].b;
        only_a += !pairs[i].b;
        only_b += !pairs[i].a;
    }
    printf("\n%d matched, %d only in BASE, %d only in NEW: %s\n", matched, only_a, only_b,
           bad ? "regressions (see above)" : "within tolerances");
    free(verdict);
    free(pairs);
    free(set[0]);
    free(set[1]);
    return bad ? XB_EXIT_REGRESSION : XB_EXIT_OK;
}
