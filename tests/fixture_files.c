/* Fixture files for the data tests (see fixture_files.h). */
#include "fixture_files.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

void fixture_put(const char *dir, const char *sub, const char *name, const char *body) {
    char p[512], cmd[600];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(body, f);
    ck_assert_int_eq(fclose(f), 0);
}

void fixture_rmdir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

OptValues fixture_task_opts(const char *task, const char *const *kv, int n) {
    const int ti = task_find(task);
    ck_assert_int_ge(ti, 0);
    const TaskSpec *t = task_get(ti);
    OptValues v;
    opt_defaults(&v, t->opts, t->n_opts);
    for (int i = 0; i < n; i += 2) {
        const int k = opt_index(t->opts, t->n_opts, kv[i]);
        ck_assert_msg(k >= 0, "%s has no option %s", task, kv[i]);
        const OptSpec *s = &t->opts[k];
        if (s->type == OPT_STRING) {
            snprintf(v.str[k], sizeof v.str[k], "%s", kv[i + 1]);
        } else if (s->type == OPT_ENUM) {
            int c = 0;
            while (s->choices[c] && strcmp(s->choices[c], kv[i + 1])) c++;
            ck_assert_msg(s->choices[c] != NULL, "%s is not a choice of %s", kv[i + 1], kv[i]);
            v.num[k] = c;
        } else {
            v.num[k] = atof(kv[i + 1]);
        }
    }
    return v;
}

int fixture_identity_has(const Dataset *d, const char *part) {
    char *text = report_dataset_identity_text(&d->id);
    const int has = strstr(text, part) != NULL;
    free(text);
    return has;
}

void fixture_identity_eq(const Dataset *a, const Dataset *b) {
    char *ta = report_dataset_identity_text(&a->id), *tb = report_dataset_identity_text(&b->id);
    ck_assert_str_eq(ta, tb);
    free(ta), free(tb);
}
