/* xformer-bench plot: reports → SVG figures (the Long Range Arena's Figure 3, and scaling curves).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/xassert.h"
#include "cli/plot_frontier.h"
#include "cli/svg.h"
#include "report/summary.h"

static const char *const USAGE =
    "usage: xformer-bench plot REPORTS... --kind frontier|scaling -o FILE.svg\n"
    "                          [--task TASK] [--length L] [--facet task]\n\n"
    "Draws reports (files, or directories of them and of their subdirectories) as an SVG\n"
    "figure.\n\n"
    "  --kind frontier  the Long Range Arena's Figure 3 (default): one circle per mechanism,\n"
    "                   its test accuracy (%, the mean over seeds, then over the tasks present;\n"
    "                   a mechanism without one of those tasks is not drawn) against its\n"
    "                   training speed in examples/s, its area proportional to the peak RSS,\n"
    "                   one colour per taxonomy class, ± sd over seeds as a bar. Speed and\n"
    "                   memory come from the bench reports among REPORTS (those without a\n"
    "                   test accuracy) at one sequence length; without bench reports, from the\n"
    "                   training runs themselves. Labels never overlap: each goes beside its\n"
    "                   circle where there is room, else to the nearest free place with a\n"
    "                   leader line. The mechanisms left out are named under the figure.\n"
    "  --kind scaling   time per training step and peak memory against the sequence length on\n"
    "                   log-log axes, one line per mechanism\n"
    "  --task TASK      frontier: the accuracy on TASK alone\n"
    "  --length L       frontier: the bench reports at length L (default: the longest)\n"
    "  --facet task     frontier: a grid of panels, one per task, on a shared speed axis\n"
    "  -o, --output F   the SVG file to write (required)\n\n"
    "Exit status: 0, or 2 bad input (a report, an option) or a figure that cannot be written.\n";

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

int cmd_plot(int argc, char **argv) {
    int kind = 0;
    const char *out = NULL, *frontier_only = NULL;
    FrontierOptions fo = {NULL, 0, 0};
    const char **paths = malloc((size_t)argc * sizeof *paths);
    XB_ASSERT(paths);
    int np = 0, bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(paths);
            return XB_EXIT_OK;
        }
        if (!strcmp(a, "--kind")) {
            kind = !v ? -1 : !strcmp(v, "frontier") ? 0 : !strcmp(v, "scaling") ? 1 : -1;
            if (kind < 0)
                bad = cli_usage_error("plot", "--kind: expected frontier or scaling, got \"%s\"",
                                      v ? v : "");
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) bad = cli_usage_error("plot", "%s needs a file name (see --help)", a);
            out = v;
            i++;
        } else if (!strcmp(a, "--task")) {
            if (!v || !*v) bad = cli_usage_error("plot", "--task needs a task name (see --help)");
            fo.task = v, frontier_only = a;
            i++;
        } else if (!strcmp(a, "--length")) {
            long long L = 0;
            if (!v || cli_parse_int(v, 2, 1048576, &L))
                bad = cli_usage_error("plot",
                                      "--length: expected a sequence length (an integer in "
                                      "[2, 1048576]), got \"%s\"",
                                      v ? v : "");
            fo.length = (int)L, frontier_only = a;
            i++;
        } else if (!strcmp(a, "--facet")) {
            if (!v || strcmp(v, "task"))
                bad = cli_usage_error("plot", "--facet: expected task, got \"%s\"", v ? v : "");
            fo.facet = 1, frontier_only = a;
            i++;
        } else if (a[0] == '-' && a[1]) {
            bad = cli_usage_error("plot",
                                  "unknown option '%s' (valid: --kind, -o, --task, --length, "
                                  "--facet, --help)",
                                  a);
        } else {
            paths[np++] = a;
        }
    }
    if (!bad && kind && frontier_only)
        bad = cli_usage_error("plot", "%s: only for --kind frontier", frontier_only);
    if (!bad && fo.facet && fo.task)
        bad = cli_usage_error("plot", "--facet task draws every task: it cannot be combined with "
                                      "--task");
    if (!bad && !np)
        bad = cli_usage_error("plot", "expected report files or directories (see --help)");
    if (!bad && !out) bad = cli_usage_error("plot", "expected -o FILE.svg (see --help)");
    if (bad) {
        free(paths);
        return XB_EXIT_USAGE;
    }
    ReportSummary *r = NULL;
    int n = 0;
    XbError err;
    xb_error_clear(&err);
    int rc = summary_load(paths, np, &r, &n, &err);
    free(paths);
    Frontier *fr = NULL;
    if (!rc && !kind && !(fr = frontier_prepare(r, n, &fo, &err))) rc = -1;
    AtomicFile af;
    if (!rc && !(rc = fileio_open(&af, out, "figure", &err))) {
        if (kind)
            scaling(af.f, r, n);
        else
            frontier_draw(af.f, fr);
        rc = fileio_commit(&af, &err);
    }
    frontier_free(fr);
    free(r);
    if (rc) {
        char line[2048];
        xb_error_format(&err, line, sizeof line);
        fprintf(stderr, "xformer-bench plot: %s\n", line);
        return XB_EXIT_USAGE; /* as --help says: no run is involved, so never 3 */
    }
    return XB_EXIT_OK;
}
