#include "core/profile.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

static const char *const g_names[PROF_N] = {
    "embedding",       "layernorm", "linear",  "attention", "linear_attention", "activation",
    "dropout",         "softmax",   "pool",    "loss",      "gather",           "mixer",
    "cross_attention", "ffn",       "encoder", "optimizer", "communication",    "data"};

enum { DEPTH = 32 };
static double g_acc[PROF_N][2];
static struct {
    int kind, dir;
    double t0;
} g_stack[DEPTH];
static int g_top, g_over; /* g_over: opens beyond DEPTH, not timed */
static int g_on = -1;     /* -1: not read from the environment yet */
static long long g_regions;

static int enabled(void) {
    if (g_on < 0) {
        const char *e = getenv("XB_PROFILE");
        g_on = !(e && !strcmp(e, "0"));
    }
    return g_on;
}

void prof_open(ProfKind k, int backward) {
    if (!enabled() || omp_in_parallel()) return;
    if (g_top == DEPTH) {
        g_over++;
        return;
    }
    const double now = timer_now();
    if (g_top > 0) { /* the enclosing region pauses */
        g_acc[g_stack[g_top - 1].kind][g_stack[g_top - 1].dir] += now - g_stack[g_top - 1].t0;
    }
    g_stack[g_top].kind = (int)k, g_stack[g_top].dir = backward != 0, g_stack[g_top].t0 = now;
    g_top++;
    g_regions++;
}

void prof_close(void) {
    if (!enabled() || omp_in_parallel()) return;
    if (g_over) {
        g_over--;
        return;
    }
    if (g_top == 0) return;
    const double now = timer_now();
    g_top--;
    g_acc[g_stack[g_top].kind][g_stack[g_top].dir] += now - g_stack[g_top].t0;
    if (g_top > 0) g_stack[g_top - 1].t0 = now; /* the enclosing region resumes */
}

void prof_reset(void) {
    memset(g_acc, 0, sizeof g_acc);
    g_regions = 0;
}

void prof_enable(int on) {
    const char *e = getenv("XB_PROFILE");
    g_on = on && !(e && !strcmp(e, "0"));
}

double prof_seconds(ProfKind k, int backward) { return g_acc[k][backward != 0]; }

const char *prof_name(ProfKind k) { return (unsigned)k < PROF_N ? g_names[k] : "?"; }

long long prof_regions(void) { return g_regions; }
