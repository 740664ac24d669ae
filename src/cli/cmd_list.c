/* xformer-bench list: the registry tables, as text or Markdown. */
#include <cjson/cJSON.h>
#include <math.h>
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
#include "report/listing.h"
#include "report/report.h"
#include "tasks/task.h"

/* The arguments of `list`. */
typedef struct ListArgs {
    CliList what; /* the operand: mechanisms (or mixers), tasks or config; none: all three */
    int markdown, json;
} ListArgs;

enum { LIST_MARKDOWN, LIST_JSON, N_LIST_OPTS };
static const CliOpt LIST_OPTS[] = {
    [LIST_MARKDOWN] = {"--markdown", 0, CLI_FLAG, CLI_AT(ListArgs, markdown, int),
                       .help = "Markdown tables instead of text"},
    [LIST_JSON] = {"--json", 0, CLI_FLAG, CLI_AT(ListArgs, json, int),
                   .help = "one JSON document for scripts: the mechanisms (with their class), "
                           "tasks and config keys, each option with its type, default, range or "
                           "choices and help; without a part named, the subcommands and their "
                           "options too"},
};

static const CliHelp LIST_HELP[] = {
    {"Lists every attention mechanism (name, taxonomy class of arXiv 2009.06732, paper, whether\n"
     "it honours the key-padding mask, options with defaults and ranges), every task, and the\n"
     "keys of the experiment, model and train sections of a config; with --json, the\n"
     "subcommands and their options too.\n",
     ~0u},
};

/* What list prints: bits, from the operand. */
enum {
    LIST_MECHANISMS = LISTING_MECHANISMS,
    LIST_TASKS = LISTING_TASKS,
    LIST_CONFIG = LISTING_CONFIG
};
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

/* The registry's mechanisms, as the listing takes them (malloc'd; *n of them). */
static ListMechanism *mechanisms(int *n) {
    *n = mixer_count();
    ListMechanism *m = calloc((size_t)*n, sizeof *m);
    XB_ASSERT(m);
    for (int i = 0; i < *n; i++) {
        const MixerSpec *s = mixer_get(i);
        m[i] = (ListMechanism){s->name,
                               s->classes,
                               s->arxiv,
                               s->title,
                               s->beyond_survey,
                               s->honours_mask,
                               s->padding_dependence,
                               s->padding_dependence_option,
                               s->opts,
                               s->n_opts};
    }
    return m;
}

/* The subcommands with their options, as the listing takes them; free with free_commands. */
static ListCommand *commands(int *n) {
    const CliCommand *const *cmd = cli_commands(n);
    ListCommand *c = calloc((size_t)*n, sizeof *c);
    XB_ASSERT(c);
    for (int i = 0; i < *n; i++) {
        const CliCommand *s = cmd[i];
        ListCommandOption *o = calloc((size_t)s->n_opts + 1, sizeof *o);
        XB_ASSERT(o);
        for (int k = 0; k < s->n_opts; k++) {
            const CliOpt *p = &s->opts[k];
            const int ranged = p->type == CLI_INT || p->type == CLI_REAL || p->type == CLI_INTS;
            o[k] = (ListCommandOption){.name = p->name,
                                       .alias = p->alias,
                                       .type = cli_type_name(p->type),
                                       .value = p->meta,
                                       .def = p->def,
                                       .min = ranged ? p->min : NAN,
                                       .max = ranged ? p->max : NAN,
                                       .choices = p->type == CLI_ENUM ? p->choices : NULL,
                                       .help = p->help};
            char *valid = malloc(512);
            XB_ASSERT(valid);
            cli_opt_valid(p, valid, 512);
            o[k].valid = valid;
        }
        c[i] = (ListCommand){s->name, s->summary, s->operands, o, s->n_opts};
    }
    return c;
}

static void free_commands(ListCommand *c, int n) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < c[i].n_opts; k++) free((char *)c[i].opts[k].valid);
        free((ListCommandOption *)c[i].opts);
    }
    free(c);
}

/* list --json: the parts asked, and the subcommands when every part is. */
static int list_json(int what) {
    int nm, nc;
    ListMechanism *m = mechanisms(&nm);
    ListCommand *c = commands(&nc);
    const int all = LIST_MECHANISMS | LIST_TASKS | LIST_CONFIG;
    cJSON *doc = report_listing(what == all ? what | LISTING_COMMANDS : what, m, nm, c, nc);
    char *text = report_json_print(doc);
    fputs(text, stdout);
    free(text);
    cJSON_Delete(doc);
    free_commands(c, nc);
    free(m);
    return XB_EXIT_OK;
}

static int list_parts(const void *args, const CliSeen *seen) {
    const ListArgs *a = args;
    (void)seen;
    const int md = a->markdown;
    int what = LIST_MECHANISMS | LIST_TASKS | LIST_CONFIG;
    if (a->what.n) {
        what = 0;
        for (size_t i = 0; i < XB_ARRAY_LEN(LIST_PARTS); i++)
            if (!strcmp(a->what.v[0], LIST_PARTS[i].name)) what = LIST_PARTS[i].parts;
        if (!what)
            return cli_usage_error("list", "expected mechanisms, tasks or config, got \"%s\"",
                                   a->what.v[0]);
    }
    if (a->json && md)
        return cli_usage_error("list", "--json and --markdown: expected one of them");
    if (a->json) return list_json(what);
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

CLI_CHECK_TABLE(LIST_OPTS, N_LIST_OPTS);
const CliCommand CMD_LIST =
    CLI_COMMAND("list", ListArgs, what, list_parts, LIST_OPTS, LIST_HELP,
                .summary = "list the attention mechanisms and tasks with their options",
                .operands = "[mechanisms|tasks|config]", .max_operands = 1,
                .one_more = "one of mechanisms, tasks, config");
