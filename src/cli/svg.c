/* SVG building blocks of `plot` (svg.h). */
#include "cli/svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/xassert.h"

const char *const SVG_PALETTE[SVG_NPAL] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
/* After the palette's ten colours, lines repeat them with a dash pattern. */
static const char *const SVG_DASHES[] = {"none", "6,3", "2,2", "8,3,2,3"};

const char *svg_dash(int k) { return SVG_DASHES[(k / SVG_NPAL) % (int)XB_ARRAY_LEN(SVG_DASHES)]; }

static double svg_unit(double v, double lo, double hi, int lg) {
    return lg ? (log(v) - log(lo)) / (log(hi) - log(lo)) : (v - lo) / (hi - lo);
}
double svg_px(const SvgFrame *f, double x) {
    return f->x0 + f->w * svg_unit(x, f->xmin, f->xmax, f->xlog);
}
double svg_py(const SvgFrame *f, double y) {
    return f->y0 + f->h * (1.0 - svg_unit(y, f->ymin, f->ymax, f->ylog));
}

void svg_escape(FILE *o, const char *s) {
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

/* Decades whose powers, and those of the ticks padded above them (fewer than SVG_MAX_TICKS decades
 * more), stay normal doubles; for powers of two the same range. */
#define LOG_EMIN (-290)
#define LOG_EMAX 290

/* Widens [lo, hi] (finite, > 0 on a log axis) to a range that shows every point with a margin:
 * decades (or powers of two, pow2) on a log axis, a 1-2-5 step on a linear one. Total on any
 * input: a range of one ulp or of subnormal numbers widens to one that ticks can step through, and
 * there are at most SVG_MAX_TICKS + 1 ticks. */
SvgTicks svg_nice_range(double *lo, double *hi, int lg, int pow2) {
    SvgTicks t;
    if (lg) {
        if (!(*hi > *lo)) *hi = *lo * 2.0, *lo *= 0.5;
        const double b = pow2 ? 2.0 : 10.0, lb = log(b);
        const double emin = pow2 ? LOG_EMIN * 3.3 : LOG_EMIN,
                     emax = pow2 ? LOG_EMAX * 3.3 : LOG_EMAX;
        double e0 = floor(log(*lo) / lb + 1e-9), e1 = ceil(log(*hi) / lb - 1e-9);
        e0 = fmin(fmax(e0, emin), emax - 1);
        e1 = fmin(fmax(e1, e0 + 1), emax);
        const double per = ceil((e1 - e0) / SVG_MAX_TICKS); /* powers of b per tick */
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
    t.n = (int)fmin(k1 - k0, SVG_MAX_TICKS) + 1;
    return t;
}

/* The k-th tick of an axis from lo. */
double svg_tick_at(double lo, const SvgTicks *t, int lg, int k) {
    return lg ? lo * pow(t->step, k) : lo + k * t->step;
}

static void svg_tick_label(char *buf, size_t n, double v) {
    if (v >= 1e4 && fabs(v - round(v)) < 1e-9 && fmod(v, 1024.0) == 0.0)
        snprintf(buf, n, "%gK", v / 1024.0);
    else
        snprintf(buf, n, "%g", v);
}

/* The frame, the ticks with their labels and the axis titles. */
void svg_axes(FILE *o, const SvgFrame *f, const SvgTicks *xt_, const SvgTicks *yt_, const char *xt,
              const char *yt) {
    fprintf(o,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            f->x0, f->y0, f->w, f->h);
    char lab[32];
    for (int k = 0; k < xt_->n; k++) {
        const double v = svg_tick_at(f->xmin, xt_, f->xlog, k), x = svg_px(f, v);
        svg_tick_label(lab, sizeof lab, v);
        fprintf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x,
                f->y0 + f->h, x, f->y0 + f->h + 5);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
                f->y0 + f->h + 18, lab);
    }
    for (int k = 0; k < yt_->n; k++) {
        const double v = svg_tick_at(f->ymin, yt_, f->ylog, k), y = svg_py(f, v);
        svg_tick_label(lab, sizeof lab, v);
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
int svg_key_index(const char **keys, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(keys[i], s)) return i;
    keys[*n] = s;
    return (*n)++;
}

/* The legend: a colour swatch per key, or with lines a short line in the key's colour and dash. */
void svg_legend(FILE *o, double x, double y, const char *const *keys, int n, const char *title,
                int lines) {
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">", x, y);
    svg_escape(o, title);
    fputs("</text>\n", o);
    for (int i = 0; i < n; i++) {
        const double yy = y + 18 * (i + 1);
        if (lines)
            fprintf(o,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"2\" stroke-dasharray=\"%s\"/>\n",
                    x, yy - 4, x + 14, yy - 4, SVG_PALETTE[i % SVG_NPAL], svg_dash(i));
        else
            fprintf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", x,
                    yy - 10, SVG_PALETTE[i % SVG_NPAL]);
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, yy);
        svg_escape(o, keys[i]);
        fputs("</text>\n", o);
    }
}
