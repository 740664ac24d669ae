/* Tasks: datasets of token sequences with a class label (or, for sequence tasks, a class at some
 * positions), split into train/validation/test, and the registry of all tasks. */
#ifndef XB_TASK_H
#define XB_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/options.h"
#include "tasks/identity.h"

/* Token id 0 is padding in every task's vocabulary. */
#define XB_PAD_ID 0
/* A position of a sequence task that carries no target: no loss, not counted in accuracy. */
#define XB_NO_TARGET (-1)

typedef struct Split {
    int n;            /* examples */
    int docs;         /* documents per example: 1, or 2 for a pair (0 reads as 1) */
    int32_t *tokens;  /* all documents' tokens, concatenated */
    int64_t *offsets; /* (n·docs + 1): document j is tokens[offsets[j] .. offsets[j+1]); example
                       * i is documents i·docs .. i·docs + docs − 1 */
    int32_t *labels;  /* (n), or NULL for a sequence task */
    int32_t *targets; /* sequence tasks: (offsets[n·docs]) parallel to tokens, the class in
                       * [0, n_classes) each position must predict or XB_NO_TARGET; else NULL */
} Split;

typedef struct Dataset {
    int pairs;      /* 1: every example is a pair of documents (Split.docs = 2) */
    int vocab_size; /* token ids are in [0, vocab_size); 0 is padding */
    int n_classes;
    int sequence; /* 1: per-position targets (Split.targets), for model.pooling: none */
    Split train, val, test;
    DatasetId id;      /* what made it: generator + seed + options, or files + their hashes */
    char checksum[17]; /* FNV-1a 64 (hex) over every split's tokens and labels */
} Dataset;

typedef struct TaskSpec {
    const char *name;
    const char *description;
    const OptSpec *opts;
    int n_opts;
    int sequence; /* 1: a class at some positions (needs model.pooling: none); 0: one per example */
    /* Builds the dataset (generated from seed, or loaded from files named in opts). Returns 0 or
     * -1 with err naming the file/position. `source` is the config file, for messages. */
    int (*load)(Dataset *out, const OptValues *opts, uint64_t seed, const char *source,
                XbError *err);
    /* 1 when load generates the data for these options (seed and options say it all, so the
     * data cache may keep it); NULL: the task always reads files. */
    int (*generated)(const OptValues *opts);
} TaskSpec;

/* The registry. */
int task_count(void);
const TaskSpec *task_get(int i);
/* Index of the task called name, or -1. */
int task_find(const char *name);

/* TaskSpec.generated of a task that always generates its data. */
int task_always_generated(const OptValues *opts);

/* Frees every buffer of d. */
void dataset_free(Dataset *d);
/* Documents per example of s (1 or 2). */
static inline int split_docs(const Split *s) { return s->docs > 1 ? s->docs : 1; }

/* Computes d->checksum from the splits. */
void dataset_checksum(Dataset *d);

/* The longest document any task may hold, in tokens (a document of the text task is at most a
 * 64 MiB file; the generated tasks' options stop at 2^24 tokens). */
#define DATASET_MAX_DOC ((int64_t)1 << 27)

/* Checks that d is what a model and a report can take: a vocabulary of at least 2 ids, at least 2
 * classes, an identity that dataset_id_check accepts, every split with at least 1 example, its
 * documents per example matching d->pairs and its labels or targets matching d->sequence, offsets
 * from 0 that never decrease, documents of at most DATASET_MAX_DOC tokens, token ids in [0,
 * vocab_size), labels in [0, n_classes), targets in [0, n_classes) or XB_NO_TARGET. Returns 0, or
 * -1 with err->msg saying where the first fault is ("split train, example 17, token 3: id 300 is
 * not below the vocabulary size 257"); err->file is `where`. */
int dataset_validate(const Dataset *d, const char *where, XbError *err);

/* Fills one padded batch. idx[0..B) selects examples of s; each document gets a row (two rows
 * per example of a pair split, 2b and 2b + 1): if cls_id >= 0 the token cls_id first, then the
 * document's tokens truncated to fit L, then XB_PAD_ID. mask[r*L+t] is 1 for real tokens
 * (including CLS), 0 for padding. tokens (B·docs, L), mask (B·docs, L), labels (B); for a split
 * with targets, labels is (B·docs, L) instead: each token's target where the token landed (CLS
 * and padding get XB_NO_TARGET). */
void dataset_batch(const Split *s, const int *idx, int B, int L, int cls_id, int32_t *tokens,
                   unsigned char *mask, int32_t *labels);

/* s[0..len) for a message: control characters written as \n, \t, \r or \xNN (so the message
 * stays one line), cut after 60 bytes with "..."; into out (n bytes). */
void dataset_show(char *out, size_t n, const char *s, size_t len);

/* Majority-class accuracy on split s: the fraction of its most common label; for a split with
 * targets, the fraction of its target positions whose class is the most common target class (the
 * per-position accuracy of always predicting it). */
double dataset_majority(const Split *s, int n_classes);
/* The longest document of s, in tokens. */
int64_t dataset_max_length(const Split *s);

#endif
