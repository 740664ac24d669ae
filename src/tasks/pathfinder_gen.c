/* The Pathfinder generator (Linsley et al., arXiv 1805.08315 §3; the procedure of
 * github.com/drewlinsley/pathfinder, snakes.py and snakes2.py, rewritten in C):
 *
 *   - a contour is a chain of straight paddles (dashes) of length ℓ and width t. After a paddle
 *     of direction θ ending at head h, the next one's pivot is q = h + m·u(θ) and the next paddle
 *     spans q + [m, ℓ + m]·u(φ), so consecutive dashes are 2m·cos(Δ/2) apart (m the margin);
 *   - φ is drawn among the directions one pixel of arc apart on the circle of radius ℓ + m around
 *     q, with weight cos²(min(c·|φ − θ|, π/2)) (c the continuity: no turn beyond 90°/c), and
 *     weight 0 where the paddle would leave the image or come closer than t + 2m to any paddle
 *     but its predecessor (the margin-dilated paddles of snakes.py may not overlap);
 *   - two target contours of `contour_len` paddles start seed_distance apart (their first dashes
 *     grow outward from tails in the central region, 2·seed_distance from every border) and grow
 *     alternately; a dead end redraws both;
 *   - then `n_distractors` contours of contour_len/3 paddles anywhere they fit (up to 5 tries
 *     each, else left out), as LRA's settings (no single-paddle distractors);
 *   - markers: a disk on the tail of one target (drawn at random) and one on the last head of
 *     the same target (label 1) or of the other (label 0).
 * Where this differs from snakes.py: every candidate direction is checked against the others'
 * margins before drawing (snakes.py draws one and retries twice), the second target's first dash
 * is also kept clear of the first's, and coordinates stay real instead of being rounded up.
 * Rendering: paddles are capsules, markers disks, covered area measured on a 4×4 grid per pixel;
 * a stroke pixel is min(1, cover)·contrast, a marker pixel its cover, the image their maximum,
 * scaled so that its brightest pixel is 255 (as scipy.misc.imsave wrote LRA's PNGs). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xassert.h"
#include "tasks/pathfinder.h"

#define PI 3.14159265358979323846
#define DISTRACTOR_TRIES 5 /* snakes2_wrapper.py: max_distractor_contour_retrial = 4 */
#define SEED_TRIES 3       /* max_paddle_retrial = 2 */
#define TARGET_TRIES 100000
#define SUB 4 /* supersampling per axis */

int pf_params(PfParams *p, int resolution, int difficulty) {
    /* lra_benchmarks/data/pathfinder.py (Pathfinder32/64/128/256 docstrings); paddle_length 5 and
     * padding 22 / seed_distance 27 are snakes2_wrapper.py's defaults where LRA does not set them.
     * Contrast is snake_contrast × paddle_contrast. budget: the N of num_distractor_snakes =
     * N / distractor_length. */
    static const struct {
        int res, pad, m0, m1, budget;
        double len, thick, marker, seed, cont, contrast;
    } T[] = {
        {32, 1, 1, 0, 20, 2, 0.5, 1.5, 7, 1.0, 2 * 0.75},
        {64, 1, 1, 0, 22, 5, 1.0, 2.5, 12, 1.8, 0.8},
        {128, 1, 2, 3, 35, 5, 1.5, 3.0, 20, 1.8, 0.9},
        {256, 22, 3, 0, 30, 5, 2.0, 5.0, 27, 1.8, 1.0},
    };
    static const int LEN[3] = {6, 9, 14}; /* curv_baseline, curv_contour_length_9, _14 */
    for (size_t i = 0; i < XB_ARRAY_LEN(T); i++) {
        if (T[i].res != resolution) continue;
        memset(p, 0, sizeof *p);
        p->size = resolution;
        p->contour_len = LEN[difficulty];
        p->distractor_len = p->contour_len / 3;
        p->n_distractors = T[i].budget / p->distractor_len;
        p->margins[0] = T[i].m0, p->margins[1] = T[i].m1;
        p->n_margins = T[i].m1 ? 2 : 1;
        p->padding = T[i].pad;
        p->paddle_len = T[i].len;
        p->thickness = T[i].thick;
        p->marker_radius = T[i].marker;
        p->seed_distance = T[i].seed;
        p->continuity = T[i].cont;
        p->contrast = T[i].contrast;
        return 0;
    }
    return -1;
}

static double point_segment(double px, double py, double ax, double ay, double bx, double by) {
    const double vx = bx - ax, vy = by - ay, l2 = vx * vx + vy * vy;
    double s = l2 > 0 ? ((px - ax) * vx + (py - ay) * vy) / l2 : 0;
    s = s < 0 ? 0 : s > 1 ? 1 : s;
    const double dx = px - ax - s * vx, dy = py - ay - s * vy;
    return sqrt(dx * dx + dy * dy);
}

static double cross(double ax, double ay, double bx, double by, double cx, double cy) {
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
}

double pf_segment_distance(double ax, double ay, double bx, double by, double cx, double cy,
                           double dx, double dy) {
    const double d1 = cross(ax, ay, bx, by, cx, cy), d2 = cross(ax, ay, bx, by, dx, dy);
    const double d3 = cross(cx, cy, dx, dy, ax, ay), d4 = cross(cx, cy, dx, dy, bx, by);
    if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0)))
        return 0; /* proper crossing */
    double d = point_segment(ax, ay, cx, cy, dx, dy);
    d = fmin(d, point_segment(bx, by, cx, cy, dx, dy));
    d = fmin(d, point_segment(cx, cy, ax, ay, bx, by));
    return fmin(d, point_segment(dx, dy, ax, ay, bx, by));
}

/* Drawing state of one image. */
typedef struct Gen {
    const PfParams *p;
    Rng r;
    int m;         /* margin of this image */
    double lo, hi; /* paddle end points stay in [lo, hi]² */
    double clear;  /* least distance to any paddle but the predecessor: t + 2m */
    PfScene *s;
} Gen;

/* The paddle (ax, ay)-(bx, by) fits: inside the image and clear of every paddle but `skip`. */
static int fits(const Gen *g, double ax, double ay, double bx, double by, int skip) {
    if (ax < g->lo || ax > g->hi || ay < g->lo || ay > g->hi || bx < g->lo || bx > g->hi ||
        by < g->lo || by > g->hi)
        return 0;
    const double reach = g->p->paddle_len + g->clear;
    const double mx = 0.5 * (ax + bx), my = 0.5 * (ay + by);
    for (int i = 0; i < g->s->n; i++) {
        if (i == skip) continue;
        const PfPaddle *q = &g->s->p[i];
        const double qx = 0.5 * (q->ax + q->bx), qy = 0.5 * (q->ay + q->by);
        if (fabs(qx - mx) > reach || fabs(qy - my) > reach) continue; /* far apart */
        if (pf_segment_distance(ax, ay, bx, by, q->ax, q->ay, q->bx, q->by) < g->clear) return 0;
    }
    return 1;
}

static int push(Gen *g, double ax, double ay, double bx, double by, int contour) {
    XB_ASSERT(g->s->n < PF_MAX_PADDLES);
    g->s->p[g->s->n] = (PfPaddle){ax, ay, bx, by, contour};
    return g->s->n++;
}

/* A contour being grown: its last paddle, its direction and the tail of its first. */
typedef struct Snake {
    int last;
    double theta;
    double tail[2];
} Snake;

/* A uniform whole degree in [-180, 180), as snakes.py draws directions. */
static double random_direction(Rng *r) { return ((int)rng_below(r, 360) - 180) * PI / 180.0; }

/* Starts a contour with a paddle from tail (x, y) in direction th, if it fits. */
static int seed_at(Gen *g, Snake *k, double x, double y, double th, int contour) {
    const double l = g->p->paddle_len;
    const double hx = x + l * cos(th), hy = y + l * sin(th);
    if (!fits(g, x, y, hx, hy, -1)) return 0;
    k->last = push(g, x, y, hx, hy, contour);
    k->theta = th;
    k->tail[0] = x, k->tail[1] = y;
    return 1;
}

/* Adds the next paddle of k, its direction drawn by continuity among those that fit; 0 at a dead
 * end. Drawing by weight and striking out a candidate that does not fit until one does is the
 * same distribution as checking them all first, at a fraction of the checks. */
static int extend(Gen *g, Snake *k, int contour) {
    const PfPaddle *h = &g->s->p[k->last];
    const double l = g->p->paddle_len, m = g->m, rad = l + m;
    const double qx = h->bx + m * cos(k->theta), qy = h->by + m * sin(k->theta);
    const int nc = (int)ceil(2 * PI * rad); /* one pixel of arc apart */
    double w[256], dir[256];
    XB_ASSERT(nc <= 256);
    for (int i = 0; i < nc; i++) {
        dir[i] = 2 * PI * i / nc - PI;
        double delta = fabs(dir[i] - k->theta);
        if (delta > PI) delta = 2 * PI - delta;
        const double c = cos(fmin(delta * g->p->continuity, 0.5 * PI));
        w[i] = c * c;
    }
    for (;;) {
        double total = 0;
        for (int i = 0; i < nc; i++) total += w[i];
        if (total < 1e-4) return 0;
        double u = rng_uniform_double(&g->r) * total;
        int pick = -1; /* where u falls; the last candidate left if rounding runs past */
        for (int i = 0; i < nc; i++) {
            if (w[i] == 0) continue;
            pick = i;
            if (u < w[i]) break;
            u -= w[i];
        }
        const double c = cos(dir[pick]), s = sin(dir[pick]);
        if (!fits(g, qx + m * c, qy + m * s, qx + rad * c, qy + rad * s, k->last)) {
            w[pick] = 0;
            continue;
        }
        k->last = push(g, qx + m * c, qy + m * s, qx + rad * c, qy + rad * s, contour);
        k->theta = dir[pick];
        return 1;
    }
}

/* The two target contours, grown alternately from first dashes seed_distance apart. */
static void draw_targets(Gen *g, Snake t[2]) {
    const PfParams *p = g->p;
    const double sd = p->seed_distance;
    for (int tries = 0; tries < TARGET_TRIES; tries++) {
        g->s->n = 0;
        /* the first tail on whole pixels at least 2·seed_distance from the borders */
        const int span = (int)(p->size - 4 * sd);
        XB_ASSERT(span > 0);
        const double x0 = 2 * sd + rng_below(&g->r, (uint32_t)span);
        const double y0 = 2 * sd + rng_below(&g->r, (uint32_t)span);
        if (!seed_at(g, &t[0], x0, y0, random_direction(&g->r), 0)) continue;
        int ok = 0;
        for (int k = 0; k < SEED_TRIES && !ok; k++) {
            const double a = random_direction(&g->r);
            ok = seed_at(g, &t[1], x0 + sd * cos(a), y0 + sd * sin(a), random_direction(&g->r), 1);
        }
        for (int i = 1; ok && i < p->contour_len; i++)
            ok = extend(g, &t[0], 0) && extend(g, &t[1], 1);
        if (ok) return;
    }
    XB_ASSERT(!"pathfinder: no two target contours fit after many tries");
}

/* One distractor contour, or none if it does not fit in DISTRACTOR_TRIES tries. */
static int draw_distractor(Gen *g, int contour) {
    const PfParams *p = g->p;
    for (int tries = 0; tries < DISTRACTOR_TRIES; tries++) {
        const int start = g->s->n;
        Snake k;
        int ok = 0;
        for (int j = 0; j < SEED_TRIES && !ok; j++) {
            const double x = g->lo + rng_uniform_double(&g->r) * (g->hi - g->lo);
            const double y = g->lo + rng_uniform_double(&g->r) * (g->hi - g->lo);
            ok = seed_at(g, &k, x, y, random_direction(&g->r), contour);
        }
        for (int i = 1; ok && i < p->distractor_len; i++) ok = extend(g, &k, contour);
        if (ok) return 1;
        g->s->n = start; /* take the partial contour back */
    }
    return 0;
}

/* Area of pixel (x, y) within distance r of the segment a-b, on a SUB×SUB grid. */
static double cover(double x, double y, double ax, double ay, double bx, double by, double r) {
    int in = 0;
    for (int i = 0; i < SUB; i++)
        for (int j = 0; j < SUB; j++)
            in += point_segment(x + (j + 0.5) / SUB - 0.5, y + (i + 0.5) / SUB - 0.5, ax, ay, bx,
                                by) <= r;
    return (double)in / (SUB * SUB);
}

/* max-composites the capsule a-b of radius r at `value`·cover into v (W·W). */
static void stamp(float *v, int W, double ax, double ay, double bx, double by, double r,
                  double value, int clip) {
    const int x0 = (int)floor(fmin(ax, bx) - r - 1), x1 = (int)ceil(fmax(ax, bx) + r + 1);
    const int y0 = (int)floor(fmin(ay, by) - r - 1), y1 = (int)ceil(fmax(ay, by) + r + 1);
    for (int y = XB_MAX(y0, 0); y <= XB_MIN(y1, W - 1); y++)
        for (int x = XB_MAX(x0, 0); x <= XB_MIN(x1, W - 1); x++) {
            double c = cover(x, y, ax, ay, bx, by, r);
            if (clip && c > 1) c = 1;
            const float val = (float)(c * value);
            if (val > v[(size_t)y * W + x]) v[(size_t)y * W + x] = val;
        }
}

void pf_generate(const PfParams *p, uint64_t seed, uint64_t index, int label, unsigned char *pixels,
                 PfScene *scene) {
    PfScene local;
    Gen g = {.p = p, .s = scene ? scene : &local};
    memset(g.s, 0, sizeof *g.s);
    rng_seed(&g.r, rng_mix64(seed) ^ rng_mix64(index + 0x5046ull), RNG_STREAM_DATA);
    g.m = p->margins[p->n_margins > 1 ? rng_below(&g.r, (uint32_t)p->n_margins) : 0];
    g.lo = p->padding + g.m;
    g.hi = p->size - 1 - g.lo;
    g.clear = p->thickness + 2 * g.m;
    Snake t[2];
    draw_targets(&g, t);
    int contours = 2;
    for (int i = 0; i < p->n_distractors; i++) contours += draw_distractor(&g, contours);
    const int origin = (int)rng_below(&g.r, 2), end = label ? origin : 1 - origin;
    const PfPaddle *last = &g.s->p[t[end].last];
    g.s->n_contours = contours;
    g.s->margin = g.m;
    g.s->marker[0][0] = t[origin].tail[0], g.s->marker[0][1] = t[origin].tail[1];
    g.s->marker[1][0] = last->bx, g.s->marker[1][1] = last->by;
    g.s->marker_contour[0] = origin, g.s->marker_contour[1] = end;
    g.s->gap = 2.0 * g.m;
    g.s->clearance = g.clear;

    const int W = p->size;
    float *v = calloc((size_t)W * W, sizeof *v);
    XB_ASSERT(v);
    for (int i = 0; i < g.s->n; i++) {
        const PfPaddle *q = &g.s->p[i];
        stamp(v, W, q->ax, q->ay, q->bx, q->by, 0.5 * p->thickness, p->contrast, 1);
    }
    for (int k = 0; k < 2; k++)
        stamp(v, W, g.s->marker[k][0], g.s->marker[k][1], g.s->marker[k][0], g.s->marker[k][1],
              p->marker_radius, 1.0, 1);
    float vmax = 0;
    for (size_t i = 0; i < (size_t)W * W; i++) vmax = v[i] > vmax ? v[i] : vmax;
    for (size_t i = 0; i < (size_t)W * W; i++)
        pixels[i] = (unsigned char)floor(255.0 * v[i] / vmax + 0.5);
    free(v);
}
