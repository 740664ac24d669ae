/* Label placement (labels.h). */
#include "cli/labels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"

static double overlap(LabelBox a, LabelBox b) {
    const double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0.0;
}

/* The distance from (x, y) to the box, 0 inside it. */
double label_box_dist(LabelBox b, double x, double y) {
    const double dx = fmax(fmax(b.x0 - x, 0.0), x - b.x1), dy = fmax(fmax(b.y0 - y, 0.0), y - b.y1);
    return sqrt(dx * dx + dy * dy);
}

double label_text_width(const char *s, double fs) {
    static const char NARROW[] = "fijlrt.,:;!|()[]' ", WIDE[] = "mwMW%@";
    double em = 0.0;
    for (; *s; s++)
        em += strchr(NARROW, *s)         ? 0.40
              : strchr(WIDE, *s)         ? 0.98
              : (*s >= 'A' && *s <= 'Z') ? 0.74
                                         : 0.64;
    return em * fs;
}

/* The leader line of a label in box b for the circle (x, y, r), when the box is farther than
 * LABEL_LEADER from the circle: from the circle's edge to the nearest point of the box. */
static int leader_of(LabelSeg *s, LabelBox b, double x, double y, double r) {
    const double d = label_box_dist(b, x, y);
    if (!(d > r + LABEL_LEADER)) return 0;
    const double tx = fmin(fmax(x, b.x0), b.x1), ty = fmin(fmax(y, b.y0), b.y1);
    const double ux = (tx - x) / d, uy = (ty - y) / d;
    *s = (LabelSeg){x + ux * r, y + uy * r, tx, ty};
    return 1;
}

/* Whether segment s passes through box b, or within r of (x, y) when b is NULL: sampled at 24
 * points, its two ends left out (they touch their own circle and box). */
static int seg_meets(LabelSeg s, const LabelBox *b, double x, double y, double r) {
    for (int k = 1; k < 24; k++) {
        const double t = k / 24.0, px = s.x0 + t * (s.x1 - s.x0), py = s.y0 + t * (s.y1 - s.y0);
        if (b ? px >= b->x0 && px <= b->x1 && py >= b->y0 && py <= b->y1
              : hypot(px - x, py - y) < r)
            return 1;
    }
    return 0;
}

/* Whether segments a and b cross (their interiors). */
static int segs_cross(LabelSeg a, LabelSeg b) {
    const double d1x = a.x1 - a.x0, d1y = a.y1 - a.y0, d2x = b.x1 - b.x0, d2y = b.y1 - b.y0;
    const double den = d1x * d2y - d1y * d2x;
    if (fabs(den) < 1e-12) return 0;
    const double t = ((b.x0 - a.x0) * d2y - (b.y0 - a.y0) * d2x) / den,
                 u = ((b.x0 - a.x0) * d1y - (b.y0 - a.y0) * d1x) / den;
    return t > 0 && t < 1 && u > 0 && u < 1;
}

/* The cost of box b for the label of point i, in pixels: the distance from its circle, 15 times
 * how deep it reaches into any circle and, for a label without a leader line, 4 times how much
 * nearer than 10 px to its own circle's it comes to another circle; 40 for each circle or label
 * its leader line passes through, each leader line the box covers, and 20 for each leader line
 * its own crosses. INFINITY when it leaves the area or meets a label placed before. Stops early
 * (returning at least bound) once the cost reaches bound. */
static double label_cost(LabelBox b, int i, const Label *lab, const double *cx, const double *cy,
                         const double *rad, int n, LabelBox area, double bound) {
    if (b.x0 < area.x0 || b.y0 < area.y0 || b.x1 > area.x1 || b.y1 > area.y1) return INFINITY;
    const double own = fmax(0.0, label_box_dist(b, cx[i], cy[i]) - rad[i]);
    if (own >= bound) return own;
    const LabelBox pad = {b.x0 - 1.5, b.y0 - 1.5, b.x1 + 1.5, b.y1 + 1.5};
    for (int j = 0; j < n; j++)
        if (lab[j].placed && overlap(pad, lab[j].box) > 0) return INFINITY;
    LabelSeg seg = {0, 0, 0, 0};
    const int leader = leader_of(&seg, b, cx[i], cy[i], rad[i]);
    double cost = own;
    for (int j = 0; j < n; j++) {
        const double d = label_box_dist(b, cx[j], cy[j]);
        cost += 15.0 * fmax(0.0, rad[j] - d); /* how deep into the circle the box reaches */
        /* a label nearer another circle than its own reads as that circle's, unless a leader
         * line says whose it is */
        if (j != i && !leader && fmax(0.0, d - rad[j]) < own + 10.0)
            cost += 4.0 * (own + 10.0 - fmax(0.0, d - rad[j]));
    }
    for (int j = 0; j < n && cost < bound; j++) { /* the lines, dearer to check */
        if (j == i) continue;
        if (leader && seg_meets(seg, NULL, cx[j], cy[j], rad[j])) cost += 40.0;
        if (!lab[j].placed) continue;
        if (leader && seg_meets(seg, &lab[j].box, 0, 0, 0)) cost += 40.0;
        if (lab[j].leader && seg_meets(lab[j].seg, &pad, 0, 0, 0)) cost += 40.0;
        if (leader && lab[j].leader && segs_cross(seg, lab[j].seg)) cost += 20.0;
    }
    return cost;
}

/* Places label i given the labels placed so far: against its circle (right, left, above,
 * below, the diagonals, a little farther out) or, when none of those is free and clear, at the
 * cheapest place of a 4-pixel grid over the area (with a leader line). Returns its cost,
 * INFINITY when there is no room at all. */
static double place_one(Label *lab, int i, const double *cx, const double *cy, const double *rad,
                        const char *const *text, int n, LabelBox area, double fs) {
    static const double DX[8] = {1, -1, 0, 0, 0.7, 0.7, -0.7, -0.7};
    static const double DY[8] = {0, 0, -1, 1, -0.7, 0.7, -0.7, 0.7};
    static const double PREFER[8] = {0, 0.5, 1.5, 1.5, 3, 3, 3, 3}; /* beside, then above/below */
    static const double GAP[] = {2, 6, 12};
    const double w = label_text_width(text[i], fs), h = 1.25 * fs;
    double best = INFINITY;
    LabelBox pick = {0, 0, 0, 0};
    for (size_t g = 0; g < sizeof GAP / sizeof GAP[0]; g++)
        for (int c = 0; c < 8; c++) {
            /* the box touches the circle in the direction (DX, DY), GAP px off */
            const double ex = cx[i] + DX[c] * (rad[i] + GAP[g]),
                         ey = cy[i] + DY[c] * (rad[i] + GAP[g]);
            const double ax = DX[c] > 0 ? ex : DX[c] < 0 ? ex - w : ex - w / 2;
            const double ay = DY[c] > 0 ? ey : DY[c] < 0 ? ey - h : ey - h / 2;
            const LabelBox b = {ax, ay, ax + w, ay + h};
            const double cost = label_cost(b, i, lab, cx, cy, rad, n, area, best) + PREFER[c];
            if (cost < best) best = cost, pick = b;
        }
    if (!(best < 12.0)) /* the grid costs 6 more: leader lines are the last resort */
        for (double y = area.y0; y + h <= area.y1; y += 4.0)
            for (double x = area.x0; x + w <= area.x1; x += 4.0) {
                const LabelBox b = {x, y, x + w, y + h};
                const double cost = label_cost(b, i, lab, cx, cy, rad, n, area, best - 6.0) + 6.0;
                if (cost < best) best = cost, pick = b;
            }
    lab[i].placed = best < INFINITY;
    lab[i].box = pick;
    lab[i].leader = lab[i].placed && leader_of(&lab[i].seg, pick, cx[i], cy[i], rad[i]);
    return best;
}

/* Places every point's label where it meets no other label and stays inside the area
 * (place_one, one label after another). The order matters, so it is tried TRIALS ways, the most
 * crowded points first and then that order shuffled (a fixed generator: the same figure every
 * time), and the placement of the least total cost is kept. */
void label_place(Label *lab, const double *cx, const double *cy, const double *rad,
                 const char *const *text, int n, LabelBox area, double fs) {
    enum { TRIALS = 16 };
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order),
        *crowd = calloc((size_t)n + 1, sizeof *crowd);
    Label *trial = malloc((size_t)(n ? n : 1) * sizeof *trial);
    XB_ASSERT(order && crowd && trial);
    for (int i = 0; i < n; i++) {
        order[i] = i, lab[i].placed = 0;
        for (int j = 0; j < n; j++) crowd[i] += j != i && hypot(cx[i] - cx[j], cy[i] - cy[j]) < 60;
    }
    for (int a = 1; a < n; a++) /* insertion sort, most crowded first: stable */
        for (int b = a; b > 0 && crowd[order[b - 1]] < crowd[order[b]]; b--) {
            const int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    double best = INFINITY;
    unsigned long long state = 0x9e3779b97f4a7c15ull;
    for (int t = 0; t < TRIALS && n > 0; t++) {
        if (t) /* swap a few neighbours of the order: a nearby order, not a random one */
            for (int s = 0; s < 1 + n / 4; s++) {
                state = state * 6364136223846793005ull + 1442695040888963407ull;
                const int a = (int)((state >> 33) % (unsigned long long)n),
                          b = a + 1 < n ? a + 1 : 0;
                const int x = order[a];
                order[a] = order[b], order[b] = x;
            }
        double total = 0.0;
        for (int i = 0; i < n; i++) trial[i].placed = 0;
        for (int k = 0; k < n; k++) {
            const double c = place_one(trial, order[k], cx, cy, rad, text, n, area, fs);
            total += c < INFINITY ? c : 1e6; /* no room: the worst of outcomes */
        }
        if (total < best) best = total, memcpy(lab, trial, (size_t)n * sizeof *lab);
    }
    free(order), free(crowd), free(trial);
}
