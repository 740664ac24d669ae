/* plot --kind frontier (plot_frontier.h): as the Long Range Arena's Figure 3, one circle per
 * mechanism at (training speed, test accuracy), its area proportional to the peak memory, in the
 * colour of its taxonomy class; labels placed where they overlap no other label. */
#include "cli/plot_frontier.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/labels.h"
#include "cli/svg.h"
#include "core/xassert.h"
#include "report/stats.h"

/* A mechanism's point in one panel. */
typedef struct Point {
    const char *mixer, *classes;
    double acc, sd;    /* test accuracy in %, the mean over the panel's tasks of the mean over
                        * seeds; sd as the table's Avg (NaN unless every task has 2+ seeds) */
    double speed, mem; /* training examples/s; peak RSS in bytes */
} Point;

typedef struct Panel {
    const char *task; /* NULL: the mean over every task */
    Point *pt;
    int n;
} Panel;

/* A mechanism without a point, and why ("no bench report at L = 4096"). */
typedef struct Missing {
    const char *mixer;
    char why[160];
} Missing;

struct Frontier {
    Panel *panel;
    int npanel;
    const char **task; /* the tasks with a test accuracy, in the reports' order */
    int ntask;
    int length; /* the bench reports' length; 0: speed and memory of the training runs */
    Missing *miss;
    int nmiss;
};

/* A bench point: a finished report without a test accuracy (bench evaluates nothing). */
static int is_bench(const ReportSummary *r) {
    return !strcmp(r->status, "ok") && isnan(r->test_acc);
}

/* Training examples per second: from the median step when the report has one (bench), else
 * from the run's mean rate. */
static double examples_per_s(const ReportSummary *r) {
    const double step = r->step_s_median > 0 ? r->step_s_median : 1.0 / r->steps_per_s;
    return r->batch_size / step;
}

static void add_missing(Frontier *f, const char *mixer, const char *why) {
    for (int i = 0; i < f->nmiss; i++)
        if (!strcmp(f->miss[i].mixer, mixer) && !strcmp(f->miss[i].why, why)) return;
    f->miss = realloc(f->miss, (size_t)(f->nmiss + 1) * sizeof *f->miss);
    XB_ASSERT(f->miss);
    f->miss[f->nmiss].mixer = mixer;
    snprintf(f->miss[f->nmiss].why, sizeof f->miss[f->nmiss].why, "%s", why);
    f->nmiss++;
}

/* "a, b, c" of the distinct values v[0..n) (ints) into buf. */
static void list_ints(char *buf, size_t n, const int *v, int k) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < k && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%d", i ? ", " : "", v[i]);
}

static void list_strings(char *buf, size_t n, const char *const *v, int k) {
    size_t at = 0;
    snprintf(buf, n, "none");
    for (int i = 0; i < k && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? ", " : "", v[i]);
}

/* The point of mechanism m in panel p, or 0 with the reason recorded. */
static int make_point(Frontier *f, Point *pt, const Panel *p, const char *m, const char *classes,
                      const ReportSummary *r, int n, const ReportSummary **runs) {
    *pt = (Point){m, classes, 0.0, NAN, 0.0, 0.0};
    double var = 0.0, speed = 0.0, mem = 0.0;
    int spread = 1, ns = 0, tasks = 0;
    char why[160];
    for (int t = 0; t < f->ntask; t++) {
        if (p->task && strcmp(p->task, f->task[t])) continue;
        size_t k = 0;
        for (int i = 0; i < n; i++)
            if (!isnan(r[i].test_acc) && !strcmp(r[i].mixer, m) && !strcmp(r[i].task, f->task[t]))
                runs[k++] = &r[i];
        if (!k) {
            snprintf(why, sizeof why, "no report of %s", f->task[t]);
            add_missing(f, m, why);
            return 0;
        }
        SeedCell c;
        stats_seed_cell(&c, NULL, runs, k, 0.0);
        pt->acc += c.mean, var += c.n > 1 ? c.sd * c.sd : 0.0, spread &= c.n > 1, tasks++;
        for (size_t i = 0; i < k && !f->length; i++) /* the runs' own speed and memory */
            speed += examples_per_s(runs[i]), mem += runs[i]->peak_rss, ns++;
    }
    pt->acc /= tasks;
    pt->sd = spread ? sqrt(var) / tasks : NAN;
    for (int i = 0; i < n && f->length; i++)
        if (is_bench(&r[i]) && r[i].max_len == f->length && !strcmp(r[i].mixer, m))
            speed += examples_per_s(&r[i]), mem += r[i].peak_rss, ns++;
    if (!ns) {
        snprintf(why, sizeof why, "no bench report at L = %d", f->length);
        add_missing(f, m, why);
        return 0;
    }
    pt->speed = speed / ns, pt->mem = mem / ns;
    if (!(pt->speed > 0 && isfinite(pt->speed) && isfinite(pt->mem))) {
        add_missing(f, m, "no measured speed");
        return 0;
    }
    return 1;
}

/* What the options ask of the reports: bench reports at --length, reports of --task. Returns 0,
 * or -1 with err set. */
static int check_options(const Frontier *f, const FrontierOptions *opt, const int *len, int nlen,
                         int bench, XbError *err) {
    char list[1024];
    if (opt->length && !bench)
        return xb_error_set(err, NULL, 0, 0, NULL,
                            "--length: no bench reports among the inputs (reports without a test "
                            "accuracy, as xformer-bench bench writes them)");
    if (opt->length) {
        int seen = 0;
        for (int j = 0; j < nlen; j++) seen |= len[j] == opt->length;
        list_ints(list, sizeof list, len, nlen);
        if (!seen)
            return xb_error_set(err, NULL, 0, 0, NULL,
                                "--length %d: no bench report at this length (lengths: %s)",
                                opt->length, list);
    }
    if (opt->task) {
        int seen = 0;
        for (int t = 0; t < f->ntask; t++) seen |= !strcmp(f->task[t], opt->task);
        list_strings(list, sizeof list, f->task, f->ntask);
        if (!seen)
            return xb_error_set(err, NULL, 0, 0, NULL,
                                "--task: no report of task \"%s\" with a test accuracy (tasks: %s)",
                                opt->task, list);
    }
    return 0;
}

/* The mechanisms of the figure: mix[0..n) with their classes; the first n_acc have a test
 * accuracy. */
typedef struct Mechanisms {
    const char **mix, **cls;
    int n, n_acc;
} Mechanisms;

/* The panels (one, or one per task with --facet) and their points. */
static void make_panels(Frontier *f, const FrontierOptions *opt, const Mechanisms *ms,
                        const ReportSummary *r, int n, const ReportSummary **runs) {
    f->npanel = opt->facet ? f->ntask : 1;
    f->panel = calloc((size_t)(f->npanel ? f->npanel : 1), sizeof *f->panel);
    XB_ASSERT(f->panel);
    for (int k = 0; k < f->npanel; k++) {
        Panel *p = &f->panel[k];
        p->task = opt->facet ? f->task[k] : opt->task;
        p->pt = malloc((size_t)(ms->n + 1) * sizeof *p->pt);
        XB_ASSERT(p->pt);
        for (int m = 0; m < ms->n; m++) {
            if (m >= ms->n_acc) {
                add_missing(f, ms->mix[m], "no test accuracy");
                continue;
            }
            p->n += make_point(f, &p->pt[p->n], p, ms->mix[m], ms->cls[m], r, n, runs);
        }
    }
}

Frontier *frontier_prepare(const ReportSummary *r, int n, const FrontierOptions *opt,
                           XbError *err) {
    Frontier *f = calloc(1, sizeof *f);
    const char **mix = malloc((size_t)(n + 1) * sizeof *mix),
               **cls = malloc((size_t)(n + 1) * sizeof *cls);
    int *len = malloc((size_t)(n + 1) * sizeof *len);
    const ReportSummary **runs = malloc((size_t)(n + 1) * sizeof *runs);
    f->task = malloc((size_t)(n + 1) * sizeof *f->task);
    XB_ASSERT(f && mix && cls && len && runs && f->task);
    int nmix = 0, nlen = 0, bench = 0, acc_mix;
    for (int i = 0; i < n; i++)
        if (!isnan(r[i].test_acc)) {
            svg_key_index(f->task, &f->ntask, r[i].task);
            const int k = svg_key_index(mix, &nmix, r[i].mixer);
            cls[k] = r[i].classes;
        }
    acc_mix = nmix;
    for (int i = 0; i < n; i++)
        if (is_bench(&r[i])) {
            bench++;
            const int k = svg_key_index(mix, &nmix, r[i].mixer);
            if (k >= acc_mix) cls[k] = r[i].classes;
            int seen = 0;
            for (int j = 0; j < nlen; j++) seen |= len[j] == r[i].max_len;
            if (!seen) len[nlen++] = r[i].max_len;
        }
    for (int i = 1; i < nlen; i++) /* lengths in increasing order */
        for (int j = i; j > 0 && len[j - 1] > len[j]; j--) {
            const int t = len[j];
            len[j] = len[j - 1], len[j - 1] = t;
        }
    const int rc = check_options(f, opt, len, nlen, bench, err);
    if (!rc) {
        f->length = opt->length ? opt->length : nlen ? len[nlen - 1] : 0;
        const Mechanisms ms = {mix, cls, nmix, acc_mix};
        make_panels(f, opt, &ms, r, n, runs);
    }
    free(mix), free(cls), free(len), free(runs);
    if (rc) {
        frontier_free(f);
        return NULL;
    }
    return f;
}

void frontier_free(Frontier *f) {
    if (!f) return;
    for (int k = 0; k < f->npanel; k++) free(f->panel[k].pt);
    free(f->panel), free(f->task), free(f->miss), free(f);
}

/* ---- drawing ---- */

#define LABEL_FONT 10.0 /* px */

/* The largest of 1, 2, 5 × 10^k not above x (x > 0). */
static double nice_below(double x) {
    const double m = pow(10.0, floor(log10(x))), r = x / m;
    return (r >= 5 ? 5 : r >= 2 ? 2 : 1) * m;
}

typedef struct Layout {
    double rmax, mem_max; /* the largest circle's radius and its memory */
    double xmin, xmax;    /* speed range, shared by the panels */
    int xlog;
    const char **cls; /* the classes, for colours and the legend */
    int ncls;
} Layout;

static double radius(const Layout *L, double mem) {
    return L->mem_max > 0 ? fmax(2.5, L->rmax * sqrt(mem / L->mem_max)) : L->rmax / 2;
}

/* A panel laid out: its frame and ticks, its circles and their labels. */
typedef struct Drawn {
    SvgFrame fr;
    SvgTicks xs, ys;
    double *cx, *cy, *rad; /* (n) each */
    Label *lab;            /* (n) */
} Drawn;

static void layout_panel(Drawn *d, const Panel *p, SvgFrame fr, const Layout *L) {
    fr.xmin = L->xmin, fr.xmax = L->xmax, fr.xlog = L->xlog;
    fr.ymin = INFINITY, fr.ymax = -INFINITY;
    for (int i = 0; i < p->n; i++) {
        const double s = isnan(p->pt[i].sd) ? 0.0 : p->pt[i].sd;
        fr.ymin = fmin(fr.ymin, p->pt[i].acc - s), fr.ymax = fmax(fr.ymax, p->pt[i].acc + s);
    }
    if (!p->n) fr.ymin = 0, fr.ymax = 100;
    const double pad = 0.06 * (fr.ymax - fr.ymin); /* no circle on the frame's edge */
    fr.ymin -= pad, fr.ymax += pad;
    d->xs = svg_nice_range(&fr.xmin, &fr.xmax, fr.xlog, 0);
    d->ys = svg_nice_range(&fr.ymin, &fr.ymax, 0, 0);
    d->fr = fr;
    const int n = p->n;
    d->cx = malloc((size_t)(3 * n + 1) * sizeof *d->cx), d->cy = d->cx + n, d->rad = d->cy + n;
    d->lab = malloc((size_t)(n + 1) * sizeof *d->lab);
    const char **text = malloc((size_t)(n + 1) * sizeof *text);
    XB_ASSERT(d->cx && d->lab && text);
    for (int i = 0; i < n; i++) {
        d->cx[i] = svg_px(&fr, p->pt[i].speed), d->cy[i] = svg_py(&fr, p->pt[i].acc);
        d->rad[i] = radius(L, p->pt[i].mem), text[i] = p->pt[i].mixer;
    }
    const LabelBox area = {fr.x0 + 2, fr.y0 + 2, fr.x0 + fr.w - 2, fr.y0 + fr.h - 2};
    label_place(d->lab, d->cx, d->cy, d->rad, text, n, area, LABEL_FONT);
    free(text);
}

/* One laid-out panel: axes, its title, circles (the larger first, so that none hides a smaller
 * one) with their error bars, leader lines and labels. */
static void draw_panel(FILE *o, const Frontier *f, const Panel *p, const Drawn *d, Layout *L,
                       const char *xtitle) {
    svg_axes(o, &d->fr, &d->xs, &d->ys, xtitle, "test accuracy (%)");
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-weight=\"bold\">",
            d->fr.x0 + d->fr.w / 2, d->fr.y0 - 10);
    if (p->task)
        svg_escape(o, p->task);
    else if (f->ntask == 1)
        svg_escape(o, f->task[0]);
    else
        fprintf(o, "mean over %d tasks", f->ntask);
    fputs("</text>\n", o);
    const int n = p->n;
    const double *cx = d->cx, *cy = d->cy, *rad = d->rad;
    int *order = malloc((size_t)(n + 1) * sizeof *order);
    XB_ASSERT(order);
    double full = NAN;
    for (int i = 0; i < n; i++) {
        order[i] = i;
        if (!strcmp(p->pt[i].mixer, "full")) full = p->pt[i].speed;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && rad[order[b - 1]] < rad[order[b]]; b--) {
            const int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    for (int k = 0; k < n; k++) {
        const int i = order[k];
        const Point *q = &p->pt[i];
        const char *col = SVG_PALETTE[svg_key_index(L->cls, &L->ncls, q->classes) % SVG_NPAL];
        fprintf(o,
                "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" "
                "fill-opacity=\"0.55\" stroke=\"%s\"><title>",
                cx[i], cy[i], rad[i], col, col);
        svg_escape(o, q->mixer);
        fprintf(o, ": %.2f%%", q->acc);
        if (!isnan(q->sd)) fprintf(o, " ± %.2f", q->sd);
        fprintf(o, ", %.3g examples/s", q->speed);
        if (!isnan(full)) fprintf(o, " (%.2fx full)", q->speed / full);
        fprintf(o, ", %.1f MiB</title></circle>\n", q->mem / 1048576.0);
    }
    for (int i = 0; i < n; i++) /* ± sd over the seeds */
        if (p->pt[i].sd > 0) {
            const double y0 = svg_py(&d->fr, p->pt[i].acc - p->pt[i].sd),
                         y1 = svg_py(&d->fr, p->pt[i].acc + p->pt[i].sd);
            fprintf(o,
                    "<path class=\"error-bar\" d=\"M%.1f %.1fV%.1fM%.1f %.1fh6M%.1f %.1fh6\" "
                    "stroke=\"#333\" fill=\"none\"/>\n",
                    cx[i], y0, y1, cx[i] - 3, y0, cx[i] - 3, y1);
        }
    for (int i = 0; i < n; i++) {
        if (!d->lab[i].placed) continue;
        const LabelBox b = d->lab[i].box;
        const LabelSeg g = d->lab[i].seg;
        if (d->lab[i].leader)
            fprintf(o,
                    "<line class=\"leader\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                    "stroke=\"#777\" stroke-width=\"0.7\"/>\n",
                    g.x0, g.y0, g.x1, g.y1);
        fprintf(o,
                "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                "text-anchor=\"start\" stroke=\"white\" stroke-width=\"2.5\" "
                "paint-order=\"stroke\">",
                b.x0, b.y1 - 0.3 * LABEL_FONT);
        svg_escape(o, p->pt[i].mixer);
        fputs("</text>\n", o);
    }
    free(order);
}

/* The lines under the figure, the mechanisms not drawn grouped by the reason, wrapped at
 * width; written to o when it is not NULL. Returns how many lines. */
static int notes(FILE *o, const Missing *miss, int nmiss, double x, double y, double width) {
    int lines = 0;
    char *done = calloc((size_t)nmiss + 1, 1);
    XB_ASSERT(done);
    for (int i = 0; i < nmiss; i++) {
        if (done[i]) continue;
        if (o) {
            fprintf(o, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", x,
                    y + 15.0 * lines);
            fputs(strncmp(miss[i].why, "drawn", 5) ? "Not drawn (" : "(", o);
            svg_escape(o, miss[i].why);
            fputs("): ", o);
        }
        lines++;
        double used = 6.0 * (double)(strlen(miss[i].why) + 14);
        for (int j = i, first = 1; j < nmiss; j++)
            if (!done[j] && !strcmp(miss[j].why, miss[i].why)) {
                done[j] = 1;
                used += 6.0 * (double)(strlen(miss[j].mixer) + 2);
                if (!first && used > width) { /* wrap */
                    if (o)
                        fprintf(o,
                                ",</text>\n<text class=\"note\" x=\"%.1f\" y=\"%.1f\" "
                                "font-size=\"11\">",
                                x + 20, y + 15.0 * lines);
                    lines++;
                    used = 6.0 * (double)(strlen(miss[j].mixer) + 6), first = 1;
                }
                if (o && !first) fputs(", ", o);
                if (o) svg_escape(o, miss[j].mixer);
                first = 0;
            }
        if (o) fputs("</text>\n", o);
    }
    free(done);
    return lines;
}

/* The speed axis, the largest memory and the classes over every panel's points into L (L->cls
 * owned by the caller); returns the number of points, *sd whether any has a spread. */
static int shared_scales(const Frontier *f, Layout *L, int *sd) {
    int npt = 0;
    for (int k = 0; k < f->npanel; k++) npt += f->panel[k].n;
    L->cls = malloc((size_t)(npt + 1) * sizeof *L->cls);
    XB_ASSERT(L->cls);
    L->xmin = INFINITY, L->xmax = -INFINITY;
    *sd = 0;
    for (int k = 0; k < f->npanel; k++)
        for (int i = 0; i < f->panel[k].n; i++) {
            const Point *q = &f->panel[k].pt[i];
            L->xmin = fmin(L->xmin, q->speed), L->xmax = fmax(L->xmax, q->speed);
            L->mem_max = fmax(L->mem_max, q->mem);
            svg_key_index(L->cls, &L->ncls, q->classes);
            *sd |= q->sd > 0;
        }
    if (!npt) L->xmin = 1, L->xmax = 10;
    L->xlog = L->xmax / L->xmin > 20.0;
    if (L->xlog) /* no circle on the frame's edge */
        L->xmin /= 1.15, L->xmax *= 1.15;
    else
        L->xmin -= 0.04 * (L->xmax - L->xmin), L->xmax += 0.04 * (L->xmax - L->xmin);
    return npt;
}

/* The legend beside the panels: the classes' colours, two circle sizes of peak memory, and what
 * the circles and bars are. */
static void draw_legend(FILE *o, const Frontier *f, const Layout *L, double legend_x, int sd) {
    svg_legend(o, legend_x, 50, L->cls, L->ncls, "class", 0);
    double y = 50 + 18 * (L->ncls + 2);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">peak memory</text>\n", legend_x,
            y);
    if (L->mem_max > 0) {
        const double big = nice_below(L->mem_max / 1048576.0), small = nice_below(big / 4.0);
        const double mib[2] = {big, small};
        y += 8;
        for (int k = 0; k < 2; k++) {
            const double r = radius(L, mib[k] * 1048576.0);
            fprintf(
                o,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"#bbb\" fill-opacity=\"0.55\" "
                "stroke=\"#888\"/>\n<text x=\"%.1f\" y=\"%.1f\">%g MiB</text>\n",
                legend_x + L->rmax, y + r, r, legend_x + 2 * L->rmax + 8, y + r + 4, mib[k]);
            y += 2 * r + 8;
        }
    }
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">circle area: peak RSS%s</text>\n",
            legend_x, y + 10, f->length ? " (bench)" : "");
    if (sd)
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">bars: ± sd over seeds</text>\n",
                legend_x, y + 24);
}

void frontier_draw(FILE *o, const Frontier *f) {
    Layout L = {0};
    int sd;
    const int npt = shared_scales(f, &L, &sd);
    const int facet = f->npanel > 1, np = f->npanel ? f->npanel : 1;
    const int cols = !facet ? 1 : np <= 3 ? np : np == 4 ? 2 : 3, rows = (np + cols - 1) / cols;
    const double pw = facet ? 480 : 720, ph = facet ? 380 : 520; /* a panel with its margins */
    L.rmax = facet ? 12 : 18;
    const double legend_x = cols * pw + 10, width = legend_x + 190;

    /* every panel laid out first: a label without room goes to the notes */
    const Panel empty = {NULL, NULL, 0};
    Drawn *d = calloc((size_t)np, sizeof *d);
    Missing *miss = malloc((size_t)(f->nmiss + npt + 1) * sizeof *miss);
    XB_ASSERT(d && miss);
    if (f->nmiss) memcpy(miss, f->miss, (size_t)f->nmiss * sizeof *miss); /* f->miss may be NULL */
    int nmiss = f->nmiss;
    for (int k = 0; k < np; k++) {
        const Panel *p = f->npanel ? &f->panel[k] : &empty;
        const double ox = (k % cols) * pw, oy = (k / cols) * ph;
        layout_panel(&d[k], p, (SvgFrame){ox + 80, oy + 40, pw - 120, ph - 110, 0, 0, 0, 0, 0, 0},
                     &L);
        for (int i = 0; i < p->n; i++)
            if (!d[k].lab[i].placed) { /* not expected: a panel too crowded for a label */
                miss[nmiss].mixer = p->pt[i].mixer;
                snprintf(miss[nmiss].why, sizeof miss[nmiss].why, "drawn without a label, no room");
                nmiss++;
            }
    }
    const int nlines = notes(NULL, miss, nmiss, 0, 0, width - 40);
    const double height = rows * ph + 20 + 15.0 * nlines;
    fprintf(o,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
            width, height, width, height, width, height);
    char xtitle[128];
    if (f->length)
        snprintf(xtitle, sizeof xtitle, "training examples/s at L = %d (bench)", f->length);
    else
        snprintf(xtitle, sizeof xtitle, "training examples/s (the runs' own)");
    for (int k = 0; k < np; k++)
        draw_panel(o, f, f->npanel ? &f->panel[k] : &empty, &d[k], &L, xtitle);
    draw_legend(o, f, &L, legend_x, sd);
    notes(o, miss, nmiss, 20, rows * ph + 10, width - 40);
    fputs("</svg>\n", o);
    for (int k = 0; k < np; k++) free(d[k].cx), free(d[k].lab);
    free(d), free(miss), free(L.cls);
}
