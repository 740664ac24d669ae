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

/* Tableau 10: distinct, and legible for the common kinds of colour blindness. */
static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define NPAL ((int)XB_ARRAY_LEN(PALETTE))
/* After the palette's ten colours, lines repeat them with a dash pattern. */
static const char *const DASHES[] = {"none", "6,3", "2,2", "8,3,2,3"};

static const char *dash_of(int k) { return DASHES[(k / NPAL) % (int)XB_ARRAY_LEN(DASHES)]; }

typedef struct Frame {
    double x0, y0, w, h;           /* the plotting area in SVG pixels (y0 at the top) */
    double xmin, xmax, ymin, ymax; /* data range */
    int xlog, ylog;
} Frame;

static double tr(double v, double lo, double hi, int lg) {
    return lg ? (log(v) - log(lo)) / (log(hi) - log(lo)) : (v - lo) / (hi - lo);
}
static double px(const Frame *f, double x) {
    return f->x0 + f->w * tr(x, f->xmin, f->xmax, f->xlog);
}
static double py(const Frame *f, double y) {
    return f->y0 + f->h * (1.0 - tr(y, f->ymin, f->ymax, f->ylog));
}

static void put_escaped(FILE *o, const char *s) {
    for (; *s; s++) {
        if (*s == '&')
            fputs("&amp;", o);
        else if (*s == '<')
            fputs("&lt;", o);
        else if (*s == '>')
            fputs("&gt;", o);
        else if (*s == '"')
            fputs("&quot;", o);
        else if ((unsigned char)*s < 0x20 && !strchr("\t\n\r", *s))
            fputc('?', o); /* XML 1.0 has no way to write the other control characters */
        else
            fputc(*s, o);
    }
}

/* Ticks on an axis: lo, lo + step, ... (lo·step, lo·step², ... on a log axis), n of them. */
typedef struct Ticks {
    double step;
    int n;
} Ticks;

#define MAX_TICKS 16
/* Decades whose powers, and those of the ticks padded above them (fewer than MAX_TICKS decades
 * more), stay normal doubles; for powers of two the same range. */
#define LOG_EMIN (-290)
#define LOG_EMAX 290

/* Widens [lo, hi] (finite, > 0 on a log axis) to a range that shows every point with a margin:
 * decades (or powers of two, pow2) on a log axis, a 1-2-5 step on a linear one. Total on any
 * input: a range of one ulp or of subnormal numbers widens to one that ticks can step through, and
 * there are at most MAX_TICKS + 1 ticks. */
static Ticks nice_range(double *lo, double *hi, int lg, int pow2) {
    Ticks t;
    if (lg) {
        if (!(*hi > *lo)) *hi = *lo * 2.0, *lo *= 0.5;
        const double b = pow2 ? 2.0 : 10.0, lb = log(b);
        const double emin = pow2 ? LOG_EMIN * 3.3 : LOG_EMIN,
                     emax = pow2 ? LOG_EMAX * 3.3 : LOG_EMAX;
        double e0 = floor(log(*lo) / lb + 1e-9), e1 = ceil(log(*hi) / lb - 1e-9);
        e0 = fmin(fmax(e0, emin), emax - 1);
        e1 = fmin(fmax(e1, e0 + 1), emax);
        const double per = ceil((e1 - e0) / MAX_TICKS); /* powers of b per tick */
        e1 = e0 + per * ceil((e1 - e0) / per);
        *lo = pow(b, e0), *hi = pow(b, e1);
        t.step = pow(b, per);
        t.n = (int)((e1 - e0) / per) + 1;
        return t;
    }
    /* a span the doubles can step through in a few ticks: at least a millionth of the
     * magnitude, and of a magnitude far from the subnormals */
    const double mag = fmax(fabs(*lo), fabs(*hi));
    if (!(*hi - *lo >= 1e-6 * mag) || !(*hi - *lo >= 1e-200)) {
        const double c = mag >= 1e-200 ? 0.5 * *lo + 0.5 * *hi : 0.0;
        const double half = mag >= 1e-200 ? fmax(0.05 * fabs(c), 1e-6 * mag) : 1.0;
        *lo = c - half, *hi = c + half;
    }
    const double raw = (*hi - *lo) / 5.0, m = pow(10.0, floor(log10(raw)));
    const double r = raw / m;
    t.step = (r < 1.5 ? 1.0 : r < 3.5 ? 2.0 : r < 7.5 ? 5.0 : 10.0) * m;
    const double k0 = floor(*lo / t.step), k1 = ceil(*hi / t.step);
    *lo = k0 * t.step, *hi = k1 * t.step;
    t.n = (int)fmin(k1 - k0, MAX_TICKS) + 1;
    return t;
}

/* The k-th tick of an axis from lo. */
static double tick_at(double lo, const Ticks *t, int lg, int k) {
    return lg ? lo * pow(t->step, k) : lo + k * t->step;
}

static void tick_label(char *buf, size_t n, double v) {
    if (v >= 1e4 && fabs(v - round(v)) < 1e-9 && fmod(v, 1024.0) == 0.0)
        snprintf(buf, n, "%gK", v / 1024.0);
    else
        snprintf(buf, n, "%g", v);
}

/* The frame, the ticks with their labels and the axis titles. */
static void axes(FILE *o, const Frame *f, const Ticks *xt_, const Ticks *yt_, const char *xt,
                 const char *yt) {
    fprintf(o,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            f->x0, f->y0, f->w, f->h);
    char lab[32];
    for (int k = 0; k < xt_->n; k++) {
        const double v = tick_at(f->xmin, xt_, f->xlog, k), x = px(f, v);
        tick_label(lab, sizeof lab, v);
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x,
                f->y0 + f->h, x, f->y0 + f->h + 5);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
                f->y0 + f->h + 18, lab);
    }
    for (int k = 0; k < yt_->n; k++) {
        const double v = tick_at(f->ymin, yt_, f->ylog, k), y = py(f, v);
        tick_label(lab, sizeof lab, v);
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                f->x0 - 5, y, f->x0, y);
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                f->x0, y, f->x0 + f->w, y);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", f->x0 - 8, y + 4,
                lab);
    }
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", f->x0 + f->w / 2,
            f->y0 + f->h + 40, xt);
    fprintf(o,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f "
            "%.1f)\">%s</text>\n",
            f->x0 - 50, f->y0 + f->h / 2, f->x0 - 50, f->y0 + f->h / 2, yt);
}

/* The index of s among the distinct strings so far (added when new). */
static int key_index(const char **keys, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(keys[i], s)) return i;
    keys[*n] = s;
    return (*n)++;
}

/* The legend: a colour swatch per key, or with lines a short line in the key's colour and dash. */
static void legend(FILE *o, double x, double y, const char *const *keys, int n, const char *title,
                   int lines) {
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">", x, y);
    put_escaped(o, title);
    fputs("</text>\n", o);
    for (int i = 0; i < n; i++) {
        const double yy = y + 18 * (i + 1);
        if (lines)
            fprintf(o,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"2\" stroke-dasharray=\"%s\"/>\n",
                    x, yy - 4, x + 14, yy - 4, PALETTE[i % NPAL], dash_of(i));
        else
            fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", x,
                    yy - 10, PALETTE[i % NPAL]);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, yy);
        put_escaped(o, keys[i]);
        fputs("</text>\n", o);
    }
}

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
                         const char *const *text, int n, const Frame *f) {
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
    Frame f = {90, 30, 560, 400, INFINITY, -INFINITY, INFINITY, -INFINITY, 0, 0};
    double mem_max = 0.0;
    for (int i = 0; i < n; i++) {
        key_index(cls, &nc, r[i].classes);
        if (isnan(r[i].test_acc) || !(r[i].steps_per_s > 0)) continue;
        f.xmin = fmin(f.xmin, r[i].steps_per_s), f.xmax = fmax(f.xmax, r[i].steps_per_s);
        f.ymin = fmin(f.ymin, 100 * r[i].test_acc), f.ymax = fmax(f.ymax, 100 * r[i].test_acc);
        mem_max = fmax(mem_max, r[i].peak_rss);
    }
    if (!(f.xmax > 0)) f.xmin = 1, f.xmax = 10, f.ymin = 0, f.ymax = 100, mem_max = 1;
    f.xlog = f.xmax / f.xmin > 20.0;
    const Ticks xs = nice_range(&f.xmin, &f.xmax, f.xlog, 0),
                ys = nice_range(&f.ymin, &f.ymax, 0, 0);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"860\" height=\"500\" "
               "viewBox=\"0 0 860 500\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"860\" height=\"500\" fill=\"white\"/>\n");
    axes(o, &f, &xs, &ys, "training steps/s", "test accuracy (%)");
    int m = 0; /* the reports that get a mark */
    for (int i = 0; i < n; i++) {
        if (isnan(r[i].test_acc) || !(r[i].steps_per_s > 0)) continue;
        pt[m] = &r[i];
        cx[m] = px(&f, r[i].steps_per_s), cy[m] = py(&f, 100 * r[i].test_acc);
        rad[m] =
            4.0 + (mem_max > 0 ? 20.0 * sqrt(r[i].peak_rss / mem_max) : 0.0); /* area ∝ memory */
        int same = 0; /* several reports of one mechanism: name them by run */
        for (int j = 0; j < n; j++) same += !strcmp(r[j].mixer, r[i].mixer);
        text[m++] = same > 1 ? r[i].run_id : r[i].mixer;
    }
    for (int i = 0; i < m; i++) {
        const char *col = PALETTE[key_index(cls, &nc, pt[i]->classes) % NPAL];
        fprintf(o,
                "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" "
                "fill-opacity=\"0.6\" stroke=\"%s\"><title>",
                cx[i], cy[i], rad[i], col, col);
        put_escaped(o, pt[i]->run_id);
        fprintf(o, ": %.2f%%, %.3g steps/s, %.1f MiB</title></circle>\n", 100 * pt[i]->test_acc,
                pt[i]->steps_per_s, pt[i]->peak_rss / 1048576.0);
    }
    place_labels(lab, cx, cy, rad, text, m, &f); /* after the circles, so labels lie on top */
    for (int i = 0; i < m; i++) {
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"%s\">", lab[i].x,
                lab[i].y, lab[i].anchor);
        put_escaped(o, text[i]);
        fputs("</text>\n", o);
    }
    legend(o, 680, 40, cls, nc, "class", 0);
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
    Frame ft = {90, 30, 340, 360, INFINITY, -INFINITY, INFINITY, -INFINITY, 1, 1};
    Frame fm = ft;
    fm.x0 = 520;
    for (int i = 0; i < n; i++) {
        key_index(mix, &nm, r[i].mixer);
        if (!scalable(&r[i])) continue;
        const double t = step_time(&r[i]), m = r[i].peak_rss / 1048576.0;
        ft.xmin = fmin(ft.xmin, r[i].max_len), ft.xmax = fmax(ft.xmax, r[i].max_len);
        ft.ymin = fmin(ft.ymin, t), ft.ymax = fmax(ft.ymax, t);
        fm.ymin = fmin(fm.ymin, m), fm.ymax = fmax(fm.ymax, m);
    }
    if (!(ft.xmax > 0))
        ft.xmin = 1024, ft.xmax = 2048, ft.ymin = fm.ymin = 1, ft.ymax = fm.ymax = 10;
    fm.xmin = ft.xmin, fm.xmax = ft.xmax;
    const Ticks xs = nice_range(&ft.xmin, &ft.xmax, 1, 1);
    fm.xmin = ft.xmin, fm.xmax = ft.xmax;
    const Ticks ys = nice_range(&ft.ymin, &ft.ymax, 1, 0),
                ms = nice_range(&fm.ymin, &fm.ymax, 1, 0);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1120\" height=\"460\" "
               "viewBox=\"0 0 1120 460\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"1120\" height=\"460\" fill=\"white\"/>\n");
    axes(o, &ft, &xs, &ys, "sequence length", "time per training step (s)");
    axes(o, &fm, &xs, &ms, "sequence length", "peak memory (MiB)");
    for (int k = 0; k < nm; k++) {
        int nl = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(r[i].mixer, mix[k]) && scalable(&r[i])) line[nl++] = &r[i];
        qsort(line, (size_t)nl, sizeof *line, by_len);
        const char *col = PALETTE[k % NPAL];
        for (int panel = 0; panel < 2; panel++) {
            const Frame *f = panel ? &fm : &ft;
            fprintf(o,
                    "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                    "stroke-dasharray=\"%s\" points=\"",
                    col, dash_of(k));
            for (int i = 0; i < nl; i++) {
                const double v = panel ? line[i]->peak_rss / 1048576.0 : step_time(line[i]);
                fprintf(o, "%s%.1f,%.1f", i ? " " : "", px(f, line[i]->max_len), py(f, v));
            }
            fputs("\"/>\n", o);
            for (int i = 0; i < nl; i++) {
                const double v = panel ? line[i]->peak_rss / 1048576.0 : step_time(line[i]);
                fprintf(o,
                        "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>",
                        panel ? "mark-memory" : "mark", px(f, line[i]->max_len), py(f, v), col);
                put_escaped(o, line[i]->run_id);
                fprintf(o, ": L = %d, %.4g %s</title></circle>\n", line[i]->max_len, v,
                        panel ? "MiB" : "s");
            }
        }
    }
    legend(o, 900, 40, mix, nm, "mechanism", 1);
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
