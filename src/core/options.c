#include "core/options.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/xassert.h"

void opt_defaults(OptValues *v, const OptSpec *specs, int n) {
    XB_ASSERT(n <= XB_MAX_OPTS);
    memset(v, 0, sizeof *v);
    v->n = n;
    for (int i = 0; i < n; i++) {
        v->num[i] = specs[i].def;
        if (specs[i].type == OPT_STRING && specs[i].def_str)
            snprintf(v->str[i], XB_OPT_STRLEN, "%s", specs[i].def_str);
    }
}

int opt_index(const OptSpec *specs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(specs[i].name, name) == 0) return i;
    return -1;
}

static int must_index(const OptSpec *specs, int n, const char *name, OptType t) {
    int i = opt_index(specs, n, name);
    XB_ASSERT(i >= 0);
    XB_ASSERT(specs[i].type == t);
    return i;
}

int opt_int(const OptValues *v, const OptSpec *s, int n, const char *name) {
    return (int)v->num[must_index(s, n, name, OPT_INT)];
}
double opt_float(const OptValues *v, const OptSpec *s, int n, const char *name) {
    return v->num[must_index(s, n, name, OPT_FLOAT)];
}
int opt_bool(const OptValues *v, const OptSpec *s, int n, const char *name) {
    return v->num[must_index(s, n, name, OPT_BOOL)] != 0.0;
}
int opt_enum(const OptValues *v, const OptSpec *s, int n, const char *name) {
    return (int)v->num[must_index(s, n, name, OPT_ENUM)];
}
const char *opt_enum_name(const OptValues *v, const OptSpec *s, int n, const char *name) {
    int i = must_index(s, n, name, OPT_ENUM);
    return s[i].choices[(int)v->num[i]];
}
const char *opt_str(const OptValues *v, const OptSpec *s, int n, const char *name) {
    return v->str[must_index(s, n, name, OPT_STRING)];
}

static void fmt_num(char *buf, size_t n, double x, OptType t) {
    if (t == OPT_INT || (fabs(x) < 1e15 && x == floor(x) && fabs(x) >= 1.0))
        snprintf(buf, n, "%.0f", x);
    else
        snprintf(buf, n, "%g", x);
}

void opt_describe_valid(const OptSpec *s, char *buf, size_t n) {
    char lo[32], hi[32];
    switch (s->type) {
    case OPT_INT:
    case OPT_FLOAT:
        fmt_num(lo, sizeof lo, s->min, s->type);
        fmt_num(hi, sizeof hi, s->max, s->type);
        snprintf(buf, n, "%s in [%s, %s]", s->type == OPT_INT ? "an integer" : "a number", lo, hi);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "true or false");
        break;
    case OPT_ENUM: {
        size_t k = (size_t)snprintf(buf, n, "one of: ");
        for (int i = 0; s->choices[i] && k < n; i++)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", s->choices[i]);
        break;
    }
    case OPT_STRING:
        snprintf(buf, n, "a string");
        break;
    }
}

void opt_format_value(const OptSpec *s, const OptValues *v, int i, char *buf, size_t n) {
    switch (s->type) {
    case OPT_INT:
    case OPT_FLOAT:
        fmt_num(buf, n, v->num[i], s->type);
        break;
    case OPT_BOOL:
        snprintf(buf, n, "%s", v->num[i] != 0.0 ? "true" : "false");
        break;
    case OPT_ENUM:
        snprintf(buf, n, "%s", s->choices[(int)v->num[i]]);
        break;
    case OPT_STRING:
        snprintf(buf, n, "%s", v->str[i]);
        break;
    }
}

void opt_format_default(const OptSpec *s, char *buf, size_t n) {
    OptValues v;
    v.n = 1;
    v.num[0] = s->def;
    snprintf(v.str[0], XB_OPT_STRLEN, "%s", s->def_str ? s->def_str : "");
    opt_format_value(s, &v, 0, buf, n);
}

const char *opt_type_name(OptType t) {
    static const char *const names[] = {"int", "float", "bool", "enum", "string"};
    return names[t];
}
