/* Runs a fuzz harness over files, without libFuzzer: the regression test of `meson test` (over
 * the seed corpus and the reproducers of fixed findings) and the way to replay one input under
 * a debugger. Arguments are files, or directories whose files (not their subdirectories) are
 * run in name order; after --dirs-may-be-missing, a directory that does not exist is empty (the
 * regressions of a harness that has none yet). A finding aborts (fuzz_fail, a sanitizer or an
 * assertion); the file's name is printed first, so the log says which input it was. */
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

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *b = malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) b = realloc(b, cap *= 2);
    fclose(f);
    if (!b) abort();
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    /* a copy of exactly n bytes, so that a read past the end is a sanitizer's finding */
    unsigned char *exact = malloc(n ? n : 1);
    memcpy(exact, b, n);
    free(b);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    int files = 0, bad = 0, may_miss = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (!strcmp(argv[i], "--dirs-may-be-missing")) {
            may_miss = 1;
            continue;
        }
        if (stat(argv[i], &st) && may_miss && errno == ENOENT) {
            fprintf(stderr, "replay: %s: no such directory, nothing to replay\n", argv[i]);
            continue;
        }
        if (stat(argv[i], &st)) {
            fprintf(stderr, "replay: cannot read %s: %s\n", argv[i], strerror(errno));
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(argv[i]) != 0, files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        size_t n = 0, cap = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            if (e->d_name[0] == '.' || stat(p, &st) || !S_ISREG(st.st_mode)) continue;
            if (n == cap) names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
            names[n++] = strdup(p);
        }
        if (d) closedir(d);
        qsort(names, n, sizeof *names, by_name);
        for (size_t k = 0; k < n; k++) {
            bad |= run_file(names[k]) != 0, files++;
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "replay: %d inputs, %s\n", files, bad ? "some unreadable" : "all passed");
    return bad;
}
