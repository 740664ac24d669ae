/* SVG figures of `plot`: a frame that maps data to pixels on linear or log axes, ticks, axes
 * with their titles, colour legends and escaped text, written to a FILE the caller owns. */
#ifndef XB_SVG_H
#define XB_SVG_H

#include <stddef.h>
#include <stdio.h>

/* Tableau 10: distinct, and legible for the common kinds of colour blindness. */
#define SVG_NPAL 10
extern const char *const SVG_PALETTE[SVG_NPAL];
/* The k-th line's dash pattern: after the palette's ten colours, lines repeat them dashed. */
const char *svg_dash(int k);

typedef struct SvgFrame {
    double x0, y0, w, h;           /* the plotting area in SVG pixels (y0 at the top) */
    double xmin, xmax, ymin, ymax; /* data range */
    int xlog, ylog;
} SvgFrame;

/* Pixel coordinates of data x and y in the frame. */
double svg_px(const SvgFrame *f, double x);
double svg_py(const SvgFrame *f, double y);

/* Writes s with &, <, >, " escaped, and the control characters XML cannot hold as '?'. */
void svg_escape(FILE *o, const char *s);

/* Ticks on an axis: lo, lo + step, ... (lo·step, lo·step², ... on a log axis), n of them. */
typedef struct SvgTicks {
    double step;
    int n;
} SvgTicks;
#define SVG_MAX_TICKS 16

/* Widens [lo, hi] (finite, > 0 on a log axis) to a range that shows every point with a margin:
 * decades (or powers of two, pow2) on a log axis, a 1-2-5 step on a linear one. Total on any
 * input: a range of one ulp or of subnormal numbers widens to one that ticks can step through,
 * and there are at most SVG_MAX_TICKS + 1 ticks. */
SvgTicks svg_nice_range(double *lo, double *hi, int lg, int pow2);
/* The k-th tick of an axis from lo. */
double svg_tick_at(double lo, const SvgTicks *t, int lg, int k);
/* The frame, the ticks with their labels and the axis titles xt (below) and yt (left). */
void svg_axes(FILE *o, const SvgFrame *f, const SvgTicks *xt_, const SvgTicks *yt_, const char *xt,
              const char *yt);
/* The index of s among the distinct strings keys[0..*n) (appended when new; keys keeps the
 * pointer, not a copy). */
int svg_key_index(const char **keys, int *n, const char *s);
/* A legend at (x, y): its title, then a colour swatch per key, or with lines a short line in the
 * key's colour and dash. */
void svg_legend(FILE *o, double x, double y, const char *const *keys, int n, const char *title,
                int lines);

#endif
