/* What every task's dataset shares: freeing, checksums, padded batches, the majority baseline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/xassert.h"
#include "tasks/task.h"

int task_always_generated(const OptValues *opts) {
    (void)opts;
    return 1;
}

static void split_free(Split *s) {
    free(s->tokens);
    free(s->offsets);
    free(s->labels);
    free(s->targets);
    memset(s, 0, sizeof *s);
}

void dataset_free(Dataset *d) {
    split_free(&d->train);
    split_free(&d->val);
    split_free(&d->test);
    memset(d, 0, sizeof *d);
}

/* Little-endian bytes of v, so the checksum is the same on every machine. */
static uint64_t hash_u32(uint64_t h, uint32_t v) {
    const unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                                (unsigned char)(v >> 24)};
    return xb_fnv1a64(h, b, 4);
}

void dataset_checksum(Dataset *d) {
    uint64_t h = XB_FNV_OFFSET;
    const Split *splits[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++) {
        const Split *s = splits[k];
        h = hash_u32(h, (uint32_t)s->n);
        const int docs = split_docs(s);
        for (int i = 0; i < s->n; i++) {
            for (int k = 0; k < docs; k++) {
                const int64_t a = s->offsets[i * docs + k], b = s->offsets[i * docs + k + 1];
                h = hash_u32(h, (uint32_t)(b - a));
                for (int64_t t = a; t < b; t++) h = hash_u32(h, (uint32_t)s->tokens[t]);
                for (int64_t t = a; s->targets && t < b; t++)
                    h = hash_u32(h, (uint32_t)s->targets[t]);
            }
            if (s->labels) h = hash_u32(h, (uint32_t)s->labels[i]);
        }
    }
    snprintf(d->checksum, sizeof d->checksum, "%016llx", (unsigned long long)h);
}

static int split_validate(const Dataset *d, const Split *s, const char *name, const char *where,
                          XbError *err) {
    const int docs = split_docs(s);
    if (s->n < 1)
        return xb_error_set(err, where, 0, 0, NULL,
                            "split %s: %d examples (valid: at least 1 in every split)", name, s->n);
    if (s->docs < 0 || s->docs > 2 || docs != (d->pairs ? 2 : 1))
        return xb_error_set(err, where, 0, 0, NULL,
                            "split %s: %d documents per example, but the dataset %s pairs", name,
                            docs, d->pairs ? "is made of" : "has no");
    if (!s->labels != !!d->sequence || !s->targets != !d->sequence)
        return xb_error_set(err, where, 0, 0, NULL, "split %s: %s, but the dataset has %s", name,
                            s->targets ? "targets per position" : "a label per example",
                            d->sequence ? "targets per position" : "a label per example");
    if (!s->offsets || !s->tokens)
        return xb_error_set(err, where, 0, 0, NULL, "split %s: no tokens", name);
    if (s->offsets[0] != 0)
        return xb_error_set(err, where, 0, 0, NULL, "split %s: the first document starts at %lld",
                            name, (long long)s->offsets[0]);
    const int64_t nd = (int64_t)s->n * docs;
    for (int64_t j = 0; j < nd; j++) {
        const int64_t a = s->offsets[j], b = s->offsets[j + 1];
        const long long ex = (long long)(j / docs);
        if (b < a || b - a > DATASET_MAX_DOC)
            return xb_error_set(err, where, 0, 0, NULL,
                                "split %s, example %lld: a document of %lld tokens (valid: 0 to "
                                "%lld)",
                                name, ex, (long long)(b - a), (long long)DATASET_MAX_DOC);
        for (int64_t t = a; t < b; t++) {
            if (s->tokens[t] < 0 || s->tokens[t] >= d->vocab_size)
                return xb_error_set(err, where, 0, 0, NULL,
                                    "split %s, example %lld, token %lld: id %d is not in the "
                                    "vocabulary [0, %d)",
                                    name, ex, (long long)(t - a), s->tokens[t], d->vocab_size);
            if (s->targets && s->targets[t] != XB_NO_TARGET &&
                (s->targets[t] < 0 || s->targets[t] >= d->n_classes))
                return xb_error_set(err, where, 0, 0, NULL,
                                    "split %s, example %lld, token %lld: target %d is not a class "
                                    "in [0, %d) or %d (none)",
                                    name, ex, (long long)(t - a), s->targets[t], d->n_classes,
                                    XB_NO_TARGET);
        }
    }
    for (int i = 0; s->labels && i < s->n; i++)
        if (s->labels[i] < 0 || s->labels[i] >= d->n_classes)
            return xb_error_set(err, where, 0, 0, NULL,
                                "split %s, example %d: label %d is not a class in [0, %d)", name, i,
                                s->labels[i], d->n_classes);
    return 0;
}

int dataset_validate(const Dataset *d, const char *where, XbError *err) {
    if (d->vocab_size < 2 || d->n_classes < 2 || (d->pairs != 0 && d->pairs != 1) ||
        (d->sequence != 0 && d->sequence != 1))
        return xb_error_set(err, where, 0, 0, NULL,
                            "a vocabulary of %d ids and %d classes, pairs %d, sequence %d (valid: "
                            "at least 2 ids and 2 classes, flags 0 or 1)",
                            d->vocab_size, d->n_classes, d->pairs, d->sequence);
    char why[200];
    if (dataset_id_check(&d->id, why, sizeof why)) /* the report holds it */
        return xb_error_set(err, where, 0, 0, NULL, "the dataset's identity %s", why);
    static const char *const names[3] = {"train", "val", "test"};
    const Split *splits[3] = {&d->train, &d->val, &d->test};
    for (int k = 0; k < 3; k++)
        if (split_validate(d, splits[k], names[k], where, err)) return -1;
    return 0;
}

void dataset_batch(const Split *s, const int *idx, int B, int L, int cls_id, int32_t *tokens,
                   unsigned char *mask, int32_t *labels) {
    const int docs = split_docs(s);
    for (int b = 0; b < B; b++) {
        const int i = idx[b];
        for (int k = 0; k < docs; k++) {
            const int r = b * docs + k, j = i * docs + k;
            int32_t *row = tokens + (size_t)r * L;
            int32_t *tg = s->targets ? labels + (size_t)r * L : NULL;
            unsigned char *m = mask + (size_t)r * L;
            int t = 0;
            if (cls_id >= 0 && t < L) {
                if (tg) tg[t] = XB_NO_TARGET;
                row[t++] = cls_id;
            }
            const int64_t a = s->offsets[j], e = s->offsets[j + 1];
            for (int64_t q = a; q < e && t < L; q++) {
                if (tg) tg[t] = s->targets[q];
                row[t++] = s->tokens[q];
            }
            const int real = t; /* <= L */
            for (; t < L; t++) row[t] = XB_PAD_ID;
            for (t = real; tg && t < L; t++) tg[t] = XB_NO_TARGET;
            for (int q = 0; q < L; q++) m[q] = q < real;
        }
        if (!s->targets) labels[b] = s->labels[i];
    }
}

double dataset_majority(const Split *s, int n_classes) {
    if (s->n == 0 || n_classes <= 0) return 0.0;
    int64_t *count = calloc((size_t)n_classes, sizeof *count);
    if (!count) return 0.0;
    int64_t total = s->n;
    if (s->targets) {
        total = 0;
        for (int64_t t = 0; t < s->offsets[(int64_t)s->n * split_docs(s)]; t++)
            if (s->targets[t] >= 0 && s->targets[t] < n_classes) count[s->targets[t]]++, total++;
    } else {
        for (int i = 0; i < s->n; i++)
            if (s->labels[i] >= 0 && s->labels[i] < n_classes) count[s->labels[i]]++;
    }
    int best = 0;
    for (int c = 1; c < n_classes; c++)
        if (count[c] > count[best]) best = c;
    const double frac = total ? (double)count[best] / (double)total : 0.0;
    free(count);
    return frac;
}

int64_t dataset_max_length(const Split *s) {
    int64_t m = 0;
    for (int j = 0; j < s->n * split_docs(s); j++) m = XB_MAX(m, s->offsets[j + 1] - s->offsets[j]);
    return m;
}

void dataset_show(char *out, size_t n, const char *s, size_t len) {
    size_t k = 0;
    size_t shown = len > 60 ? 60 : len;
    while (shown < len && shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80)
        shown--; /* not inside a UTF-8 character */
    for (size_t i = 0; i < shown; i++) {
        char e[8];
        const unsigned char c = (unsigned char)s[i];
        if (c == '\n' || c == '\t' || c == '\r')
            snprintf(e, sizeof e, "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
        else if (c < 0x20 || c == 0x7f)
            snprintf(e, sizeof e, "\\x%02x", c);
        else
            e[0] = (char)c, e[1] = '\0';
        const size_t m = strlen(e);
        if (k + m + 4 > n) break;
        memcpy(out + k, e, m);
        k += m;
    }
    if (shown < len && k + 4 <= n) memcpy(out + k, "...", 3), k += 3;
    out[k] = '\0';
}
