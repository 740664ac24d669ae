/* The subcommands, in the order `xformer-bench --help` lists them. */
#include "cli/cli.h"
#include "core/xassert.h"

static const CliCommand *const COMMANDS[] = {&CMD_RUN,   &CMD_LIST,    &CMD_DATA,  &CMD_EVAL,
                                             &CMD_BENCH, &CMD_COMPARE, &CMD_TABLE, &CMD_PLOT};

const CliCommand *const *cli_commands(int *n) {
    *n = (int)XB_ARRAY_LEN(COMMANDS);
    return COMMANDS;
}
