/* Command-line options: each subcommand declares its options in one static table (name, short
 * form, value type with its range or choices, default, where the value goes, help), and that table
 * drives the parsing, the checks of types and ranges, the one-line errors and the --help text.
 *
 *     typedef struct RunArgs { CliList config; long long threads; ... } RunArgs;
 *     enum { RUN_THREADS, ..., N_RUN_OPTS };
 *     static const CliOpt RUN_OPTS[] = {
 *         [RUN_THREADS] = {"--threads", 0, CLI_INT, CLI_AT(RunArgs, threads, long long), "N",
 *                          .min = 0, .max = 1024, .help = "threads, 0 = all cores"},
 *         ...};
 *     CLI_CHECK_TABLE(RUN_OPTS, N_RUN_OPTS);
 *     const CliCommand CMD_RUN = CLI_COMMAND("run", RunArgs, config, run_args, RUN_OPTS, RUN_HELP,
 *                                            .operands = "CONFIG", ...);
 *
 * cli_main(&CMD_RUN, argc, argv) parses into a RunArgs and calls run_args(args, seen). Errors are
 * one line, "xformer-bench CMD: " and then:
 *     --threads: expected an integer in [0, 1024], got "x"
 *     --threads needs a value (see --help)
 *     unknown option "--thread" (valid: --set, -o/--output, ..., --help)
 *     --lengths does not apply to --allreduce (see --help)
 *     --sizes applies only to --allreduce (see --help)
 *     expected one CONFIG, got "a.yaml" and "b.yaml"
 */
#ifndef XB_CLI_OPTS_H
#define XB_CLI_OPTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_FLAG, /* no value: the int at `at` becomes 1 */
    CLI_INT,  /* a whole decimal number in [min, max]: long long */
    CLI_REAL, /* a finite number in [min, max] ((min, max) with `open`): double */
    CLI_STR,  /* any text: const char * (into argv) */
    CLI_ENUM, /* one of `choices`: int, its index */
    CLI_LIST, /* repeatable, every value kept in order: CliList */
    CLI_INTS, /* whole numbers in [min, max] separated by commas: CliInts */
    CLI_PARSE /* the option's own `parse` */
} CliType;

/* The values of a CLI_LIST option (pointers into argv; v is owned by cli_args_free). */
typedef struct CliList {
    const char **v;
    int n;
} CliList;

enum { CLI_MAX_INTS = 64 };
/* The values of a CLI_INTS option. */
typedef struct CliInts {
    long long v[CLI_MAX_INTS];
    int n;
} CliInts;

enum { CLI_MAX_OPTS = 32 }; /* options of one command */

/* A command's option table has an entry for each value of its enum of options (count n), and
 * no more than CliSeen has room for. */
#define CLI_CHECK_TABLE(table, n)                                                                  \
    _Static_assert(sizeof(table) / sizeof((table)[0]) == (size_t)(n) &&                            \
                       (int)(n) <= (int)CLI_MAX_OPTS,                                              \
                   "an entry for every option of " #table ", and at most CLI_MAX_OPTS")

/* The destination of an option: the offset of `field` in the command's argument struct T, checked
 * at compile time to have type `type`. */
#define CLI_AT(T, field, type)                                                                     \
    (offsetof(T, field) + 0 * sizeof(_Generic(((T *)0)->field, type : 1)))

typedef struct CliOpt {
    const char *name; /* "--threads" */
    char alias;       /* the short form: 'o' for -o; 0: none */
    CliType type;
    size_t at;        /* CLI_AT: where the value goes */
    const char *meta; /* the value's name in usage and help ("N", "DIR"); NULL for a flag */
    double min, max;  /* CLI_INT, CLI_REAL, CLI_INTS: the valid range (inclusive) */
    int open;         /* CLI_REAL: the range excludes both ends */
    const char *const *choices; /* CLI_ENUM: the valid values, NULL-terminated */
    /* CLI_PARSE: parses value into dst; returns 0, or -1 with got[0..n) the part that is wrong
     * (left empty: the whole value) */
    int (*parse)(void *dst, const char *value, char *got, size_t n);
    const char *def;   /* the default, as it would be written on the command line; NULL: none */
    const char *valid; /* what a value must be, for errors and help; NULL: said by type and range */
    const char *needs; /* what a missing value is ("a directory"); NULL: "a value" */
    unsigned modes;    /* the modes (bits of CliCommand.modes) it applies in; 0: every mode */
    int required;      /* the command cannot go without it: "expected -o FILE.svg (see --help)" */
    const char *help;  /* one paragraph; the help wraps it */
} CliOpt;

/* A command's spec (a CliCommand initialiser): its name, its argument struct T whose CliList
 * `operands` receives the operands, the function that runs it, its option and help tables (their
 * counts taken from them); then the other fields, designated (.summary, .operands, ...). */
#define CLI_COMMAND(command, T, operands_field, run, OPTS, HELP, ...)                              \
    {                                                                                              \
        .name = command, .opts = OPTS, .n_opts = (int)(sizeof(OPTS) / sizeof((OPTS)[0])),          \
        .operands_at = CLI_AT(T, operands_field, CliList), .help = HELP,                           \
        .n_help = (int)(sizeof(HELP) / sizeof((HELP)[0])), .args_size = sizeof(T), .go = run,      \
        __VA_ARGS__                                                                                \
    }

/* What cli_parse found besides the values. */

typedef struct CliSeen {
    int given[CLI_MAX_OPTS]; /* for each option: the argv index where it was first given, 0: not
                                given */
    int mode;                /* the index of the selected mode (0 without modes) */
} CliSeen;

/* A way of running a command that only some options apply to (bench --allreduce, plot --kind
 * scaling): selected by a flag, or by a value of an enum option. */
typedef struct CliMode {
    const char *name;     /* as errors and help call it ("--allreduce"); NULL: the plain mode */
    int select;           /* the index of the option that selects it; -1: the mode without one */
    int value;            /* an enum option's value that selects it (a flag: ignored) */
    const char *prefix;   /* before "xformer-bench" in its usage line ("mpirun -np P ") */
    const char *operands; /* its operands in the usage line; NULL: the command's */
} CliMode;

/* A paragraph of the help: text, then the options of the modes in `modes` not listed yet. */
typedef struct CliHelp {
    const char *text;
    unsigned modes; /* 0: no options after this paragraph; ~0u: every mode */
} CliHelp;

typedef struct CliCommand {
    const char *name; /* "run" */
    const CliOpt *opts;
    int n_opts;
    const char *operands; /* the usage's operands: "CONFIG", "BASE NEW", "REPORTS..." */
    size_t operands_at;   /* CLI_AT of the CliList that receives them */
    int min_operands;     /* fewer: `missing`, or the usage on stderr when it is NULL */
    int max_operands;     /* -1: no limit */
    const char *one_more; /* more: 'expected ONE_MORE, got "a" and "b"' */
    const char *missing;  /* the message for too few operands; NULL: the usage */
    const CliMode *modes; /* NULL: one mode */
    int n_modes;
    const char *const *usage_extra; /* more usage lines, NULL-terminated ("mpirun ... run ...") */
    const CliHelp *help;            /* the help's paragraphs after the usage */
    int n_help;
    const char *summary;   /* one line, for `xformer-bench --help` and `list --json` */
    size_t args_size;      /* the command's argument struct */
    const void *args_init; /* its values before the defaults and the arguments; NULL: zeros */
    /* runs the command on the parsed arguments; returns its exit code */
    int (*go)(const void *args, const CliSeen *seen);
} CliCommand;

/* Runs command c on argv[0..argc) (argv[0] its name): parses the arguments into a struct of its
 * own and hands them to c->go. Returns the exit code. */
int cli_main(const CliCommand *c, int argc, char **argv);
/* What a value of o must be ("an integer in [0, 1024]", "md, latex or csv"), into buf. */
void cli_opt_valid(const CliOpt *o, char *buf, size_t n);
/* The name of a CliType for listings: flag, int, real, string, enum, list, ints, text. */
const char *cli_type_name(CliType t);

#endif
