/* Tasks: datasets of token sequences with a class label, split into train/validation/test, and
 * the registry of all tasks. */
#ifndef XB_TASK_H
#define XB_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/options.h"

/* Token id 0 is padding in every task's vocabulary. */
#define XB_PAD_ID 0

typedef struct Split {
    int n;            /* examples */
    int32_t *tokens;  /* all examples' tokens, concatenated */
    int64_t *offsets; /* (n + 1): example i is tokens[offsets[i] .. offsets[i+1]) */
    int32_t *labels;  /* (n) */
} Split;

typedef struct Dataset {
    int vocab_size; /* token ids are in [0, vocab_size); 0 is padding */
    int n_classes;
    Split train, val, test;
    char identity[1024]; /* JSON object text: generator + seed + options, or files + checksums */
    char checksum[17];   /* FNV-1a 64 (hex) over every split's tokens and labels */
} Dataset;

typedef struct TaskSpec {
    const char *name;
    const char *description;
    const OptSpec *opts;
    int n_opts;
    /* Builds the dataset (generated from seed, or loaded from files named in opts). Returns 0 or
     * -1 with err naming the file/position. `source` is the config file, for messages. */
    int (*load)(Dataset *out, const OptValues *opts, uint64_t seed, const char *source,
                XbError *err);
} TaskSpec;

/* The registry. */
int task_count(void);
const TaskSpec *task_get(int i);
/* Index of the task called name, or -1. */
int task_find(const char *name);

/* Frees every buffer of d. */
void dataset_free(Dataset *d);
/* Computes d->checksum from the splits. */
void dataset_checksum(Dataset *d);

/* Fills one padded batch. idx[0..B) selects examples of s; each row gets, if cls_id >= 0, the
 * token cls_id first, then the example's tokens truncated to fit L, then XB_PAD_ID. mask[b*L+t]
 * is 1 for real tokens (including CLS), 0 for padding. tokens (B, L), mask (B, L), labels (B). */
void dataset_batch(const Split *s, const int *idx, int B, int L, int cls_id, int32_t *tokens,
                   unsigned char *mask, int32_t *labels);

/* s as the inside of a JSON string (quotes, backslashes and control characters escaped), cut to
 * fit n bytes; for dataset identities that name paths. */
void dataset_json_escape(char *out, size_t n, const char *s);

/* Majority-class accuracy on split s (the fraction of its most common label). */
double dataset_majority(const Split *s, int n_classes);

#endif
