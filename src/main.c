/* xformer-bench: subcommand dispatch only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/xassert.h"
#include "version.h"

static const Command g_commands[] = {
    {"run", cmd_run, "train and evaluate the experiment(s) of a YAML config, write JSON reports"},
    {"list", cmd_list, "list the attention mechanisms and tasks with their options"},
    {"data", cmd_data, "load a task's data, print its statistics and checksum, export it"},
    {"eval", cmd_eval, "evaluate a report's checkpoint again; write its logits"},
    {"bench", cmd_bench,
     "time training steps of mechanisms across lengths (LRA's efficiency table)"},
    {"compare", cmd_compare, "compare two sets of reports; exit 1 on a regression (a CI gate)"},
    {"table", cmd_table, "turn reports into accuracy or efficiency tables (md, latex, csv)"},
    {"plot", cmd_plot, "draw reports as SVG: accuracy-speed-memory frontier, scaling curves"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: xformer-bench [--version] [--help] COMMAND [ARGS]\n\n"
               "Efficient-Transformer benchmark harness: YAML experiment in, trained encoder,\n"
               "JSON report out.\n\ncommands:\n");
    for (size_t i = 0; i < XB_ARRAY_LEN(g_commands); i++)
        fprintf(f, "  %-8s %s\n", g_commands[i].name, g_commands[i].summary);
    fprintf(f, "\n'xformer-bench COMMAND --help' describes a command.\n");
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "xformer-bench%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return XB_EXIT_USAGE;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    if (!s || !*s) return -1;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return XB_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            char *sub[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < XB_ARRAY_LEN(g_commands); i++)
                if (!strcmp(argv[2], g_commands[i].name)) return g_commands[i].run(2, sub);
        }
        usage(stdout);
        return XB_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("xformer-bench %s (%s)\n", XB_VERSION, XB_GIT_COMMIT);
        return XB_EXIT_OK;
    }
    for (size_t i = 0; i < XB_ARRAY_LEN(g_commands); i++)
        if (!strcmp(argv[1], g_commands[i].name)) {
            if (dist_init(&argc, &argv)) { /* MPI, when started by mpirun or srun */
                fprintf(stderr,
                        "xformer-bench: this build has no MPI, but it was started as one of %d "
                        "processes (mpirun or srun), each of which would run alone (valid: one "
                        "process, or a build with MPI: apt-get install libopenmpi-dev, then "
                        "meson configure build -Dmpi=enabled)\n",
                        dist_world_size());
                return XB_EXIT_USAGE;
            }
            const int rc = g_commands[i].run(argc - 1, argv + 1);
            dist_finalize();
            return rc;
        }
    char valid[256] = "";
    for (size_t i = 0; i < XB_ARRAY_LEN(g_commands); i++)
        snprintf(valid + strlen(valid), sizeof valid - strlen(valid), "%s%s", i ? ", " : "",
                 g_commands[i].name);
    cli_usage_error(NULL, "'%s' is not a command (valid: %s; see --help)", argv[1], valid);
    return XB_EXIT_USAGE;
}
