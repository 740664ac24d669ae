/* What the fuzz harnesses share (see fuzz.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/report.h"

static char g_dir[4096];
static pid_t g_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_dir(void) {
    if (g_dir[0] && getpid() == g_owner) nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void) {
    if (g_dir[0]) return g_dir;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/xb-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "fuzz: cannot make a directory %s: %s\n", g_dir, strerror(errno));
        abort();
    }
    g_owner = getpid();
    atexit(remove_dir);
    return g_dir;
}

void fuzz_path(char *out, size_t n, const char *rel) { snprintf(out, n, "%s/%s", fuzz_dir(), rel); }

void fuzz_put(const char *rel, const void *data, size_t n) {
    char path[4200];
    fuzz_path(path, sizeof path, rel);
    for (char *s = path + strlen(fuzz_dir()) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(path, 0700) && errno != EEXIST) {
            fprintf(stderr, "fuzz: cannot make %s: %s\n", path, strerror(errno));
            abort();
        }
        *s = '/';
    }
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const uint8_t *p = data;
    while (fd >= 0 && n > 0) {
        const ssize_t w = write(fd, p, n);
        if (w <= 0) break;
        p += w, n -= (size_t)w;
    }
    if (fd < 0 || n > 0 || close(fd)) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

size_t fuzz_split(const uint8_t *data, size_t size, FuzzPart *parts, size_t max) {
    const size_t ls = sizeof FUZZ_SEP - 1;
    size_t k = 0, a = 0;
    for (size_t i = 0; k + 1 < max && i + ls <= size;) {
        if (memcmp(data + i, FUZZ_SEP, ls) == 0) {
            parts[k++] = (FuzzPart){data + a, i - a};
            a = i += ls;
        } else {
            i++;
        }
    }
    parts[k++] = (FuzzPart){data + a, size - a};
    return k;
}

/* 1 when $XB_FUZZ_IGNORE lets property id (or FUZZ_NAME:id) through. */
static int fuzz_ignored(const char *id) {
    const char *ign = getenv("XB_FUZZ_IGNORE");
    char scoped[256];
    snprintf(scoped, sizeof scoped, "%s:%s", FUZZ_NAME, id);
    for (const char *p = ign; p && *p;) {
        const char *c = strchr(p, ',');
        const size_t m = c ? (size_t)(c - p) : strlen(p);
        if ((m == strlen(id) && !memcmp(p, id, m)) ||
            (m == strlen(scoped) && !memcmp(p, scoped, m)))
            return 1;
        p = c ? c + 1 : p + m;
    }
    return 0;
}

int fuzz_fail(const char *id, const char *fmt, ...) {
    if (fuzz_ignored(id)) return 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: %s: ", id);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

OptValues fuzz_task_opts(const TaskSpec *t, const char *const *kv, int n) {
    OptValues v;
    opt_defaults(&v, t->opts, t->n_opts);
    for (int i = 0; i + 1 < n; i += 2) {
        const int k = opt_index(t->opts, t->n_opts, kv[i]);
        if (k < 0) fuzz_fail("harness", "task %s has no option %s", t->name, kv[i]);
        const OptSpec *s = &t->opts[k];
        if (s->type == OPT_STRING) {
            snprintf(v.str[k], sizeof v.str[k], "%s", kv[i + 1]);
        } else if (s->type == OPT_ENUM) {
            int c = 0;
            while (s->choices[c] && strcmp(s->choices[c], kv[i + 1])) c++;
            if (!s->choices[c]) fuzz_fail("harness", "%s is not a choice of %s", kv[i + 1], kv[i]);
            v.num[k] = c;
        } else {
            v.num[k] = atof(kv[i + 1]);
        }
        v.set[k] = 1;
    }
    return v;
}

static void check_split(const Dataset *d, const Split *s, const char *name) {
    const int docs = d->pairs ? 2 : 1;
    if (s->n <= 0) {
        fuzz_fail("dataset-empty-split", "the %s split has %d examples", name, s->n);
        return;
    }
    if (s->docs < 0 || s->docs > 2 || split_docs(s) != docs) {
        fuzz_fail("dataset-docs", "the %s split has docs %d in a %s dataset", name, s->docs,
                  d->pairs ? "pair" : "single-document");
        return;
    }
    if (!s->offsets || s->offsets[0] != 0) {
        fuzz_fail("dataset-offsets", "the %s split's offsets do not start at 0", name);
        return;
    }
    const int64_t nd = (int64_t)s->n * docs;
    for (int64_t j = 0; j < nd; j++)
        if (s->offsets[j + 1] < s->offsets[j]) {
            fuzz_fail("dataset-offsets", "the %s split's offsets fall at document %lld", name,
                      (long long)j);
            return;
        }
    const int64_t ntok = s->offsets[nd];
    if (ntok > 0 && !s->tokens) {
        fuzz_fail("dataset-offsets", "the %s split has %lld tokens and no token array", name,
                  (long long)ntok);
        return;
    }
    for (int64_t t = 0; t < ntok; t++)
        if (s->tokens[t] < 0 || s->tokens[t] >= d->vocab_size) {
            fuzz_fail("dataset-tokens", "the %s split's token %lld is %d, vocab_size is %d", name,
                      (long long)t, s->tokens[t], d->vocab_size);
            return;
        }
    if (d->sequence) {
        if (s->labels || !s->targets) {
            fuzz_fail("dataset-kind", "the %s split of a sequence task has %s", name,
                      s->labels ? "labels" : "no targets");
            return;
        }
        for (int64_t t = 0; t < ntok; t++)
            if (s->targets[t] < XB_NO_TARGET || s->targets[t] >= d->n_classes) {
                fuzz_fail("dataset-labels", "the %s split's target %lld is %d, n_classes is %d",
                          name, (long long)t, s->targets[t], d->n_classes);
                return;
            }
    } else {
        if (!s->labels || s->targets) {
            fuzz_fail("dataset-kind", "the %s split of a classification task has %s", name,
                      s->targets ? "targets" : "no labels");
            return;
        }
        for (int i = 0; i < s->n; i++)
            if (s->labels[i] < 0 || s->labels[i] >= d->n_classes) {
                fuzz_fail("dataset-labels", "the %s split's label %d is %d, n_classes is %d", name,
                          i, s->labels[i], d->n_classes);
                return;
            }
    }
}

/* 1 when an object in j (j itself, or one of its values) has a key twice. */
static int has_key_twice(const cJSON *j) {
    for (const cJSON *c = j->child; c; c = c->next) {
        if (has_key_twice(c)) return 1;
        for (const cJSON *e = c->next; cJSON_IsObject(j) && e; e = e->next)
            if (!strcmp(c->string, e->string)) return 1;
    }
    return 0;
}

void fuzz_check_dataset(const Dataset *d) {
    if (d->pairs < 0 || d->pairs > 1 || d->sequence < 0 || d->sequence > 1 || d->vocab_size < 2 ||
        d->n_classes < 2) {
        fuzz_fail("dataset-header", "pairs %d, sequence %d, vocab_size %d, n_classes %d", d->pairs,
                  d->sequence, d->vocab_size, d->n_classes);
        return;
    }
    check_split(d, &d->train, "train");
    check_split(d, &d->val, "validation");
    check_split(d, &d->test, "test");
    Dataset copy = *d; /* shallow: dataset_checksum writes only the checksum field */
    dataset_checksum(&copy);
    if (memchr(d->checksum, '\0', sizeof d->checksum) == NULL ||
        strcmp(copy.checksum, d->checksum) != 0)
        fuzz_fail("dataset-checksum", "the checksum %.16s is not the data's, %s", d->checksum,
                  copy.checksum);
    char why[200];
    if (dataset_id_check(&d->id, why, sizeof why)) { /* report_dataset_identity asserts it */
        fuzz_fail("dataset-identity", "the identity %s", why);
        return;
    }
    char *text = report_dataset_identity_text(&d->id);
    size_t pos;
    const char *msg;
    cJSON *j = report_json_check(text, strlen(text), &pos, &msg) ? NULL : cJSON_Parse(text);
    if (!cJSON_IsObject(j) || !j->child || strcmp(j->child->string, "task") ||
        !cJSON_IsString(j->child) || has_key_twice(j))
        fuzz_fail("dataset-identity",
                  "the identity is not a JSON object with the task first and "
                  "no key twice: %.200s",
                  text);
    cJSON_Delete(j);
    free(text);
}

void fuzz_load_task(const char *name, const char *const *kv, int n) {
    const TaskSpec *t = task_get(task_find(name));
    const OptValues v = fuzz_task_opts(t, kv, n);
    Dataset d;
    XbError err;
    xb_error_clear(&err);
    if (t->load(&d, &v, 1, "fuzz.yaml", &err)) {
        if (err.code != XB_EXIT_USAGE || !err.msg[0])
            fuzz_fail("load-error", "a refusal with code %d and message \"%s\"", err.code, err.msg);
        return;
    }
    fuzz_check_dataset(&d);
    dataset_free(&d);
}
