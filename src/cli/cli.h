/* Subcommands: each parses its own arguments and wires the library together. */
#ifndef XB_CLI_H
#define XB_CLI_H

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name; returns an exit code */
    const char *summary;
} Command;

int cmd_run(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* Prints "xformer-bench CMD: message" on stderr and returns XB_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a whole decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

#endif
