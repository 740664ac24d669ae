/* Runs a fuzz harness over files, without libFuzzer: the regression test of `meson test` and the
 * way to replay one input under a debugger.
 *
 *     fuzz-replay-NAME [--dirs-may-be-missing] INPUT...
 *
 * An INPUT is a file, or a directory whose files (not its subdirectories, not dot-files) are run
 * in name order; with --dirs-may-be-missing a directory that does not exist counts as empty (a
 * harness without regressions yet). Every INPUT must pass: a finding aborts the process
 * (fuzz_fail, a sanitizer, an assertion), after the input's name was printed. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Weak, for the harnesses without one. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

/* The whole file, malloc'ed to exactly its size (so that a read past the end is a sanitizer's
 * finding); NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, got;
    unsigned char *b = malloc(cap);
    *n = 0;
    while (b && (got = fread(b + *n, 1, cap - *n, f)) > 0)
        if ((*n += got) == cap) b = realloc(b, cap *= 2);
    fclose(f);
    unsigned char *exact = b ? malloc(*n ? *n : 1) : NULL;
    if (!exact) abort();
    memcpy(exact, b, *n);
    free(b);
    return exact;
}

static int run_file(const char *path) {
    size_t n;
    unsigned char *b = slurp(path, &n);
    if (!b) return -1;
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(b, n);
    free(b);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs path (a file, or a directory's files in name order); returns 0, or -1 if any failed. */
static int run_path(const char *path, int may_miss, int *files) {
    struct stat st;
    if (stat(path, &st)) {
        if (may_miss && errno == ENOENT) {
            fprintf(stderr, "replay: %s: no such directory, nothing to replay\n", path);
            return 0;
        }
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        ++*files;
        return run_file(path);
    }
    DIR *d = opendir(path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (e->d_name[0] == '.' || stat(p, &st) || !S_ISREG(st.st_mode)) continue;
        if (n == cap) names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
        names[n++] = strdup(p);
    }
    if (d) closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        ++*files;
        rc |= run_file(names[k]) != 0 ? -1 : 0;
        free(names[k]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    int files = 0, may_miss = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dirs-may-be-missing"))
            may_miss = 1;
        else
            rc |= run_path(argv[i], may_miss, &files);
    }
    fprintf(stderr, "replay: %d inputs, %s\n", files, rc ? "SOME FAILED (above)" : "all passed");
    return rc ? 1 : 0;
}
