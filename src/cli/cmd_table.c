/* xformer-bench table: reports → the tables of a paper (Markdown, LaTeX booktabs, CSV). */
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
    "usage: xformer-bench table REPORTS... [--format md|latex|csv]\n"
    "                           [--layout accuracy|efficiency] [--order given|class]\n"
    "                           [--converged-margin POINTS]\n\n"
    "Turns reports (files, or directories of them and of their subdirectories) into a table\n"
    "on stdout.\n\n"
    "  --layout accuracy    the Long Range Arena's Table 1: a row per mechanism, a column per\n"
    "                       task with the test accuracy (%), the average over the tasks\n"
    "                       (default); see Seeds below\n"
    "  --layout efficiency  its Table 2: a row per mechanism, steps/s (from the median step when\n"
    "                       the report has one) and peak memory at each sequence length; `full`\n"
    "                       in absolute units, the others relative to it (several reports of a\n"
    "                       cell are averaged)\n"
    "  --format FORMAT      md (Markdown, default), latex (booktabs) or csv\n"
    "  --order ORDER        rows and columns in the order the reports give them (default), or\n"
    "                       rows grouped by taxonomy class\n"
    "  --converged-margin POINTS\n"
    "                       a run converged when its test accuracy beats the majority baseline\n"
    "                       by more than POINTS percentage points (default 3: about twice the\n"
    "                       standard deviation of a coin-flip accuracy on 1000 test examples)\n\n"
    "Seeds (accuracy layout): the reports of one mechanism and task are its seeds\n"
    "(config.experiment.seed; reports of the same seed are averaged first). A cell shows the\n"
    "mean over the seeds, \"± sd\" (sample standard deviation) and their number when there\n"
    "are two or more, \"36.40 ± 0.50 (3)\", and \"(3, 1 conv.)\" when only some converged; a\n"
    "single converged seed shows its accuracy alone, \"33.00\". Avg is the mean over the\n"
    "tasks (when the row has every task), ± sqrt(sum of the tasks' variances) / tasks when\n"
    "every task has two seeds or more. The best of a column is bold when its interval\n"
    "(mean ± sd, a single seed a point) meets no other cell's; otherwise it and every cell\n"
    "whose interval meets its interval are tied, marked with a dagger (LaTeX $^\\dagger$);\n"
    "the marks judge the values as printed (two decimals). A legend under the table says\n"
    "which of these notations it uses. CSV has, per task, TASK_mean, TASK_std, TASK_n,\n"
    "TASK_converged and TASK_mark (best, tie or empty), then Avg_mean, Avg_std, Avg_mark.\n\n"
    "Exit status: 0, or 2 bad input.\n";

enum { FMT_MD, FMT_LATEX, FMT_CSV };

typedef struct Axis {
    char (*name)[64];
    int n, cap;
} Axis;

/* Index of name in the axis, added at the end when new. */
static int axis_index(Axis *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->name[i], name)) return i;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->name = realloc(a->name, (size_t)a->cap * sizeof *a->name);
        XB_ASSERT(a->name);
    }
    snprintf(a->name[a->n], sizeof a->name[a->n], "%s", name);
    return a->n++;
}

/* A cell of the efficiency layout: the sum and count of the values that fall in it. */
typedef struct Cell {
    double sum;
    int n;
} Cell;

static double cell_mean(const Cell *c) { return c->n ? c->sum / c->n : NAN; }

/* Prints s escaped for the format (LaTeX: _ & % #; CSV: quoted when needed). */
static void put_text(int fmt, const char *s) {
    if (fmt == FMT_LATEX) {
        for (; *s; s++) {
            if (strchr("_&%#$", *s)) putchar('\\');
            putchar(*s);
        }
    } else if (fmt == FMT_CSV && strpbrk(s, ",\"\n")) {
        putchar('"');
        for (; *s; s++) {
            if (*s == '"') putchar('"');
            putchar(*s);
        }
        putchar('"');
    } else {
        fputs(s, stdout);
    }
}

static const char *sep(int fmt) { return fmt == FMT_MD ? " | " : fmt == FMT_LATEX ? " & " : ","; }

static void row_begin(int fmt) {
    if (fmt == FMT_MD) fputs("| ", stdout);
}
static void row_end(int fmt) {
    fputs(fmt == FMT_MD ? " |\n" : fmt == FMT_LATEX ? " \\\\\n" : "\n", stdout);
}

/* A cell's text: bold when best, with a dagger when tied for the best. */
static void put_value(int fmt, const char *text, StatsMark mark) {
    if (mark == STATS_MARK_BEST && fmt == FMT_MD)
        printf("**%s**", text);
    else if (mark == STATS_MARK_BEST && fmt == FMT_LATEX)
        printf("\\textbf{%s}", text);
    else if (mark == STATS_MARK_TIE)
        printf(fmt == FMT_LATEX ? "%s$^\\dagger$" : "%s†", text);
    else
        fputs(text, stdout);
}

static void header(int fmt, int ncols, const char *const *cols) {
    if (fmt == FMT_LATEX) {
        printf("\\begin{tabular}{l");
        for (int c = 0; c < ncols; c++) printf("r");
        printf("}\n\\toprule\n");
    }
    row_begin(fmt);
    put_text(fmt, "Model");
    for (int c = 0; c < ncols; c++) {
        fputs(sep(fmt), stdout);
        put_text(fmt, cols[c]);
    }
    row_end(fmt);
    if (fmt == FMT_MD) {
        printf("|---");
        for (int c = 0; c < ncols; c++) printf("|---:");
        printf("|\n");
    } else if (fmt == FMT_LATEX) {
        printf("\\midrule\n");
    }
}

static void footer(int fmt) {
    if (fmt == FMT_LATEX) printf("\\bottomrule\n\\end{tabular}\n");
}

/* The taxonomy class of a mechanism, from the first of its reports. */
static const char *class_of(const ReportSummary *r, int n, const char *mixer) {
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].mixer, mixer)) return r[i].classes;
    return "";
}

/* Sorting by class: the baseline (full attention) first, then the survey's labels. */
static int class_cmp(const char *a, const char *b) {
    const int ba = !strcmp(a, "baseline"), bb = !strcmp(b, "baseline");
    return ba != bb ? bb - ba : strcmp(a, b);
}

/* Row order: as given, or stably grouped by the mechanism's taxonomy class. */
static void row_order(const Axis *rows, const ReportSummary *r, int n, int by_class, int *order) {
    for (int i = 0; i < rows->n; i++) order[i] = i;
    if (!by_class) return;
    for (int i = 1; i < rows->n; i++) /* insertion sort: stable */
        for (int j = i; j > 0 && class_cmp(class_of(r, n, rows->name[order[j - 1]]),
                                           class_of(r, n, rows->name[order[j]])) > 0;
             j--) {
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
}

/* The accuracy layout's cells: the seeds of each (mechanism, task), and each row's average. */
typedef struct AccCell {
    SeedCell s;     /* mean and sd in %, rounded to the two decimals printed */
    StatsMark mark; /* within its column */
} AccCell;

/* x rounded to two decimals, as printed: the marks judge the numbers the reader sees. */
static double round2(double x) { return isnan(x) ? x : round(x * 100.0) / 100.0; }

/* What a table used, for its legend. */
typedef struct Used {
    int spread, avg_spread, unconverged, bold, tie;
} Used;

/* A cell's text: "33.00", "36.40 ± 0.50 (3)", "50.10 ± 0.20 (3, 1 conv.)", "50.00 (1, 0 conv.)";
 * the average has no count. */
static void cell_text(char *buf, size_t n, int fmt, const AccCell *c, int avg, Used *u) {
    const char *pm = fmt == FMT_LATEX ? " $\\pm$ " : " ± ";
    if (c->s.n == 0 || isnan(c->s.mean)) {
        snprintf(buf, n, "-");
        return;
    }
    int k = snprintf(buf, n, "%.2f", c->s.mean);
    if (!isnan(c->s.sd)) {
        k += snprintf(buf + k, n - (size_t)k, "%s%.2f", pm, c->s.sd);
        if (avg)
            u->avg_spread = 1;
        else
            u->spread = 1;
    }
    if (!avg && c->s.converged < c->s.n) {
        snprintf(buf + k, n - (size_t)k, " (%d, %d conv.)", c->s.n, c->s.converged);
        u->unconverged = 1;
    } else if (!avg && c->s.n > 1) {
        snprintf(buf + k, n - (size_t)k, " (%d)", c->s.n);
    }
}

/* The legend under the table, naming only the notations the table uses. */
static void legend(int fmt, const Used *u, double margin) {
    if (!u->spread && !u->unconverged && !u->tie && !u->avg_spread) return;
    const int tex = fmt == FMT_LATEX;
    const char *pm = tex ? "$\\pm$" : "±", *pct = tex ? "\\%" : "%";
    printf(tex ? "\\par\\smallskip{\\footnotesize " : "\n");
    printf("Test accuracy (%s)", pct);
    if (u->spread)
        printf(": mean %s standard deviation over the seeds, their number in parentheses", pm);
    if (u->unconverged)
        printf("%s(n, k conv.): only k of the n seeds beat the majority baseline by more than %g "
               "points",
               u->spread ? "; " : ": ", margin);
    printf(".");
    if (u->avg_spread)
        printf(" Avg %s: the root of the sum of the tasks' variances over the number of tasks.",
               pm);
    if (u->bold)
        printf(" %s: the best of its column, its interval (mean %s sd) meeting no other's.",
               tex ? "\\textbf{Bold}" : "**Bold**", pm);
    if (u->tie)
        printf(" %s: tied for the best of its column, the intervals of the highest mean and of "
               "this cell meeting.",
               tex ? "$^\\dagger$" : "†");
    printf(tex ? "}\n" : "\n");
}

static const char *mark_name(StatsMark m) {
    return m == STATS_MARK_BEST ? "best" : m == STATS_MARK_TIE ? "tie" : "";
}

/* A number of the CSV layout, or an empty field. */
static void csv_number(double x) {
    if (isnan(x))
        putchar(',');
    else
        printf(",%.2f", x);
}

/* The accuracy layout as CSV: for each task its mean, std, n, converged and mark (best, tie or
 * empty) in columns of their own, then the average's mean, std and mark; empty where there is
 * nothing (std of one seed, a missing cell). */
static void accuracy_csv(const Axis *rows, const Axis *cols, const AccCell *cell,
                         const int *order) {
    static const char *const PART[] = {"mean", "std", "n", "converged", "mark"};
    const int nc = cols->n + 1;
    fputs("Model", stdout);
    for (int t = 0; t < cols->n; t++)
        for (size_t k = 0; k < XB_ARRAY_LEN(PART); k++) {
            char h[96];
            snprintf(h, sizeof h, "%s_%s", cols->name[t], PART[k]);
            putchar(',');
            put_text(FMT_CSV, h);
        }
    fputs(",Avg_mean,Avg_std,Avg_mark\n", stdout);
    for (int i = 0; i < rows->n; i++) {
        const int m = order[i];
        put_text(FMT_CSV, rows->name[m]);
        for (int c = 0; c < nc; c++) {
            const AccCell *x = &cell[m * nc + c];
            csv_number(x->s.n ? x->s.mean : NAN);
            csv_number(x->s.n ? x->s.sd : NAN);
            if (c < cols->n) printf(",%d,%d", x->s.n, x->s.converged);
            printf(",%s", mark_name(x->mark));
        }
        putchar('\n');
    }
}

static void accuracy_table(const ReportSummary *r, int n, int fmt, int by_class, double margin) {
    Axis rows = {0}, cols = {0};
    for (int i = 0; i < n; i++) {
        axis_index(&rows, r[i].mixer);
        axis_index(&cols, r[i].task);
    }
    const int nc = cols.n + 1; /* the tasks, then their average */
    AccCell *cell = calloc((size_t)rows.n * nc, sizeof *cell);
    const ReportSummary **runs = malloc((size_t)(n ? n : 1) * sizeof *runs);
    double *mean = malloc((size_t)rows.n * 2 * sizeof *mean), *sd = mean + rows.n;
    StatsMark *mark = malloc((size_t)rows.n * sizeof *mark);
    XB_ASSERT(cell && runs && mean && mark);
    for (int m = 0; m < rows.n; m++) {
        double sum = 0.0, var = 0.0;
        int all = 1, spread = 1;
        for (int t = 0; t < cols.n; t++) {
            size_t k = 0;
            for (int i = 0; i < n; i++)
                if (!strcmp(r[i].mixer, rows.name[m]) && !strcmp(r[i].task, cols.name[t]))
                    runs[k++] = &r[i];
            SeedCell *c = &cell[m * nc + t].s;
            stats_seed_cell(c, NULL, runs, k, margin);
            all &= c->n > 0;
            spread &= c->n > 1;
            sum += c->n ? c->mean : 0.0, var += c->n > 1 ? c->sd * c->sd : 0.0;
            c->mean = round2(c->mean), c->sd = round2(c->sd);
        }
        /* the average over every task, when the row has them all; its spread when every task's
         * cell has one, taking the tasks as independent: sqrt(sum of variances) / tasks */
        SeedCell *a = &cell[m * nc + cols.n].s;
        a->n = all, a->converged = all;
        a->mean = all ? round2(sum / cols.n) : NAN;
        a->sd = all && spread ? round2(sqrt(var) / cols.n) : NAN;
    }
    Used used = {0};
    for (int c = 0; c < nc; c++) {
        for (int m = 0; m < rows.n; m++) {
            const SeedCell *s = &cell[m * nc + c].s;
            mean[m] = s->n ? s->mean : NAN, sd[m] = s->sd;
        }
        stats_marks(mark, mean, sd, (size_t)rows.n);
        for (int m = 0; m < rows.n; m++) {
            cell[m * nc + c].mark = mark[m];
            used.bold |= mark[m] == STATS_MARK_BEST, used.tie |= mark[m] == STATS_MARK_TIE;
        }
    }
    int *order = malloc((size_t)rows.n * sizeof *order);
    XB_ASSERT(order);
    row_order(&rows, r, n, by_class, order);
    if (fmt == FMT_CSV)
        accuracy_csv(&rows, &cols, cell, order);
    else {
        const char **names = malloc((size_t)nc * sizeof *names);
        XB_ASSERT(names);
        for (int t = 0; t < cols.n; t++) names[t] = cols.name[t];
        names[cols.n] = "Avg";
        header(fmt, nc, names);
        for (int i = 0; i < rows.n; i++) {
            const int m = order[i];
            row_begin(fmt);
            put_text(fmt, rows.name[m]);
            for (int c = 0; c < nc; c++) {
                fputs(sep(fmt), stdout);
                const AccCell *x = &cell[m * nc + c];
                char text[96];
                cell_text(text, sizeof text, fmt, x, c == cols.n, &used);
                put_value(fmt, text, x->mark);
            }
            row_end(fmt);
        }
        footer(fmt);
        legend(fmt, &used, margin);
        free(names);
    }
    free(order), free(mark), free(mean), free(runs), free(cell);
    free(rows.name), free(cols.name);
}

static void efficiency_table(const ReportSummary *r, int n, int fmt, int by_class) {
    Axis rows = {0}, lens = {0};
    /* lengths in increasing order */
    int *L = malloc((size_t)n * sizeof *L), nl = 0;
    XB_ASSERT(L);
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int k = 0; k < nl; k++) seen |= L[k] == r[i].max_len;
        if (!seen) L[nl++] = r[i].max_len;
    }
    for (int i = 1; i < nl; i++)
        for (int j = i; j > 0 && L[j - 1] > L[j]; j--) {
            const int t = L[j];
            L[j] = L[j - 1];
            L[j - 1] = t;
        }
    for (int k = 0; k < nl; k++) {
        char s[32];
        snprintf(s, sizeof s, "%d", L[k]);
        axis_index(&lens, s);
    }
    for (int i = 0; i < n; i++) axis_index(&rows, r[i].mixer);
    Cell *sp = calloc((size_t)rows.n * nl, sizeof *sp),
         *mem = calloc((size_t)rows.n * nl, sizeof *mem);
    XB_ASSERT(sp && mem);
    for (int i = 0; i < n; i++) {
        char s[32];
        snprintf(s, sizeof s, "%d", r[i].max_len);
        const int k = axis_index(&rows, r[i].mixer) * nl + axis_index(&lens, s);
        /* the median step when there is one (bench), else the run's mean rate */
        sp[k].sum += r[i].step_s_median > 0 ? 1.0 / r[i].step_s_median : r[i].steps_per_s;
        sp[k].n++;
        mem[k].sum += r[i].peak_rss, mem[k].n++;
    }
    int full = -1;
    for (int m = 0; m < rows.n; m++)
        if (!strcmp(rows.name[m], "full")) full = m;
    const char **names = malloc((size_t)2 * nl * sizeof *names);
    char(*buf)[48] = malloc((size_t)2 * nl * sizeof *buf);
    XB_ASSERT(names && buf);
    for (int k = 0; k < nl; k++) {
        snprintf(buf[k], sizeof buf[k], "steps/s @%s", lens.name[k]);
        snprintf(buf[nl + k], sizeof buf[nl + k], "memory @%s", lens.name[k]);
        names[k] = buf[k], names[nl + k] = buf[nl + k];
    }
    header(fmt, 2 * nl, names);
    int *order = malloc((size_t)rows.n * sizeof *order);
    XB_ASSERT(order);
    row_order(&rows, r, n, by_class, order);
    /* full first when present: the others are relative to it */
    if (full > 0)
        for (int i = 0; i < rows.n; i++)
            if (order[i] == full) {
                memmove(order + 1, order, (size_t)i * sizeof *order);
                order[0] = full;
                break;
            }
    for (int i = 0; i < rows.n; i++) {
        const int m = order[i];
        row_begin(fmt);
        put_text(fmt, rows.name[m]);
        for (int part = 0; part < 2; part++)
            for (int k = 0; k < nl; k++) {
                fputs(sep(fmt), stdout);
                const Cell *c = part ? &mem[m * nl + k] : &sp[m * nl + k];
                const Cell *f =
                    full >= 0 ? (part ? &mem[full * nl + k] : &sp[full * nl + k]) : NULL;
                const double x = cell_mean(c), y = f ? cell_mean(f) : NAN;
                char text[48];
                if (isnan(x))
                    snprintf(text, sizeof text, "-");
                else if (m == full || isnan(y))
                    snprintf(text, sizeof text, part ? "%.1f MiB" : "%.2f",
                             part ? x / 1048576.0 : x);
                else
                    snprintf(text, sizeof text, "%.2fx", x / y);
                put_text(fmt, text);
            }
        row_end(fmt);
    }
    footer(fmt);
    free(order), free(names), free(buf), free(sp), free(mem), free(L);
    free(rows.name), free(lens.name);
}

int cmd_table(int argc, char **argv) {
    int fmt = FMT_MD, layout = 0, by_class = 0;
    double margin = 3.0;
    const char **paths = malloc((size_t)argc * sizeof *paths);
    XB_ASSERT(paths);
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(paths);
            return XB_EXIT_OK;
        }
        int bad = 0;
        if (!strcmp(a, "--format")) {
            fmt = !v                    ? -1
                  : !strcmp(v, "md")    ? FMT_MD
                  : !strcmp(v, "latex") ? FMT_LATEX
                  : !strcmp(v, "csv")   ? FMT_CSV
                                        : -1;
            bad = fmt < 0 ? cli_usage_error("table",
                                            "--format: expected md, latex or csv, got "
                                            "\"%s\"",
                                            v ? v : "")
                          : 0;
            i++;
        } else if (!strcmp(a, "--layout")) {
            layout = !v ? -1 : !strcmp(v, "accuracy") ? 0 : !strcmp(v, "efficiency") ? 1 : -1;
            bad = layout < 0 ? cli_usage_error("table",
                                               "--layout: expected accuracy or "
                                               "efficiency, got \"%s\"",
                                               v ? v : "")
                             : 0;
            i++;
        } else if (!strcmp(a, "--order")) {
            by_class = !v ? -1 : !strcmp(v, "given") ? 0 : !strcmp(v, "class") ? 1 : -1;
            bad = by_class < 0 ? cli_usage_error("table",
                                                 "--order: expected given or class, got "
                                                 "\"%s\"",
                                                 v ? v : "")
                               : 0;
            i++;
        } else if (!strcmp(a, "--converged-margin")) {
            char *end = NULL;
            margin = v ? strtod(v, &end) : NAN;
            if (!v || end == v || *end || !(margin >= 0) || !isfinite(margin))
                bad = cli_usage_error("table",
                                      "--converged-margin: expected a number of points >= 0, "
                                      "got \"%s\"",
                                      v ? v : "");
            i++;
        } else if (a[0] == '-' && a[1]) {
            bad = cli_usage_error("table",
                                  "unknown option '%s' (valid: --format, --layout, "
                                  "--order, --converged-margin, --help)",
                                  a);
        } else {
            paths[np++] = a;
        }
        if (bad) {
            free(paths);
            return XB_EXIT_USAGE;
        }
    }
    if (!np) {
        free(paths);
        return cli_usage_error("table", "expected report files or directories (see --help)");
    }
    ReportSummary *r;
    int n;
    XbError err;
    xb_error_clear(&err);
    const int rc = summary_load(paths, np, &r, &n, &err);
    free(paths);
    if (rc) {
        char line[2048];
        xb_error_format(&err, line, sizeof line);
        fprintf(stderr, "xformer-bench table: %s\n", line);
        return XB_EXIT_USAGE;
    }
    if (layout)
        efficiency_table(r, n, fmt, by_class);
    else
        accuracy_table(r, n, fmt, by_class, margin);
    free(r);
    return XB_EXIT_OK;
}
