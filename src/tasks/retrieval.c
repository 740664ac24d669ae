/* retrieval: document matching (LRA's "Retrieval", arXiv 2011.04006 §3.2): an example is a pair
 * of byte-level documents (token = byte + 1, vocabulary 257) and the label says whether they are
 * related (1) or not (0); the model encodes both with one shared encoder (the dual encoder of
 * model/encoder.h). Sources:
 *   spam-assassin  the open default, built from the SpamAssassin corpus that the text task reads
 *                  (tasks/corpus.h: bodies only, duplicates out, documents split 8:1:1 per class
 *                  by name, so no document is in two splits). Every document d of a split is cut
 *                  at a fraction f_d ~ U[0.3, 0.7] of its length (drawn from the seed) into a head
 *                  A_d and a tail B_d, and gives two examples: (A_d, B_d), label 1, and
 *                  (A_d, B_e), label 0, where e is d's neighbour by length among the documents of
 *                  the same class and split, cut at the same fraction. So the labels are exactly
 *                  balanced, every head appears once with each label (the head alone says
 *                  nothing), the class (spam or ham) says nothing, and the lengths of a negative's
 *                  spans are those a positive would have: what is left is whether the two spans
 *                  come from one message. Documents under 2·min_half bytes are left out.
 *   aan            the official LRA input: new_aan_pairs.{train,eval,test}.tsv, rows of five
 *                  tab-separated fields label, id1, id2, text1, text2 (LRA reads them with
 *                  make_csv_dataset, no quoting). As LRA does, each text's bytes are taken as
 *                  they stand in the file.
 * Either source cuts every document to max_bytes (LRA's max_length, 4000), which the model's
 * max_len truncates further. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "tasks/corpus.h"
#include "tasks/task.h"

static const char *const SOURCES[] = {"spam-assassin", "aan", NULL};
enum { SRC_SPAM, SRC_AAN };

static const OptSpec retrieval_opts[] = {
    {.name = "source",
     .type = OPT_ENUM,
     .def = SRC_SPAM,
     .choices = SOURCES,
     .help = "spam-assassin (pairs of spans of npm's SpamAssassin messages) or aan (LRA's "
             "new_aan_pairs TSV files)"},
    {.name = "data_dir",
     .type = OPT_STRING,
     .def_str = "",
     .help = "the corpus directory; default " CORPUS_SPAM_DIR " for spam-assassin"},
    {.name = "max_bytes",
     .type = OPT_INT,
     .def = 4000,
     .min = 1,
     .max = 1000000,
     .help = "bytes kept of each document (LRA: 4000)"},
    {.name = "min_half",
     .type = OPT_INT,
     .def = 32,
     .min = 1,
     .max = 100000,
     .help = "spam-assassin: documents shorter than twice this many bytes are left out"},
};
#define NOPTS ((int)XB_ARRAY_LEN(retrieval_opts))

/* Rows accepted from one file (LRA's training file has 147086; counts are ints). */
#define AAN_MAX_ROWS 100000000

static const char AAN_HINT[] = " (set task.data_dir to the directory of LRA's "
                               "new_aan_pairs.{train,eval,test}.tsv)";

/* ---- building a pair split ---- */

typedef struct PairBuf {
    Split *s;
    int cap;        /* examples */
    size_t tok_cap; /* tokens */
} PairBuf;

static void pair_init(PairBuf *p, Split *s) {
    memset(s, 0, sizeof *s);
    s->docs = 2;
    p->s = s, p->cap = 256, p->tok_cap = 1 << 16;
    s->tokens = malloc(p->tok_cap * sizeof *s->tokens);
    s->offsets = malloc((2 * (size_t)p->cap + 1) * sizeof *s->offsets);
    s->labels = malloc((size_t)p->cap * sizeof *s->labels);
    XB_ASSERT(s->tokens && s->offsets && s->labels);
    s->offsets[0] = 0;
}

/* Appends one example: documents a (na bytes) and b (nb bytes), each cut to max_bytes. */
static void pair_add(PairBuf *p, const unsigned char *a, size_t na, const unsigned char *b,
                     size_t nb, int label, size_t max_bytes) {
    Split *s = p->s;
    if (s->n == p->cap) {
        p->cap *= 2;
        s->offsets = realloc(s->offsets, (2 * (size_t)p->cap + 1) * sizeof *s->offsets);
        s->labels = realloc(s->labels, (size_t)p->cap * sizeof *s->labels);
        XB_ASSERT(s->offsets && s->labels);
    }
    const unsigned char *doc[2] = {a, b};
    size_t len[2] = {na < max_bytes ? na : max_bytes, nb < max_bytes ? nb : max_bytes};
    for (int k = 0; k < 2; k++) {
        const size_t j = 2 * (size_t)s->n + (size_t)k; /* the document appended */
        const size_t at = (size_t)s->offsets[j];
        while (at + len[k] > p->tok_cap) {
            p->tok_cap *= 2;
            s->tokens = realloc(s->tokens, p->tok_cap * sizeof *s->tokens);
            XB_ASSERT(s->tokens);
        }
        for (size_t t = 0; t < len[k]; t++) s->tokens[at + t] = 1 + doc[k][t];
        s->offsets[j + 1] = (int64_t)(at + len[k]);
    }
    s->labels[s->n++] = label;
}

/* ---- the open default: spans of SpamAssassin messages ---- */

typedef struct Cut {
    int doc, label; /* index into the corpus, its class */
    size_t len;     /* its bytes */
} Cut;

static int by_class_length(const void *x, const void *y) {
    const Cut *a = x, *b = y;
    if (a->label != b->label) return a->label - b->label;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->doc - b->doc;
}

/* One example: the head of document a, the tail of document b, both cut at fraction f. */
typedef struct Ex {
    int a, b, label;
    double f;
} Ex;

/* The examples of split k (which[i] == k) of the corpus, two per document in a fixed shuffled
 * order; documents with no same-class neighbour in the split are left out (*dropped). */
static void spam_pairs(Split *out, const Docs *ds, const int *which, const double *f, int k,
                       size_t min_half, size_t max_bytes, Rng *r, int *dropped) {
    int n = 0;
    Cut *c = malloc(((size_t)ds->n + 1) * sizeof *c);
    Ex *ex = malloc((2 * (size_t)ds->n + 1) * sizeof *ex);
    XB_ASSERT(c && ex);
    for (int i = 0; i < ds->n; i++)
        if (which[i] == k && ds->d[i].n >= 2 * min_half)
            c[n++] = (Cut){.doc = i, .label = ds->d[i].label, .len = ds->d[i].n};
    qsort(c, (size_t)n, sizeof *c, by_class_length);
    int m = 0;
    for (int j = 0; j < n; j++) {
        const int next = j + 1 < n && c[j + 1].label == c[j].label;
        const int prev = j > 0 && c[j - 1].label == c[j].label;
        if (!next && !prev) {
            (*dropped)++;
            continue;
        }
        const int d = c[j].doc, e = next ? c[j + 1].doc : c[j - 1].doc;
        ex[m++] = (Ex){.a = d, .b = d, .label = 1, .f = f[d]};
        ex[m++] = (Ex){.a = d, .b = e, .label = 0, .f = f[d]};
    }
    free(c);
    /* the sorted order would pair each example with its neighbour: shuffle from the seed */
    for (int i = m - 1; i > 0; i--) {
        const int j = (int)rng_below(r, (uint32_t)i + 1);
        const Ex t = ex[i];
        ex[i] = ex[j], ex[j] = t;
    }
    PairBuf p;
    pair_init(&p, out);
    for (int i = 0; i < m; i++) {
        const Doc *a = &ds->d[ex[i].a], *b = &ds->d[ex[i].b];
        const size_t ca = (size_t)(ex[i].f * (double)a->n), cb = (size_t)(ex[i].f * (double)b->n);
        pair_add(&p, a->bytes, ca, b->bytes + cb, b->n - cb, ex[i].label, max_bytes);
    }
    free(ex);
}

static int load_spam(Dataset *out, const char *dir, size_t max_bytes, size_t min_half,
                     uint64_t seed, uint64_t *hash, int *dropped, XbError *err) {
    Docs ds = {.hash = XB_FNV_OFFSET};
    int *which = NULL;
    if (corpus_spam_assassin(&ds, &which, dropped, dir, err)) {
        corpus_free(&ds);
        return -1;
    }
    Rng r;
    rng_seed(&r, seed, RNG_STREAM_DATA);
    double *f = malloc(((size_t)ds.n + 1) * sizeof *f);
    XB_ASSERT(f);
    for (int i = 0; i < ds.n; i++) f[i] = 0.3 + 0.4 * rng_uniform_double(&r);
    for (int i = 0; i < ds.n; i++)
        if (which[i] >= 0 && ds.d[i].n < 2 * min_half) (*dropped)++;
    Split *splits[3] = {&out->train, &out->val, &out->test};
    for (int k = 0; k < 3; k++)
        spam_pairs(splits[k], &ds, which, f, k, min_half, max_bytes, &r, dropped);
    *hash = ds.hash;
    free(f), free(which);
    corpus_free(&ds);
    return 0;
}

/* ---- LRA's AAN files ---- */

static const char *const AAN_FILES[3] = {"new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv",
                                         "new_aan_pairs.test.tsv"};

/* Reads one TSV file into s; *hash is folded over its bytes. */
static int read_aan(Split *s, const char *path, size_t max_bytes, uint64_t *hash, XbError *err) {
    FileLines in;
    if (fileio_lines_open(&in, path, XB_FILE_DATA, "task.data_dir", err)) {
        const size_t k = strlen(err->msg);
        snprintf(err->msg + k, sizeof err->msg - k, "%s", AAN_HINT);
        return -1;
    }
    PairBuf p;
    pair_init(&p, s);
    int rc = 0, got;
    while (rc == 0 && (got = fileio_lines_next(&in, err)) != 0) {
        if (got < 0) {
            rc = -1;
            break;
        }
        char *line = in.line;
        size_t len = in.len;
        const int lineno = (int)in.lineno;
        *hash = xb_fnv1a64(*hash, line, len);
        if (len > 0 && line[len - 1] == '\n') line[--len] = 0;
        if (len > 0 && line[len - 1] == '\r') line[--len] = 0;
        if (len == 0) continue;
        const char *nul = memchr(line, '\0', len);
        if (nul) { /* the text would end there, silently */
            rc = xb_error_set(err, path, lineno, (int)(nul - line) + 1, "task.data_dir",
                              "a NUL byte (an AAN row is text: label, id1, id2, text1, text2)");
            break;
        }
        if (s->n == AAN_MAX_ROWS) {
            rc = xb_error_set(err, path, lineno, 1, "task.data_dir",
                              "more than %d rows in one file", AAN_MAX_ROWS);
            break;
        }
        char *field[5];
        int nf = 0;
        for (char *q = line;;) {
            field[nf++] = q;
            char *tab = nf < 5 ? strchr(q, '\t') : NULL;
            if (!tab) break;
            *tab = 0, q = tab + 1;
        }
        if (nf != 5 || strchr(field[4], '\t')) {
            int found = nf;
            if (nf == 5)
                for (const char *q = field[4]; (q = strchr(q, '\t')); q++) found++;
            rc = xb_error_set(err, path, lineno, 0, "task.data_dir",
                              "a row has %d tab-separated fields (valid: 5: label, id1, id2, "
                              "text1, text2)",
                              found);
            break;
        }
        char *end;
        const double y = strtod(field[0], &end);
        if (end == field[0] || *end || (y != 0.0 && y != 1.0)) {
            char shown[256];
            dataset_show(shown, sizeof shown, field[0], XB_MIN(strlen(field[0]), (size_t)20));
            rc = xb_error_set(err, path, lineno, 1, "task.data_dir",
                              "label '%s' is not a class (valid: 0 or 1)", shown);
            break;
        }
        pair_add(&p, (const unsigned char *)field[3], strlen(field[3]),
                 (const unsigned char *)field[4], strlen(field[4]), (int)y, max_bytes);
    }
    fileio_lines_close(&in);
    if (!rc && s->n == 0)
        rc = xb_error_set(err, path, 0, 0, "task.data_dir", "holds no rows%s", AAN_HINT);
    return rc;
}

static int retrieval_load(Dataset *out, const OptValues *v, uint64_t seed, const char *source,
                          XbError *err) {
    memset(out, 0, sizeof *out);
    out->pairs = 1;
    out->vocab_size = 257;
    out->n_classes = 2;
    const int src = opt_enum(v, retrieval_opts, NOPTS, "source");
    const char *dir = opt_str(v, retrieval_opts, NOPTS, "data_dir");
    const size_t max_bytes = (size_t)opt_int(v, retrieval_opts, NOPTS, "max_bytes");
    const size_t min_half = (size_t)opt_int(v, retrieval_opts, NOPTS, "min_half");
    if (!dir[0] && src == SRC_AAN)
        return xb_error_set(err, source, 0, 0, "task.data_dir",
                            "is required when task.source is aan (the directory of "
                            "new_aan_pairs.{train,eval,test}.tsv)");
    if (!dir[0]) dir = CORPUS_SPAM_DIR;
    uint64_t h = XB_FNV_OFFSET;
    int dropped = 0, rc = 0;
    if (src == SRC_SPAM) {
        rc = load_spam(out, dir, max_bytes, min_half, seed, &h, &dropped, err);
    } else {
        Split *splits[3] = {&out->train, &out->val, &out->test};
        for (int k = 0; k < 3 && !rc; k++) {
            char path[XB_OPT_STRLEN + 64];
            snprintf(path, sizeof path, "%s/%s", dir, AAN_FILES[k]);
            rc = read_aan(splits[k], path, max_bytes, &h, err);
        }
    }
    if (rc) {
        dataset_free(out);
        return -1;
    }
    if (!out->train.n || !out->val.n || !out->test.n) {
        dataset_free(out);
        return xb_error_set(err, dir, 0, 0, "task.data_dir",
                            "gives an empty split (train %d, validation %d, test %d pairs)%s",
                            out->train.n, out->val.n, out->test.n,
                            src == SRC_SPAM ? CORPUS_SPAM_HINT : AAN_HINT);
    }
    DatasetId *id = &out->id;
    dataset_id_str(id, "task", "retrieval");
    dataset_id_str(id, "source", src == SRC_SPAM ? "spam-assassin" : "aan");
    dataset_id_str(id, "data_dir", dir);
    dataset_id_hash(id, "files", h);
    if (src == SRC_SPAM) dataset_id_uint(id, "seed", seed);
    dataset_id_int(id, "max_bytes", (int64_t)max_bytes);
    if (src == SRC_SPAM) {
        dataset_id_int(id, "min_half", (int64_t)min_half);
        dataset_id_int(id, "dropped", dropped);
    }
    dataset_checksum(out);
    return 0;
}

const TaskSpec task_retrieval = {
    .name = "retrieval",
    .description = "Retrieval (LRA): do two byte-level documents match? 2 classes, a dual "
                   "encoder; spans of SpamAssassin messages or LRA's AAN pairs",
    .opts = retrieval_opts,
    .n_opts = NOPTS,
    .load = retrieval_load,
};
