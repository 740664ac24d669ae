/* Labels for the marks of a figure (circles) that never meet one another: each beside its circle
 * where there is room, else at the cheapest free place with a leader line. */
#ifndef XB_LABELS_H
#define XB_LABELS_H

/* A box and a line segment in SVG pixels. */
typedef struct LabelBox {
    double x0, y0, x1, y1;
} LabelBox;
typedef struct LabelSeg {
    double x0, y0, x1, y1;
} LabelSeg;

#define LABEL_LEADER 4.0 /* a label farther than this from its circle gets a leader line, px */

typedef struct Label {
    LabelBox box; /* the text's box: its left end, its baseline 0.3 font sizes above y1 */
    int placed;   /* 0: no room anywhere in the area */
    int leader;   /* a leader line from the circle to the box, seg */
    LabelSeg seg;
} Label;

/* The width of s at font size fs in a sans-serif face, from DejaVu Sans's advance widths (the
 * widest of the usual sans faces, so that a box holds its text elsewhere too): 0.40 em for the
 * narrow characters, 0.98 for m, w, M, W, % and @, 0.74 for capitals, 0.64 for the rest. */
double label_text_width(const char *s, double fs);
/* The distance from (x, y) to the box, 0 inside it. */
double label_box_dist(LabelBox b, double x, double y);
/* Places the labels text[0..n) of the circles (cx, cy, rad)[0..n) inside area at font size fs:
 * no two labels meet, and each is beside its circle when a place there is free and clear. */
void label_place(Label *lab, const double *cx, const double *cy, const double *rad,
                 const char *const *text, int n, LabelBox area, double fs);

#endif
