/* Option schemas: the typed, ranged options that mechanisms and tasks declare in their registry
 * entries. The config module validates YAML against them; `list` prints them. */
#ifndef XB_OPTIONS_H
#define XB_OPTIONS_H

#include <stddef.h>

#define XB_MAX_OPTS 32
#define XB_OPT_STRLEN 512

typedef enum { OPT_INT, OPT_FLOAT, OPT_BOOL, OPT_ENUM, OPT_STRING } OptType;

typedef struct OptSpec {
    const char *name;
    OptType type;
    double def;                 /* default for INT/FLOAT/BOOL (0/1); index into choices for ENUM */
    double min, max;            /* inclusive range for INT/FLOAT */
    const char *const *choices; /* NULL-terminated, for ENUM */
    const char *def_str;        /* default for STRING ("" allowed) */
    const char *help;           /* one line */
} OptSpec;

/* Values for a spec table, index-aligned with it. ENUM values hold the choice index in num[]. */
typedef struct OptValues {
    int n;
    double num[XB_MAX_OPTS];
    char str[XB_MAX_OPTS][XB_OPT_STRLEN];
    unsigned char set[XB_MAX_OPTS]; /* 1 when given by the user rather than defaulted */
} OptValues;

/* Fills v with the defaults of specs[0..n). */
void opt_defaults(OptValues *v, const OptSpec *specs, int n);
/* Index of the option called name in specs, or -1. */
int opt_index(const OptSpec *specs, int n, const char *name);
/* Accessors by name; abort if the name is not in the schema (a programming error). */
int opt_int(const OptValues *v, const OptSpec *specs, int n, const char *name);
double opt_float(const OptValues *v, const OptSpec *specs, int n, const char *name);
int opt_bool(const OptValues *v, const OptSpec *specs, int n, const char *name);
/* ENUM: the chosen index; opt_enum_name: the chosen string. */
int opt_enum(const OptValues *v, const OptSpec *specs, int n, const char *name);
const char *opt_enum_name(const OptValues *v, const OptSpec *specs, int n, const char *name);
const char *opt_str(const OptValues *v, const OptSpec *specs, int n, const char *name);
/* Describes what is valid for s, e.g. "an integer in [1, 4096]" or "one of: cls, mean". */
void opt_describe_valid(const OptSpec *s, char *buf, size_t n);
/* Writes the value of option i as text (for listings and reports). */
void opt_format_value(const OptSpec *s, const OptValues *v, int i, char *buf, size_t n);
/* Writes the default of s as text. */
void opt_format_default(const OptSpec *s, char *buf, size_t n);
/* Type name for listings: int, float, bool, enum, string. */
const char *opt_type_name(OptType t);

#endif
