/* The subcommands, in the order `xformer-bench --help` lists them. */
#include "cli/cli.h"
#include "core/xassert.h"

static const Command COMMANDS[] = {
    {&CMD_RUN, cmd_run},     {&CMD_LIST, cmd_list},   {&CMD_DATA, cmd_data},
    {&CMD_EVAL, cmd_eval},   {&CMD_BENCH, cmd_bench}, {&CMD_COMPARE, cmd_compare},
    {&CMD_TABLE, cmd_table}, {&CMD_PLOT, cmd_plot},
};

const Command *cli_commands(int *n) {
    *n = (int)XB_ARRAY_LEN(COMMANDS);
    return COMMANDS;
}
