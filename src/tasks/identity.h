/* A dataset's identity: what made it (task, generator, seed and options, or the files read and
 * their hashes), as an ordered list of typed fields with one level of nesting. A task fills it
 * with the dataset_id_* calls below; the report writer (report/) turns it into the report's
 * `dataset.identity` object, and the data cache stores it in a binary form of its own. No JSON
 * here: how the identity is written is the report's business. */
#ifndef XB_TASK_IDENTITY_H
#define XB_TASK_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define DATASET_ID_FIELDS 40 /* fields, those inside an object included */
#define DATASET_ID_KEY 32    /* bytes of a key, its NUL included */
#define DATASET_ID_TEXT 2048 /* bytes of all string values, their NULs included */
#define DATASET_ID_INTS 4    /* integers in a list */
#define DATASET_ID_MAX_INT                                                                         \
    9007199254740992.0         /* 2^53: integers below it in magnitude survive a                   \
                                * double and print as integers */
#define DATASET_ID_MAX_NUM 1e6 /* numbers below it in magnitude print alike as %g and as JSON */

typedef enum DatasetIdKind {
    DATASET_ID_STR,    /* a string (bytes other than NUL, as they are) */
    DATASET_ID_INT,    /* an integer of magnitude below 2^53 */
    DATASET_ID_NUM,    /* a number, kept as %g prints it (6 significant digits) */
    DATASET_ID_BOOL,   /* 0 or 1 */
    DATASET_ID_HASH,   /* a 64-bit hash, written as 16 lowercase hex digits */
    DATASET_ID_LIST,   /* 1 to DATASET_ID_INTS integers, each as DATASET_ID_INT */
    DATASET_ID_OBJECT, /* an object: the fields of depth 1 that follow it */
    DATASET_ID_KINDS
} DatasetIdKind;

typedef struct DatasetIdField {
    DatasetIdKind kind;
    int depth; /* 0: a key of the identity; 1: a key of the last object before it */
    char key[DATASET_ID_KEY];
    int n; /* DATASET_ID_LIST: the integers; DATASET_ID_STR: the bytes of its value */
    union {
        int64_t i;                     /* INT, BOOL */
        double x;                      /* NUM */
        uint64_t hash;                 /* HASH */
        int64_t list[DATASET_ID_INTS]; /* LIST */
        size_t at;                     /* STR: where its value starts in DatasetId.text */
    } v;
} DatasetIdField;

typedef struct DatasetId {
    int n;       /* fields */
    int open;    /* 1 between dataset_id_begin and dataset_id_end */
    size_t used; /* bytes of text taken */
    DatasetIdField f[DATASET_ID_FIELDS];
    char text[DATASET_ID_TEXT]; /* the string values, each with its NUL */
} DatasetId;

/* Each call appends one field, key and value copied in, inside the object that dataset_id_begin
 * opened if one is open. An identity that does not fit (more fields, a longer key or more text
 * than the bounds above, a number out of range) is a programming error: XB_ASSERT. */
void dataset_id_str(DatasetId *id, const char *key, const char *value);
void dataset_id_int(DatasetId *id, const char *key, int64_t value);
void dataset_id_uint(DatasetId *id, const char *key, uint64_t value); /* e.g. a seed */
void dataset_id_num(DatasetId *id, const char *key, double value);
void dataset_id_bool(DatasetId *id, const char *key, int value);
void dataset_id_hash(DatasetId *id, const char *key, uint64_t value);
void dataset_id_list(DatasetId *id, const char *key, const int *values, int n);
/* Opens an object under key (one level: not inside another); dataset_id_end closes it. */
void dataset_id_begin(DatasetId *id, const char *key);
void dataset_id_end(DatasetId *id);

/* Appends f (its value from f->v, a string's from str) as the calls above do, but returns -1
 * instead of asserting when it does not fit or breaks the nesting: for a reader of stored
 * identities (the data cache). f->depth 1 puts it inside the last object field. */
int dataset_id_add(DatasetId *id, const DatasetIdField *f, const char *str);

/* The value of string field f of id. */
const char *dataset_id_text(const DatasetId *id, const DatasetIdField *f);

/* Checks that id is one a report can hold: at least one field, the first a string named "task"
 * at the top, every field of a known kind and depth (depth 1 only after an object), keys
 * non-empty and unique within their object (or the top), strings within the text, no object
 * left open. Returns 0, or -1 with why (n bytes) saying what is wrong. */
int dataset_id_check(const DatasetId *id, char *why, size_t n);

#endif
