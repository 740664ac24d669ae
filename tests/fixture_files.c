/* Fixture files for the data tests (see fixture_files.h). */
#include "fixture_files.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

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
