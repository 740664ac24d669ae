/* xformer-bench table: reports → the tables of a paper (Markdown, LaTeX booktabs, CSV). */
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

enum { FMT_MD, FMT_LATEX, FMT_CSV };
static const char *const FORMATS[] = {
    [FMT_MD] = "md", [FMT_LATEX] = "latex", [FMT_CSV] = "csv", NULL};
_Static_assert(XB_ARRAY_LEN(FORMATS) == FMT_CSV + 2, "a name for every format, then NULL");
enum { LAYOUT_ACCURACY, LAYOUT_EFFICIENCY };
static const char *const LAYOUTS[] = {
    [LAYOUT_ACCURACY] = "accuracy", [LAYOUT_EFFICIENCY] = "efficiency", NULL};
_Static_assert(XB_ARRAY_LEN(LAYOUTS) == LAYOUT_EFFICIENCY + 2, "a name for every layout");
enum { ORDER_GIVEN, ORDER_CLASS };
static const char *const ORDERS[] = {[ORDER_GIVEN] = "given", [ORDER_CLASS] = "class", NULL};
_Static_assert(XB_ARRAY_LEN(ORDERS) == ORDER_CLASS + 2, "a name for every order, then NULL");

/* The arguments of `table`. */
typedef struct TableArgs {
    CliList paths; /* the operands: reports and directories of them */
    int format, layout, order;
    double margin;
} TableArgs;

enum { TABLE_FORMAT, TABLE_LAYOUT, TABLE_ORDER, TABLE_MARGIN, N_TABLE_OPTS };
static const CliOpt TABLE_OPTS[] = {
    [TABLE_FORMAT] = {"--format", 0, CLI_ENUM, CLI_AT(TableArgs, format, int), .choices = FORMATS,
                      .def = "md", .help = "md (Markdown), latex (booktabs) or csv"},
    [TABLE_LAYOUT] = {"--layout", 0, CLI_ENUM, CLI_AT(TableArgs, layout, int), .choices = LAYOUTS,
                      .def = "accuracy",
                      .help = "accuracy: the Long Range Arena's Table 1, a row per mechanism, a "
                              "column per task with the test accuracy (%), the average over the "
                              "tasks (see Seeds below); efficiency: its Table 2, a row per "
                              "mechanism, steps/s (from the median step when the report has one) "
                              "and peak memory at each sequence length, `full` in absolute units, "
                              "the others relative to it (several reports of a cell are "
                              "averaged)"},
    [TABLE_ORDER] = {"--order", 0, CLI_ENUM, CLI_AT(TableArgs, order, int), .choices = ORDERS,
                     .def = "given",
                     .help = "rows and columns in the order the reports give them, or rows "
                             "grouped by taxonomy class"},
    [TABLE_MARGIN] = {"--converged-margin", 0, CLI_REAL, CLI_AT(TableArgs, margin, double),
                      "POINTS", .min = 0, .max = INFINITY, .def = "3",
                      .valid = "a number of points >= 0",
                      .help =
                          "a run converged when its test accuracy beats the majority baseline "
                          "by more than POINTS percentage points; 3 is about twice the standard "
                          "deviation of a coin-flip accuracy on 1000 test examples"},
};

static const CliHelp TABLE_HELP[] = {
    {"Turns reports (files, or directories of them and of their subdirectories) into a table\n"
     "on stdout.\n",
     ~0u},
    {"Seeds (accuracy layout): the reports of one mechanism and task are its seeds\n"
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
     "Exit status: 0, or 2 bad input.\n",
     0},
};

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

/* The lengths of the reports, in increasing order, into L (room for n); returns how many. */
static int sorted_lengths(const ReportSummary *r, int n, int *L) {
    int nl = 0;
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
    return nl;
}

/* The efficiency layout's cells: speed and memory per mechanism (rows) and length (lens). */
typedef struct EffCells {
    Axis rows, lens;
    Cell *sp, *mem; /* (rows.n, lens.n) */
    int full;       /* the row of `full`, -1: none */
} EffCells;

static void eff_cells(EffCells *e, const ReportSummary *r, int n) {
    memset(e, 0, sizeof *e);
    int *L = malloc((size_t)(n ? n : 1) * sizeof *L);
    XB_ASSERT(L);
    const int nl = sorted_lengths(r, n, L);
    for (int k = 0; k < nl; k++) {
        char s[32];
        snprintf(s, sizeof s, "%d", L[k]);
        axis_index(&e->lens, s);
    }
    free(L);
    for (int i = 0; i < n; i++) axis_index(&e->rows, r[i].mixer);
    e->sp = calloc((size_t)e->rows.n * nl, sizeof *e->sp);
    e->mem = calloc((size_t)e->rows.n * nl, sizeof *e->mem);
    XB_ASSERT(e->sp && e->mem);
    for (int i = 0; i < n; i++) {
        char s[32];
        snprintf(s, sizeof s, "%d", r[i].max_len);
        const int k = axis_index(&e->rows, r[i].mixer) * nl + axis_index(&e->lens, s);
        /* the median step when there is one (bench), else the run's mean rate */
        e->sp[k].sum += r[i].step_s_median > 0 ? 1.0 / r[i].step_s_median : r[i].steps_per_s;
        e->sp[k].n++;
        e->mem[k].sum += r[i].peak_rss, e->mem[k].n++;
    }
    e->full = -1;
    for (int m = 0; m < e->rows.n; m++)
        if (!strcmp(e->rows.name[m], "full")) e->full = m;
}

/* A row of the efficiency layout: steps/s, then memory, at each length; `full` absolute, the
 * others relative to it. */
static void eff_row(const EffCells *e, int m, int fmt) {
    const int nl = e->lens.n, full = e->full;
    row_begin(fmt);
    put_text(fmt, e->rows.name[m]);
    for (int part = 0; part < 2; part++)
        for (int k = 0; k < nl; k++) {
            fputs(sep(fmt), stdout);
            const Cell *cells = part ? e->mem : e->sp;
            const double x = cell_mean(&cells[m * nl + k]);
            const double y = full >= 0 ? cell_mean(&cells[full * nl + k]) : NAN;
            char text[48];
            if (isnan(x))
                snprintf(text, sizeof text, "-");
            else if (m == full || isnan(y))
                snprintf(text, sizeof text, part ? "%.1f MiB" : "%.2f", part ? x / 1048576.0 : x);
            else
                snprintf(text, sizeof text, "%.2fx", x / y);
            put_text(fmt, text);
        }
    row_end(fmt);
}

static void efficiency_table(const ReportSummary *r, int n, int fmt, int by_class) {
    EffCells e;
    eff_cells(&e, r, n);
    const int nl = e.lens.n;
    const char **names = malloc((size_t)(2 * nl + 1) * sizeof *names);
    char(*buf)[48] = malloc((size_t)(2 * nl + 1) * sizeof *buf);
    int *order = malloc((size_t)(e.rows.n + 1) * sizeof *order);
    XB_ASSERT(names && buf && order);
    for (int k = 0; k < nl; k++) {
        snprintf(buf[k], sizeof buf[k], "steps/s @%s", e.lens.name[k]);
        snprintf(buf[nl + k], sizeof buf[nl + k], "memory @%s", e.lens.name[k]);
        names[k] = buf[k], names[nl + k] = buf[nl + k];
    }
    header(fmt, 2 * nl, names);
    row_order(&e.rows, r, n, by_class, order);
    /* full first when present: the others are relative to it */
    for (int i = 0; i < e.rows.n && e.full > 0; i++)
        if (order[i] == e.full) {
            memmove(order + 1, order, (size_t)i * sizeof *order);
            order[0] = e.full;
            break;
        }
    for (int i = 0; i < e.rows.n; i++) eff_row(&e, order[i], fmt);
    footer(fmt);
    free(order), free(names), free(buf), free(e.sp), free(e.mem);
    free(e.rows.name), free(e.lens.name);
}

static int table(const void *args, const CliSeen *seen) {
    const TableArgs *a = args;
    (void)seen;
    ReportSummary *r;
    int n;
    XbError err;
    xb_error_clear(&err);
    if (summary_load(a->paths.v, a->paths.n, &r, &n, &err)) return cli_command_error("table", &err);
    if (a->layout == LAYOUT_EFFICIENCY)
        efficiency_table(r, n, a->format, a->order == ORDER_CLASS);
    else
        accuracy_table(r, n, a->format, a->order == ORDER_CLASS, a->margin);
    free(r);
    return XB_EXIT_OK;
}

CLI_CHECK_TABLE(TABLE_OPTS, N_TABLE_OPTS);
const CliCommand CMD_TABLE =
    CLI_COMMAND("table", TableArgs, paths, table, TABLE_OPTS, TABLE_HELP,
                .summary = "turn reports into accuracy or efficiency tables (md, latex, csv)",
                .operands = "REPORTS...", .min_operands = 1, .max_operands = -1,
                .missing = "expected report files or directories (see --help)");
