/* Directories of *.txt documents, and the SpamAssassin corpus's preparation (see corpus.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/options.h"
#include "core/xassert.h"
#include "tasks/corpus.h"

void corpus_free(Docs *ds) {
    for (int i = 0; i < ds->n; i++) free(ds->d[i].name), free(ds->d[i].bytes);
    free(ds->d);
    memset(ds, 0, sizeof *ds);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const Doc *)a)->name, ((const Doc *)b)->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.txt files of dir, sorted; NULL with err set when dir cannot be read. */
static char **list_txt(const char *dir, int *n, const char *hint, XbError *err) {
    DIR *d = opendir(dir);
    if (!d) {
        xb_error_set(err, dir, 0, 0, "task.data_dir", "cannot read the directory: %s%s",
                     strerror(errno), hint);
        return NULL;
    }
    int cap = 256;
    char **names = malloc((size_t)cap * sizeof *names);
    XB_ASSERT(names);
    *n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt")) continue;
        if (*n == cap) {
            cap *= 2;
            names = realloc(names, (size_t)cap * sizeof *names);
            XB_ASSERT(names);
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

int corpus_read_dir(Docs *ds, const char *dir, const char *sub, int label, int body_only,
                    const char *hint, XbError *err) {
    char path[XB_OPT_STRLEN + 600];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    int n;
    char **names = list_txt(path, &n, hint, err);
    if (!names) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char file[sizeof path + 300];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        size_t len;
        unsigned char *b =
            (unsigned char *)fileio_read_all(file, XB_FILE_DOCUMENT, "task.data_dir", &len, err);
        if (!b) {
            rc = -1;
            break;
        }
        size_t start = 0;
        if (body_only) {
            start = len;
            for (size_t k = 0; k + 1 < len; k++) {
                if (b[k] == '\n' && b[k + 1] == '\n') {
                    start = k + 2;
                    break;
                }
                if (k + 3 < len && !memcmp(b + k, "\r\n\r\n", 4)) {
                    start = k + 4;
                    break;
                }
            }
        }
        if (ds->n == ds->cap) {
            ds->cap = ds->cap ? 2 * ds->cap : 1024;
            ds->d = realloc(ds->d, (size_t)ds->cap * sizeof *ds->d);
            XB_ASSERT(ds->d);
        }
        char rel[sizeof path + 300];
        snprintf(rel, sizeof rel, "%s/%s", sub, names[i]);
        Doc *d = &ds->d[ds->n++];
        d->name = strdup(rel);
        d->n = len - start;
        d->bytes = malloc(d->n + 1);
        XB_ASSERT(d->name && d->bytes);
        memcpy(d->bytes, b + start, d->n);
        d->label = label;
        ds->hash = xb_fnv1a64(ds->hash, rel, strlen(rel));
        ds->hash = xb_fnv1a64(ds->hash, b, len);
        free(b);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int corpus_spam_assassin(Docs *ds, int **which, int *dropped, const char *dir, XbError *err) {
    static const char *const groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1",
                                         "spam-2"};
    *which = NULL, *dropped = 0;
    for (int g = 0; g < 5; g++)
        if (corpus_read_dir(ds, dir, groups[g], strncmp(groups[g], "spam", 4) == 0, 1,
                            CORPUS_SPAM_HINT, err))
            return -1;
    qsort(ds->d, (size_t)ds->n, sizeof *ds->d, by_name);
    /* empty and duplicate bodies out (the first by name stays), then 8:1:1 within each class */
    uint64_t *seen = malloc(((size_t)ds->n + 1) * sizeof *seen);
    int *w = malloc(((size_t)ds->n + 1) * sizeof *w);
    XB_ASSERT(seen && w);
    int nseen = 0, pos[2] = {0, 0};
    for (int i = 0; i < ds->n; i++) {
        const uint64_t h = xb_fnv1a64(XB_FNV_OFFSET, ds->d[i].bytes, ds->d[i].n);
        int dup = ds->d[i].n == 0;
        for (int k = 0; k < nseen && !dup; k++) dup = seen[k] == h;
        if (dup) {
            w[i] = -1, (*dropped)++;
            continue;
        }
        seen[nseen++] = h;
        const int p = pos[ds->d[i].label]++ % 10;
        w[i] = p < 8 ? 0 : p == 8 ? 1 : 2;
    }
    free(seen);
    *which = w;
    return 0;
}
