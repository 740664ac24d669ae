/* xformer-bench list: the registry tables, as text or Markdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "config/config.h"
#include "core/error.h"
#include "core/options.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

/* The arguments of `list`. */
typedef struct ListArgs {
    CliList what; /* the operand: mechanisms (or mixers), tasks or config; none: all three */
    int markdown;
} ListArgs;

enum { LIST_MARKDOWN, N_LIST_OPTS };
static const CliOpt LIST_OPTS[] = {
    [LIST_MARKDOWN] = {"--markdown", 0, CLI_FLAG, CLI_AT(ListArgs, markdown, int),
                       .help = "Markdown tables instead of text"},
};
CLI_CHECK_TABLE(LIST_OPTS, N_LIST_OPTS);

static const CliHelp LIST_HELP[] = {
    {"Lists every attention mechanism (name, taxonomy class of arXiv 2009.06732, paper, whether\n"
     "it honours the key-padding mask, options with defaults and ranges), every task, and the\n"
     "keys of the experiment, model and train sections of a config.\n",
     ~0u},
};

const CliCommand CMD_LIST = {
    .name = "list",
    .summary = "list the attention mechanisms and tasks with their options",
    .opts = LIST_OPTS,
    .n_opts = N_LIST_OPTS,
    .operands = "[mechanisms|tasks|config]",
    .operands_at = CLI_AT(ListArgs, what, CliList),
    .max_operands = 1,
    .one_more = "one of mechanisms, tasks, config",
    .help = LIST_HELP,
    .n_help = XB_ARRAY_LEN(LIST_HELP),
};

/* What list prints: bits of LIST_PART_*, from the operand. */
enum { LIST_MECHANISMS = 1, LIST_TASKS = 2, LIST_CONFIG = 4 };
static const struct {
    const char *name;
    int parts;
} LIST_PARTS[] = {{"mechanisms", LIST_MECHANISMS},
                  {"mixers", LIST_MECHANISMS},
                  {"tasks", LIST_TASKS},
                  {"config", LIST_CONFIG}};

static void print_opts(const OptSpec *o, int n, int md) {
    for (int i = 0; i < n; i++) {
        char def[128], valid[512];
        opt_format_default(&o[i], def, sizeof def);
        opt_describe_valid(&o[i], valid, sizeof valid);
        if (md)
            printf("| `%s` | %s | `%s` | %s | %s |\n", o[i].name, opt_type_name(o[i].type), def,
                   valid, o[i].help ? o[i].help : "");
        else
            printf("    %-16s %-6s default %-10s %s; %s\n", o[i].name, opt_type_name(o[i].type),
                   def, valid, o[i].help ? o[i].help : "");
    }
}

static void list_mixers(int md) {
    if (md) printf("## Mechanisms\n\n");
    for (int i = 0; i < mixer_count(); i++) {
        const MixerSpec *m = mixer_get(i);
        if (md) {
            printf("### `%s` (%s%s, arXiv %s)\n\n%s. Key-padding mask: %s.", m->name, m->classes,
                   m->beyond_survey ? ", beyond the survey" : "", m->arxiv, m->title,
                   m->honours_mask ? "honoured" : "not honoured");
            if (m->padding_dependence)
                printf(" Padded length%s%s%s: %s.", m->padding_dependence_option ? " (with " : "",
                       m->padding_dependence_option ? m->padding_dependence_option : "",
                       m->padding_dependence_option ? ": true)" : "", m->padding_dependence);
            printf("\n\n");
            if (m->n_opts)
                printf("| option | type | default | valid | meaning |\n|---|---|---|---|---|\n");
            print_opts(m->opts, m->n_opts, 1);
            printf("\n");
        } else {
            printf("%-20s class %-10s arXiv %-10s mask %-3s %s%s\n", m->name, m->classes, m->arxiv,
                   m->honours_mask ? "yes" : "no", m->title,
                   m->beyond_survey ? " [beyond the survey]" : "");
            if (m->padding_dependence)
                printf("    padded length%s%s%s: %s\n",
                       m->padding_dependence_option ? " (with " : "",
                       m->padding_dependence_option ? m->padding_dependence_option : "",
                       m->padding_dependence_option ? ": true)" : "", m->padding_dependence);
            print_opts(m->opts, m->n_opts, 0);
        }
    }
}

static void list_tasks(int md) {
    if (md) printf("## Tasks\n\n");
    for (int i = 0; i < task_count(); i++) {
        const TaskSpec *t = task_get(i);
        if (md) {
            printf("### `%s`\n\n%s\n\n| option | type | default | valid | meaning "
                   "|\n|---|---|---|---|---|\n",
                   t->name, t->description);
            print_opts(t->opts, t->n_opts, 1);
            printf("\n");
        } else {
            printf("%-20s %s\n", t->name, t->description);
            print_opts(t->opts, t->n_opts, 0);
        }
    }
}

static void list_config(int md) {
    static const char *const sections[] = {"experiment", "model", "train"};
    for (int k = 0; k < 3; k++) {
        const int n = cfg_key_count(sections[k]);
        OptSpec *o = malloc((size_t)n * sizeof *o);
        XB_ASSERT(o);
        for (int i = 0; i < n; i++) o[i] = *cfg_key(sections[k], i);
        if (md)
            printf(
                "### `%s:`\n\n| key | type | default | valid | meaning |\n|---|---|---|---|---|\n",
                sections[k]);
        else
            printf("%s:\n", sections[k]);
        print_opts(o, n, md);
        if (md) printf("\n");
        free(o);
    }
}

static int list_parts(const ListArgs *a, int md) {
    int what = LIST_MECHANISMS | LIST_TASKS | LIST_CONFIG;
    if (a->what.n) {
        what = 0;
        for (size_t i = 0; i < XB_ARRAY_LEN(LIST_PARTS); i++)
            if (!strcmp(a->what.v[0], LIST_PARTS[i].name)) what = LIST_PARTS[i].parts;
        if (!what)
            return cli_usage_error("list", "expected mechanisms, tasks or config, got \"%s\"",
                                   a->what.v[0]);
    }
    if (what & LIST_MECHANISMS) {
        if (!md) printf("Mechanisms (%d):\n", mixer_count());
        list_mixers(md);
    }
    if (what & LIST_TASKS) {
        if (!md) printf("%sTasks (%d):\n", what & LIST_MECHANISMS ? "\n" : "", task_count());
        list_tasks(md);
    }
    if (what & LIST_CONFIG) {
        if (!md) printf("%sConfig keys:\n", what & (LIST_MECHANISMS | LIST_TASKS) ? "\n" : "");
        list_config(md);
    }
    return XB_EXIT_OK;
}

int cmd_list(int argc, char **argv) {
    ListArgs a = {0};
    CliSeen seen;
    int rc;
    if (!cli_parse(&CMD_LIST, argc, argv, &a, &seen, &rc)) rc = list_parts(&a, a.markdown);
    cli_args_free(&CMD_LIST, &a);
    return rc;
}
