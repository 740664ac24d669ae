/* xformer-bench table: reports → the tables of a paper (Markdown, LaTeX booktabs, CSV). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/xassert.h"
#include "report/summary.h"

static const char *const USAGE =
    "usage: xformer-bench table REPORTS... [--format md|latex|csv]\n"
    "                           [--layout accuracy|efficiency] [--order given|class]\n\n"
    "Turns reports (files, or directories of them and of their subdirectories) into a table\n"
    "on stdout.\n\n"
    "  --layout accuracy    the Long Range Arena's Table 1: a row per mechanism, a column per\n"
    "                       task with the test accuracy (%), the average over the tasks, the best\n"
    "                       of each column in bold (default)\n"
    "  --layout efficiency  its Table 2: a row per mechanism, steps/s (from the median step when\n"
    "                       the report has one) and peak memory at each sequence length; `full`\n"
    "                       in absolute units, the others relative to it\n"
    "  --format FORMAT      md (Markdown, default), latex (booktabs) or csv\n"
    "  --order ORDER        rows and columns in the order the reports give them (default), or\n"
    "                       rows grouped by taxonomy class\n\n"
    "Several reports of the same cell (seeds) are averaged. Exit status: 0, or 2 bad input.\n";

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

/* A cell: the sum and count of the values that fall in it. */
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

/* A cell's text, bold when best (not in CSV). */
static void put_value(int fmt, const char *text, int best) {
    if (best && fmt == FMT_MD)
        printf("**%s**", text);
    else if (best && fmt == FMT_LATEX)
        printf("\\textbf{%s}", text);
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

static void accuracy_table(const ReportSummary *r, int n, int fmt, int by_class) {
    Axis rows = {0}, cols = {0};
    for (int i = 0; i < n; i++) {
        axis_index(&rows, r[i].mixer);
        axis_index(&cols, r[i].task);
    }
    Cell *cell = calloc((size_t)rows.n * cols.n, sizeof *cell);
    XB_ASSERT(cell);
    for (int i = 0; i < n; i++) {
        if (isnan(r[i].test_acc)) continue;
        Cell *c = &cell[axis_index(&rows, r[i].mixer) * cols.n + axis_index(&cols, r[i].task)];
        c->sum += 100.0 * r[i].test_acc, c->n++;
    }
    /* the average over every task, when a row has them all */
    const int nc = cols.n + 1;
    double *v = malloc((size_t)rows.n * nc * sizeof *v), *best = malloc((size_t)nc * sizeof *best);
    XB_ASSERT(v && best);
    for (int c = 0; c < nc; c++) best[c] = -INFINITY;
    for (int m = 0; m < rows.n; m++) {
        double sum = 0.0;
        int all = 1;
        for (int t = 0; t < cols.n; t++) {
            const double x = cell_mean(&cell[m * cols.n + t]);
            v[m * nc + t] = x;
            all &= !isnan(x);
            sum += isnan(x) ? 0.0 : x;
        }
        v[m * nc + cols.n] = all ? sum / cols.n : NAN;
        for (int c = 0; c < nc; c++)
            if (!isnan(v[m * nc + c])) best[c] = fmax(best[c], v[m * nc + c]);
    }
    const char **names = malloc((size_t)nc * sizeof *names);
    XB_ASSERT(names);
    for (int t = 0; t < cols.n; t++) names[t] = cols.name[t];
    names[cols.n] = "Avg";
    header(fmt, nc, names);
    int *order = malloc((size_t)rows.n * sizeof *order);
    XB_ASSERT(order);
    row_order(&rows, r, n, by_class, order);
    for (int i = 0; i < rows.n; i++) {
        const int m = order[i];
        row_begin(fmt);
        put_text(fmt, rows.name[m]);
        for (int c = 0; c < nc; c++) {
            fputs(sep(fmt), stdout);
            const double x = v[m * nc + c];
            char text[32];
            snprintf(text, sizeof text, isnan(x) ? "-" : "%.2f", x);
            /* bold compares the printed values, so ties at two decimals are all bold */
            char btext[32];
            snprintf(btext, sizeof btext, "%.2f", best[c]);
            put_value(fmt, text, !isnan(x) && rows.n > 1 && !strcmp(text, btext));
        }
        row_end(fmt);
    }
    footer(fmt);
    free(order), free(names), free(v), free(best), free(cell);
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
        } else if (a[0] == '-' && a[1]) {
            bad = cli_usage_error("table",
                                  "unknown option '%s' (valid: --format, --layout, "
                                  "--order, --help)",
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
        accuracy_table(r, n, fmt, by_class);
    free(r);
    return XB_EXIT_OK;
}
