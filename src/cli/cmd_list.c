/* xformer-bench list: the registry tables, as text or Markdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/error.h"
#include "core/options.h"
#include "core/xassert.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

static const char *const USAGE =
    "usage: xformer-bench list [mechanisms|tasks|config] [--markdown]\n\n"
    "Lists every attention mechanism (name, taxonomy class of arXiv 2009.06732, paper, whether\n"
    "it honours the key-padding mask, options with defaults and ranges), every task, and the\n"
    "keys of the experiment, model and train sections of a config.\n";

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

int cmd_list(int argc, char **argv) {
    int md = 0, what = 7; /* 1 mechanisms, 2 tasks, 4 config keys */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return XB_EXIT_OK;
        } else if (!strcmp(argv[i], "--markdown"))
            md = 1;
        else if (!strcmp(argv[i], "mechanisms") || !strcmp(argv[i], "mixers"))
            what = 1;
        else if (!strcmp(argv[i], "tasks"))
            what = 2;
        else if (!strcmp(argv[i], "config"))
            what = 4;
        else
            return cli_usage_error("list",
                                   "unexpected argument '%s' (valid: mechanisms, tasks, config, "
                                   "--markdown, --help)",
                                   argv[i]);
    }
    if (what & 1) {
        if (!md) printf("Mechanisms (%d):\n", mixer_count());
        list_mixers(md);
    }
    if (what & 2) {
        if (!md) printf("%sTasks (%d):\n", what & 1 ? "\n" : "", task_count());
        list_tasks(md);
    }
    if (what & 4) {
        if (!md) printf("%sConfig keys:\n", what & 3 ? "\n" : "");
        list_config(md);
    }
    return XB_EXIT_OK;
}
