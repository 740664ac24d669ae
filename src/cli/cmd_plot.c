/* xformer-bench plot: reports → SVG figures (the Long Range Arena's Figure 3, and scaling curves).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/xassert.h"
#include "cli/plot_frontier.h"
#include "cli/svg.h"
#include "report/summary.h"

enum { KIND_FRONTIER, KIND_SCALING };
static const char *const KINDS[] = {[KIND_FRONTIER] = "frontier", [KIND_SCALING] = "scaling", NULL};
_Static_assert(XB_ARRAY_LEN(KINDS) == KIND_SCALING + 2, "a name for every kind, then NULL");
static const char *const FACETS[] = {"task", NULL};

/* The arguments of `plot`. */
typedef struct PlotArgs {
    CliList paths; /* the operands: reports and directories of them */
    int kind;
    const char *output, *task;
    long long length;
    int facet; /* the index in FACETS: 0, when given */
} PlotArgs;

enum { PLOT_KIND, PLOT_OUTPUT, PLOT_TASK, PLOT_LENGTH, PLOT_FACET, N_PLOT_OPTS };
static const CliOpt PLOT_OPTS[] = {
    [PLOT_KIND] = {"--kind", 0, CLI_ENUM, CLI_AT(PlotArgs, kind, int), .choices = KINDS,
                   .def = "frontier",
                   .help = "frontier: the Long Range Arena's Figure 3, one circle per mechanism, "
                           "its test accuracy (%, the mean over seeds, then over the tasks "
                           "present; a mechanism without one of those tasks is not drawn) against "
                           "its training speed in examples/s, its area proportional to the peak "
                           "RSS, one colour per taxonomy class, ± sd over seeds as a bar. Speed "
                           "and memory come from the bench reports among REPORTS (those without a "
                           "test accuracy) at one sequence length; without bench reports, from "
                           "the training runs themselves. Labels never overlap: each goes beside "
                           "its circle where there is room, else to the nearest free place with a "
                           "leader line. The mechanisms left out are named under the figure. "
                           "scaling: time per training step and peak memory against the sequence "
                           "length on log-log axes, one line per mechanism"},
    [PLOT_OUTPUT] = {"--output", 'o', CLI_STR, CLI_AT(PlotArgs, output, const char *), "FILE.svg",
                     .needs = "a file name", .required = 1, .help = "the SVG file to write"},
    [PLOT_TASK] = {"--task", 0, CLI_STR, CLI_AT(PlotArgs, task, const char *), "TASK",
                   .needs = "a task name", .modes = 1u << KIND_FRONTIER,
                   .help = "frontier: the accuracy on TASK alone"},
    [PLOT_LENGTH] = {"--length", 0, CLI_INT, CLI_AT(PlotArgs, length, long long), "L", .min = 2,
                     .max = 1048576, .valid = "a sequence length (an integer in [2, 1048576])",
                     .modes = 1u << KIND_FRONTIER,
                     .help = "frontier: the bench reports at length L (default: the longest)"},
    [PLOT_FACET] = {"--facet", 0, CLI_ENUM, CLI_AT(PlotArgs, facet, int), .choices = FACETS,
                    .modes = 1u << KIND_FRONTIER,
                    .help = "frontier: a grid of panels, one per task, on a shared speed axis"},
};

static const CliMode PLOT_MODES[] = {
    [KIND_FRONTIER] = {"--kind frontier", PLOT_KIND, KIND_FRONTIER},
    [KIND_SCALING] = {"--kind scaling", PLOT_KIND, KIND_SCALING},
};
_Static_assert(XB_ARRAY_LEN(PLOT_MODES) == KIND_SCALING + 1, "a mode for every kind");

static const CliHelp PLOT_HELP[] = {
    {"Draws reports (files, or directories of them and of their subdirectories) as an SVG\n"
     "figure.\n",
     ~0u},
    {"Exit status: 0, or 2 bad input (a report, an option) or a figure that cannot be written.\n",
     0},
};

/* Seconds per training step: the median step when the report has one (bench), else the mean. */
static double step_time(const ReportSummary *r) {
    return r->step_s_median > 0 ? r->step_s_median : 1.0 / r->steps_per_s;
}

/* A report the scaling plot can draw on its log axes: a step time and a peak memory that are
 * positive and finite (1 / a subnormal steps/s is not). */
static int scalable(const ReportSummary *r) {
    const double t = step_time(r), m = r->peak_rss / 1048576.0;
    return r->steps_per_s > 0 && t > 0 && isfinite(t) && m > 0 && isfinite(m);
}

static int by_len(const void *a, const void *b) {
    const ReportSummary *x = *(const ReportSummary *const *)a,
                        *y = *(const ReportSummary *const *)b;
    return (x->max_len > y->max_len) - (x->max_len < y->max_len);
}

static void scaling(FILE *o, const ReportSummary *r, int n) {
    const char **mix = malloc((size_t)n * sizeof *mix);
    const ReportSummary **line = malloc((size_t)n * sizeof *line);
    XB_ASSERT(mix && line);
    int nm = 0;
    SvgFrame ft = {90, 30, 340, 360, INFINITY, -INFINITY, INFINITY, -INFINITY, 1, 1};
    SvgFrame fm = ft;
    fm.x0 = 520;
    for (int i = 0; i < n; i++) {
        svg_key_index(mix, &nm, r[i].mixer);
        if (!scalable(&r[i])) continue;
        const double t = step_time(&r[i]), m = r[i].peak_rss / 1048576.0;
        ft.xmin = fmin(ft.xmin, r[i].max_len), ft.xmax = fmax(ft.xmax, r[i].max_len);
        ft.ymin = fmin(ft.ymin, t), ft.ymax = fmax(ft.ymax, t);
        fm.ymin = fmin(fm.ymin, m), fm.ymax = fmax(fm.ymax, m);
    }
    if (!(ft.xmax > 0))
        ft.xmin = 1024, ft.xmax = 2048, ft.ymin = fm.ymin = 1, ft.ymax = fm.ymax = 10;
    fm.xmin = ft.xmin, fm.xmax = ft.xmax;
    const SvgTicks xs = svg_nice_range(&ft.xmin, &ft.xmax, 1, 1);
    fm.xmin = ft.xmin, fm.xmax = ft.xmax;
    const SvgTicks ys = svg_nice_range(&ft.ymin, &ft.ymax, 1, 0),
                   ms = svg_nice_range(&fm.ymin, &fm.ymax, 1, 0);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1120\" height=\"460\" "
               "viewBox=\"0 0 1120 460\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"1120\" height=\"460\" fill=\"white\"/>\n");
    svg_axes(o, &ft, &xs, &ys, "sequence length", "time per training step (s)");
    svg_axes(o, &fm, &xs, &ms, "sequence length", "peak memory (MiB)");
    for (int k = 0; k < nm; k++) {
        int nl = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(r[i].mixer, mix[k]) && scalable(&r[i])) line[nl++] = &r[i];
        qsort(line, (size_t)nl, sizeof *line, by_len);
        const char *col = SVG_PALETTE[k % SVG_NPAL];
        for (int panel = 0; panel < 2; panel++) {
            const SvgFrame *f = panel ? &fm : &ft;
            fprintf(o,
                    "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                    "stroke-dasharray=\"%s\" points=\"",
                    col, svg_dash(k));
            for (int i = 0; i < nl; i++) {
                const double v = panel ? line[i]->peak_rss / 1048576.0 : step_time(line[i]);
                fprintf(o, "%s%.1f,%.1f", i ? " " : "", svg_px(f, line[i]->max_len), svg_py(f, v));
            }
            fputs("\"/>\n", o);
            for (int i = 0; i < nl; i++) {
                const double v = panel ? line[i]->peak_rss / 1048576.0 : step_time(line[i]);
                fprintf(
                    o, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>",
                    panel ? "mark-memory" : "mark", svg_px(f, line[i]->max_len), svg_py(f, v), col);
                svg_escape(o, line[i]->run_id);
                fprintf(o, ": L = %d, %.4g %s</title></circle>\n", line[i]->max_len, v,
                        panel ? "MiB" : "s");
            }
        }
    }
    svg_legend(o, 900, 40, mix, nm, "mechanism", 1);
    fputs("</svg>\n", o);
    free(mix);
    free(line);
}

static int plot(const void *args, const CliSeen *seen) {
    const PlotArgs *a = args;
    const FrontierOptions fo = {seen->given[PLOT_TASK] ? a->task : NULL, (int)a->length,
                                seen->given[PLOT_FACET] != 0};
    if (fo.facet && fo.task)
        return cli_usage_error("plot", "--facet task draws every task: it cannot be combined "
                                       "with --task");
    ReportSummary *r = NULL;
    int n = 0;
    XbError err;
    xb_error_clear(&err);
    int rc = summary_load(a->paths.v, a->paths.n, &r, &n, &err);
    Frontier *fr = NULL;
    if (!rc && a->kind == KIND_FRONTIER && !(fr = frontier_prepare(r, n, &fo, &err))) rc = -1;
    AtomicFile af;
    if (!rc && !(rc = fileio_open(&af, a->output, "figure", &err))) {
        if (a->kind == KIND_SCALING)
            scaling(af.f, r, n);
        else
            frontier_draw(af.f, fr);
        rc = fileio_commit(&af, &err);
    }
    frontier_free(fr);
    free(r);
    /* as --help says: no run is involved, so never 3 */
    return rc ? cli_command_error("plot", &err) : XB_EXIT_OK;
}

CLI_CHECK_TABLE(PLOT_OPTS, N_PLOT_OPTS);
const CliCommand CMD_PLOT =
    CLI_COMMAND("plot", PlotArgs, paths, plot, PLOT_OPTS, PLOT_HELP,
                .summary = "draw reports as SVG: accuracy-speed-memory frontier, scaling curves",
                .operands = "REPORTS...", .min_operands = 1, .max_operands = -1,
                .missing = "expected report files or directories (see --help)", .modes = PLOT_MODES,
                .n_modes = XB_ARRAY_LEN(PLOT_MODES));
