/* xformer-bench: subcommand dispatch only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/xassert.h"
#include "version.h"

static void usage(FILE *f) {
    fprintf(f, "usage: xformer-bench [--version] [--help] COMMAND [ARGS]\n\n"
               "Efficient-Transformer benchmark harness: YAML experiment in, trained encoder,\n"
               "JSON report out.\n\ncommands:\n");
    int n;
    const CliCommand *const *cmd = cli_commands(&n);
    for (int i = 0; i < n; i++) fprintf(f, "  %-8s %s\n", cmd[i]->name, cmd[i]->summary);
    fprintf(f, "\n'xformer-bench COMMAND --help' describes a command.\n");
}

/* The subcommand called name, or NULL. */
static const CliCommand *find_command(const char *name) {
    int n;
    const CliCommand *const *cmd = cli_commands(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(name, cmd[i]->name)) return cmd[i];
    return NULL;
}

/* Runs a subcommand: MPI first, when an MPI launcher started the process. */
static int run_command(const CliCommand *cmd, int argc, char **argv) {
    if (dist_init(&argc, &argv)) {
        fprintf(stderr,
                "xformer-bench: this build has no MPI, but it was started as one of %d "
                "processes (mpirun or srun), each of which would run alone (valid: one "
                "process, or a build with MPI: apt-get install libopenmpi-dev, then "
                "meson configure build -Dmpi=enabled)\n",
                dist_world_size());
        return XB_EXIT_USAGE;
    }
    const int rc = cli_main(cmd, argc - 1, argv + 1);
    dist_finalize();
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return XB_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        const CliCommand *cmd = argc > 2 && !strcmp(argv[1], "help") ? find_command(argv[2]) : NULL;
        char *sub[] = {argv[argc > 2 ? 2 : 1], "--help", NULL};
        if (cmd) return cli_main(cmd, 2, sub);
        usage(stdout);
        return XB_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("xformer-bench %s (%s)\n", XB_VERSION, XB_GIT_COMMIT);
        return XB_EXIT_OK;
    }
    const CliCommand *cmd = find_command(argv[1]);
    if (cmd) return run_command(cmd, argc, argv);
    int n;
    const CliCommand *const *all = cli_commands(&n);
    char valid[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(valid + strlen(valid), sizeof valid - strlen(valid), "%s%s", i ? ", " : "",
                 all[i]->name);
    return cli_usage_error(NULL, "\"%s\" is not a command (valid: %s; see --help)", argv[1], valid);
}
