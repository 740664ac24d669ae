/* plot --kind frontier: the Long Range Arena's Figure 3, one point per mechanism (accuracy from
 * the training reports, speed and memory from the bench reports at one length). */
#ifndef XB_PLOT_FRONTIER_H
#define XB_PLOT_FRONTIER_H

#include <stdio.h>

#include "core/error.h"
#include "report/summary.h"

typedef struct FrontierOptions {
    const char *task; /* one task's accuracy; NULL: the mean over the tasks present */
    int length;       /* the bench reports' length; 0: the longest among them */
    int facet;        /* a panel per task */
} FrontierOptions;

typedef struct Frontier Frontier;

/* Gathers the figure's points from r[0..n) (borrowed until frontier_free). Returns the figure
 * (owned by the caller), or NULL with err set when the options ask for what the reports do not
 * hold (a task without reports, a length without bench reports). */
Frontier *frontier_prepare(const ReportSummary *r, int n, const FrontierOptions *opt, XbError *err);
/* Writes the figure as a stand-alone SVG document. */
void frontier_draw(FILE *o, const Frontier *f);
void frontier_free(Frontier *f);

#endif
