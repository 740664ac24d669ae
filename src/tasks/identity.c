/* Dataset identities (see identity.h): typed fields appended in order, checked on the way in. */
#include "tasks/identity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/xassert.h"
#include "tasks/task.h"

_Static_assert(DATASET_ID_TEXT > XB_OPT_STRLEN, "a string option (a data_dir) fits the text");

/* x as %g prints it: 6 significant digits, read back. */
static double num_as_printed(double x) {
    char t[32];
    snprintf(t, sizeof t, "%g", x);
    return strtod(t, NULL);
}

static int int_fits(int64_t v) { return fabs((double)v) < DATASET_ID_MAX_INT; }

/* 1 when the n bytes at s are well-formed UTF-8 (a report is JSON text, RFC 8259 8.1). */
static int is_utf8(const char *s, size_t n) { return fileio_utf8_prefix(s, n) == n; }

/* 0 when f's value is one of its kind, str the value of a string. */
static int value_ok(const DatasetIdField *f, const char *str, size_t room) {
    switch (f->kind) {
    case DATASET_ID_STR:
        return str && strlen(str) < room && is_utf8(str, strlen(str)) ? 0 : -1;
    case DATASET_ID_INT:
        return int_fits(f->v.i) ? 0 : -1;
    case DATASET_ID_NUM:
        return isfinite(f->v.x) && fabs(f->v.x) < DATASET_ID_MAX_NUM &&
                       num_as_printed(f->v.x) == f->v.x
                   ? 0
                   : -1;
    case DATASET_ID_BOOL:
        return f->v.i == 0 || f->v.i == 1 ? 0 : -1;
    case DATASET_ID_LIST:
        if (f->n < 1 || f->n > DATASET_ID_INTS) return -1;
        for (int k = 0; k < f->n; k++)
            if (!int_fits(f->v.list[k])) return -1;
        return 0;
    case DATASET_ID_HASH:
    case DATASET_ID_OBJECT:
        return 0;
    default:
        return -1;
    }
}

/* 1 when a field of depth `depth` may follow the field prev (NULL: none): depth 1 only inside an
 * object, that is after the object or another field of depth 1. */
static int depth_ok(const DatasetIdField *prev, int depth, DatasetIdKind kind) {
    if (depth == 0) return 1;
    if (depth != 1 || kind == DATASET_ID_OBJECT || !prev) return 0;
    return prev->depth == 1 || prev->kind == DATASET_ID_OBJECT;
}

int dataset_id_add(DatasetId *id, const DatasetIdField *f, const char *str) {
    const size_t klen = strnlen(f->key, DATASET_ID_KEY);
    if (id->n >= DATASET_ID_FIELDS || klen == 0 || klen == DATASET_ID_KEY ||
        !is_utf8(f->key, klen) || !depth_ok(id->n ? &id->f[id->n - 1] : NULL, f->depth, f->kind) ||
        value_ok(f, str, DATASET_ID_TEXT - id->used))
        return -1;
    DatasetIdField *g = &id->f[id->n++];
    *g = *f;
    if (f->kind == DATASET_ID_STR) {
        g->n = (int)strlen(str);
        g->v.at = id->used;
        memcpy(id->text + id->used, str, (size_t)g->n + 1);
        id->used += (size_t)g->n + 1;
    }
    return 0;
}

/* Appends f under key at the current depth (inside an open object or not); asserts that it fits. */
static void put(DatasetId *id, const char *key, DatasetIdField *f, const char *str) {
    XB_ASSERT(key && strlen(key) < DATASET_ID_KEY);
    memcpy(f->key, key, strlen(key) + 1);
    f->depth = id->open;
    XB_ASSERT(dataset_id_add(id, f, str) == 0);
}

void dataset_id_str(DatasetId *id, const char *key, const char *value) {
    DatasetIdField f = {.kind = DATASET_ID_STR};
    put(id, key, &f, value);
}

void dataset_id_int(DatasetId *id, const char *key, int64_t value) {
    DatasetIdField f = {.kind = DATASET_ID_INT, .v.i = value};
    put(id, key, &f, NULL);
}

void dataset_id_uint(DatasetId *id, const char *key, uint64_t value) {
    XB_ASSERT((double)value < DATASET_ID_MAX_INT);
    dataset_id_int(id, key, (int64_t)value);
}

void dataset_id_num(DatasetId *id, const char *key, double value) {
    DatasetIdField f = {.kind = DATASET_ID_NUM, .v.x = num_as_printed(value)};
    put(id, key, &f, NULL);
}

void dataset_id_bool(DatasetId *id, const char *key, int value) {
    DatasetIdField f = {.kind = DATASET_ID_BOOL, .v.i = value != 0};
    put(id, key, &f, NULL);
}

void dataset_id_hash(DatasetId *id, const char *key, uint64_t value) {
    DatasetIdField f = {.kind = DATASET_ID_HASH, .v.hash = value};
    put(id, key, &f, NULL);
}

void dataset_id_list(DatasetId *id, const char *key, const int *values, int n) {
    DatasetIdField f = {.kind = DATASET_ID_LIST, .n = n};
    XB_ASSERT(n >= 1 && n <= DATASET_ID_INTS);
    for (int k = 0; k < n; k++) f.v.list[k] = values[k];
    put(id, key, &f, NULL);
}

void dataset_id_begin(DatasetId *id, const char *key) {
    XB_ASSERT(!id->open);
    DatasetIdField f = {.kind = DATASET_ID_OBJECT};
    put(id, key, &f, NULL);
    id->open = 1;
}

void dataset_id_end(DatasetId *id) {
    XB_ASSERT(id->open);
    id->open = 0;
}

const char *dataset_id_text(const DatasetId *id, const DatasetIdField *f) {
    XB_ASSERT(f->kind == DATASET_ID_STR && f->v.at < DATASET_ID_TEXT);
    return id->text + f->v.at;
}

/* ---- checking ---- */

/* What is wrong with field i of id alone (its kind, key, value, depth), or NULL. */
static const char *field_fault(const DatasetId *id, int i) {
    const DatasetIdField *f = &id->f[i];
    const size_t klen = strnlen(f->key, DATASET_ID_KEY);
    if ((unsigned)f->kind >= DATASET_ID_KINDS) return "is of no known kind";
    if (klen == 0 || klen == DATASET_ID_KEY) return "has an empty or unterminated key";
    if (!is_utf8(f->key, klen)) return "has a key that is not UTF-8";
    if (f->kind == DATASET_ID_STR &&
        (f->n < 0 || f->v.at >= id->used || (size_t)f->n >= id->used - f->v.at ||
         id->text[f->v.at + (size_t)f->n] != '\0' || strlen(id->text + f->v.at) != (size_t)f->n))
        return "is a string outside the text";
    if (f->kind == DATASET_ID_STR && !is_utf8(id->text + f->v.at, (size_t)f->n))
        return "is a string that is not UTF-8";
    if (f->kind != DATASET_ID_STR && value_ok(f, NULL, 0)) return "has a value out of range";
    if (!depth_ok(i ? &id->f[i - 1] : NULL, f->depth, f->kind))
        return "is nested where no object is open";
    return NULL;
}

/* The index of the object that field i is in, or -1 for the top. */
static int parent_of(const DatasetId *id, int i) {
    if (id->f[i].depth == 0) return -1;
    while (i > 0 && id->f[i].depth != 0) i--;
    return i;
}

/* Field i's key into out (n bytes) as a message shows it. */
static void show_key(char *out, size_t n, const DatasetId *id, int i) {
    dataset_show(out, n, id->f[i].key, strnlen(id->f[i].key, DATASET_ID_KEY));
}

int dataset_id_check(const DatasetId *id, char *why, size_t n) {
    char key[80], in[80];
    if (id->n < 1 || id->n > DATASET_ID_FIELDS)
        return snprintf(why, n, "has %d fields (valid: 1 to %d)", id->n, DATASET_ID_FIELDS), -1;
    if (id->used > DATASET_ID_TEXT)
        return snprintf(why, n, "has %zu bytes of text (valid: at most %d)", id->used,
                        DATASET_ID_TEXT),
               -1;
    if (id->open) return snprintf(why, n, "has an object left open"), -1;
    for (int i = 0; i < id->n; i++) {
        const char *fault = field_fault(id, i);
        show_key(key, sizeof key, id, i);
        if (fault) return snprintf(why, n, "field %d (\"%s\") %s", i, key, fault), -1;
        const int parent = parent_of(id, i);
        for (int j = 0; j < i; j++) {
            if (id->f[j].depth != id->f[i].depth || parent_of(id, j) != parent ||
                strcmp(id->f[j].key, id->f[i].key) != 0)
                continue;
            if (parent < 0) return snprintf(why, n, "has the key \"%s\" twice", key), -1;
            show_key(in, sizeof in, id, parent);
            return snprintf(why, n, "has the key \"%s\" twice in \"%s\"", key, in), -1;
        }
    }
    show_key(key, sizeof key, id, 0);
    if (strcmp(id->f[0].key, "task") != 0)
        return snprintf(why, n, "starts with the key \"%s\" (valid: \"task\", the task's name)",
                        key),
               -1;
    if (id->f[0].kind != DATASET_ID_STR)
        return snprintf(why, n, "has a \"task\" that is not a string (valid: the task's name)"), -1;
    return 0;
}
