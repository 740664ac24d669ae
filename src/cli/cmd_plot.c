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
#include "cli/svg.h"
#include "report/summary.h"

static const char *const USAGE =
    "usage: xformer-bench plot REPORTS... --kind frontier|scaling -o FILE.svg\n\n"
    "Draws reports (files, or directories of them and of their subdirectories) as an SVG\n"
    "figure.\n\n"
    "  --kind frontier  the Long Range Arena's Figure 3: test accuracy against training steps/s,\n"
    "                   one circle per report, its area proportional to the peak memory, one\n"
    "                   colour per taxonomy class (default)\n"
    "  --kind scaling   time per training step and peak memory against the sequence length on\n"
    "                   log-log axes, one line per mechanism\n"
    "  -o, --output F   the SVG file to write (required)\n\n"
    "Exit status: 0, or 2 bad input (a report, an option) or a figure that cannot be written.\n";

/* A box in SVG pixels. */
typedef struct Box {
    double x0, y0, x1, y1;
} Box;

static double overlap(Box a, Box b) {
    const double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0.0;
}

/* Where a mark's label goes: its anchor point and text-anchor. */
typedef struct Label {
    double x, y;
    const char *anchor;
    Box box;
} Label;

/* Places each label next to its circle (cx, cy, rad) at the first of eight positions, right of
 * the circle first, that covers the least of the labels placed before it, of the other circles, of
 * the axes' margins and, most of all, of what lies off the figure or on the legend (x >= 670).
 * Widths are estimated at 6 px a character (10 px sans-serif). */
static void place_labels(Label *lab, const double *cx, const double *cy, const double *rad,
                         const char *const *text, int n, const SvgFrame *f) {
    static const double DX[8] = {1, -1, 0, 0, 0.7, 0.7, -0.7, -0.7};
    static const double DY[8] = {0, 0, -1, 1, -0.7, 0.7, -0.7, 0.7};
    const Box area = {f->x0, f->y0, f->x0 + f->w, f->y0 + f->h};
    const Box page = {0, 0, 670, f->y0 + f->h + 70};
    for (int i = 0; i < n; i++) {
        const double w = 6.0 * (double)strlen(text[i]), h = 10.0;
        double best = INFINITY;
        for (int c = 0; c < 8; c++) {
            /* The box touches the circle in the direction (DX, DY), 2 px off; the text is
             * anchored at its left, right or middle accordingly. */
            const double ex = cx[i] + DX[c] * (rad[i] + 2), ey = cy[i] + DY[c] * (rad[i] + 2);
            const double ax = DX[c] > 0 ? ex : DX[c] < 0 ? ex - w : ex - w / 2;
            const double ay = DY[c] > 0 ? ey : DY[c] < 0 ? ey - h : ey - h / 2;
            const Box bx = {ax, ay, ax + w, ay + h};
            double cost = 0.01 * c + 0.5 * (w * h - overlap(bx, area));
            cost += 5.0 * (w * h - overlap(bx, page));
            for (int j = 0; j < i; j++) cost += overlap(bx, lab[j].box);
            for (int j = 0; j < n; j++) {
                const double q = 0.7 * rad[j]; /* most of the circle, as a square */
                const Box circle = {cx[j] - q, cy[j] - q, cx[j] + q, cy[j] + q};
                if (j != i) cost += 0.3 * overlap(bx, circle);
            }
            if (cost < best) {
                best = cost;
                lab[i].x = ex;
                lab[i].y = ay + 8.0; /* the baseline */
                lab[i].anchor = DX[c] > 0 ? "start" : DX[c] < 0 ? "end" : "middle";
                lab[i].box = bx;
            }
        }
    }
}

static void frontier(FILE *o, const ReportSummary *r, int n) {
    const char **cls = malloc((size_t)n * sizeof *cls), **text = malloc((size_t)n * sizeof *text);
    double *cx = malloc((size_t)n * 3 * sizeof *cx), *cy = cx + n, *rad = cy + n;
    const ReportSummary **pt = malloc((size_t)n * sizeof *pt);
    Label *lab = malloc((size_t)n * sizeof *lab);
    XB_ASSERT(cls && text && cx && pt && lab);
    int nc = 0;
    SvgFrame f = {90, 30, 560, 400, INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0};
    double mem_max = 0.0;
    for (int i = 0; i < n; i++) {
        svg_key_index(cls, &nc, r[i].classes);
        if (isnan(r[i].test_acc) || !(r[i].steps_per_s > 0)) continue;
        f.xmin = fmin(f.xmin, r[i].steps_per_s), f.xmax = fmax(f.xmax, r[i].steps_per_s);
        f.ymin = fmin(f.ymin, 100 * r[i].test_acc), f.ymax = fmax(f.ymax, 100 * r[i].test_acc);
        mem_max = fmax(mem_max, r[i].peak_rss);
    }
    if (!(f.xmax > 0)) f.xmin = 1, f.xmax = 10, f.ymin = 0, f.ymax = 100, mem_max = 1;
    f.xlog = f.xmax / f.xmin > 20.0;
    const SvgTicks xs = svg_nice_range(&f.xmin, &f.xmax, f.xlog, 0),
                   ys = svg_nice_range(&f.ymin, &f.ymax, 0, 0);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"500\" "
               "viewBox=\"0 0 860 500\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"860\" height=\"500\" fill=\"white\"/>\n");
    svg_axes(o, &f, &xs, &ys, "training steps/s", "test accuracy (%)");
    int m = 0; /* the reports that get a mark */
    for (int i = 0; i < n; i++) {
        if (isnan(r[i].test_acc) || !(r[i].steps_per_s > 0)) continue;
        pt[m] = &r[i];
        cx[m] = svg_px(&f, r[i].steps_per_s), cy[m] = svg_py(&f, 100 * r[i].test_acc);
        rad[m] =
            4.0 + (mem_max > 0 ? 20.0 * sqrt(r[i].peak_rss / mem_max) : 0.0); /* area ∝ memory */
        int same = 0; /* several reports of one mechanism: name them by run */
        for (int j = 0; j < n; j++) same += !strcmp(r[j].mixer, r[i].mixer);
        text[m++] = same > 1 ? r[i].run_id : r[i].mixer;
    }
    for (int i = 0; i < m; i++) {
        const char *col = SVG_PALETTE[svg_key_index(cls, &nc, pt[i]->classes) % SVG_NPAL];
        fprintf(o,
                "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" "
                "fill-opacity=\"0.6\" stroke=\"%s\"><title>",
                cx[i], cy[i], rad[i], col, col);
        svg_escape(o, pt[i]->run_id);
        fprintf(o, ": %.2f%%, %.3g steps/s, %.1f MiB</title></circle>\n", 100 * pt[i]->test_acc,
                pt[i]->steps_per_s, pt[i]->peak_rss / 1048576.0);
    }
    place_labels(lab, cx, cy, rad, text, m, &f); /* after the circles, so labels lie on top */
    for (int i = 0; i < m; i++) {
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"%s\">", lab[i].x,
                lab[i].y, lab[i].anchor);
        svg_escape(o, text[i]);
        fputs("</text>\n", o);
    }
    svg_legend(o, 680, 40, cls, nc, "class", 0);
    fprintf(o, "<text x=\"680\" y=\"%d\" font-size=\"10\">circle area: peak memory</text>\n",
            40 + 18 * (nc + 2));
    fputs("</svg>\n", o);
    free(cls), free(text), free(cx), free(pt), free(lab);
}

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
    const char *out = NULL;
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
        } else if (a[0] == '-' && a[1]) {
            bad = cli_usage_error("plot", "unknown option '%s' (valid: --kind, -o, --help)", a);
        } else {
            paths[np++] = a;
        }
    }
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
    AtomicFile af;
    if (!rc && !(rc = fileio_open(&af, out, "figure", &err))) {
        if (kind)
            scaling(af.f, r, n);
        else
            frontier(af.f, r, n);
        rc = fileio_commit(&af, &err);
    }
    free(r);
    if (rc) {
        char line[2048];
        xb_error_format(&err, line, sizeof line);
        fprintf(stderr, "xformer-bench plot: %s\n", line);
        return XB_EXIT_USAGE; /* as --help says: no run is involved, so never 3 */
    }
    return XB_EXIT_OK;
}
