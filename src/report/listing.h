/* `xformer-bench list --json`: the mechanisms, tasks, config keys and subcommands as one JSON
 * document for scripts (what `list` prints as text, with typed defaults and ranges). */
#ifndef XB_REPORT_LISTING_H
#define XB_REPORT_LISTING_H

#include "core/options.h"

struct cJSON;

/* A mechanism of the registry (mixers/mixer.h), as the listing shows it. */
typedef struct ListMechanism {
    const char *name, *classes, *arxiv, *title;
    int beyond_survey, honours_mask;
    const char *padding_dependence;        /* how the padded length matters; NULL: it does not */
    const char *padding_dependence_option; /* the option that brings it (NULL: always) */
    const OptSpec *opts;
    int n_opts;
} ListMechanism;

/* An option of a subcommand (cli/opts.h), as the listing shows it. */
typedef struct ListCommandOption {
    const char *name;           /* "--threads" */
    char alias;                 /* 'o' for -o; 0: none */
    const char *type;           /* flag, int, real, string, enum, list, ints, text */
    const char *value;          /* the value's name ("N"), NULL for a flag */
    const char *def;            /* the default as written on the command line; NULL: none */
    double min, max;            /* int, real, ints: the range (max may be infinite); else NaN */
    const char *const *choices; /* enum: NULL-terminated; else NULL */
    const char *valid;          /* what a value must be, as the errors say it */
    const char *help;
} ListCommandOption;

/* A subcommand with its options. */
typedef struct ListCommand {
    const char *name, *summary, *operands;
    const ListCommandOption *opts;
    int n_opts;
} ListCommand;

/* What a listing holds: bits. */
enum { LISTING_MECHANISMS = 1, LISTING_TASKS = 2, LISTING_CONFIG = 4, LISTING_COMMANDS = 8 };

/* The listing of the parts in `parts`: the mechanisms m[0..nm), every task of the task registry,
 * the keys of the config's experiment, model and train sections, the subcommands c[0..nc). Owned
 * by the caller. */
struct cJSON *report_listing(int parts, const ListMechanism *m, int nm, const ListCommand *c,
                             int nc);

#endif
