/* Safetensors checkpoints: see checkpoint.h for the layout. Byte order is written explicitly, so
 * files are little-endian whatever the host. */
#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/xassert.h"

#define CKPT_CHUNK 4096                 /* floats converted per write / read */
#define CKPT_MAX_INT 9007199254740992.0 /* 2^53: integers above this do not survive a double */

static void put_u64le(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64le(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static void f32_to_le(unsigned char *dst, const float *src, size_t n) {
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &src[k], 4);
        for (int i = 0; i < 4; i++) dst[4 * k + (size_t)i] = (unsigned char)(u >> (8 * i));
    }
}

static void le_to_f32(float *dst, const unsigned char *src, size_t n) {
    for (size_t k = 0; k < n; k++) {
        const unsigned char *b = src + 4 * k;
        uint32_t u =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&dst[k], &u, 4);
    }
}

/* "[192, 64]" */
static void shape_str(char *buf, size_t n, const long long *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* ---- save ---- */

/* The JSON header, padded with spaces so that 8 + its length is a multiple of 8. Owned by the
 * caller (free). */
static char *header_build(const ParamTable *t, const char *const *meta_kv, int n_meta,
                          size_t *len) {
    cJSON *h = cJSON_CreateObject();
    XB_ASSERT(h);
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(h, "__metadata__");
        XB_ASSERT(m && meta_kv);
        for (int i = 0; i < n_meta; i++) {
            XB_ASSERT(meta_kv[2 * i] && meta_kv[2 * i + 1]);
            XB_ASSERT(!cJSON_GetObjectItemCaseSensitive(m, meta_kv[2 * i]));
            XB_ASSERT(cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]));
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *p = &t->info[i];
        XB_ASSERT(strcmp(p->name, "__metadata__") != 0);
        XB_ASSERT(!cJSON_GetObjectItemCaseSensitive(h, p->name)); /* names are unique */
        cJSON *e = cJSON_AddObjectToObject(h, p->name);
        XB_ASSERT(e && cJSON_AddStringToObject(e, "dtype", "F32"));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        XB_ASSERT(shape && offs);
        for (int d = 0; d < p->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)p->shape[d]));
        const uint64_t end = off + 4 * (uint64_t)p->size;
        XB_ASSERT((double)end < 1e15); /* cJSON prints integers below 1e15 without an exponent */
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end));
        off = end;
    }
    char *json = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    XB_ASSERT(json);
    const size_t n = strlen(json);
    const size_t padded = (n + 7) & ~(size_t)7;
    char *out = malloc(padded + 1);
    XB_ASSERT(out);
    memcpy(out, json, n);
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    cJSON_free(json);
    *len = padded;
    return out;
}

static int write_all(FILE *f, const void *buf, size_t n) {
    return fwrite(buf, 1, n, f) == n ? 0 : -1;
}

int checkpoint_save(const char *path, const ParamTable *t, const float *params,
                    const char *const *meta_kv, int n_meta, XbError *err) {
    size_t hlen;
    char *header = header_build(t, meta_kv, n_meta, &hlen);
    AtomicFile af;
    if (fileio_open(&af, path, "checkpoint", err)) {
        free(header);
        return -1;
    }
    unsigned char len8[8];
    put_u64le(len8, (uint64_t)hlen);
    int bad = write_all(af.f, len8, 8) || write_all(af.f, header, hlen);
    free(header);
    unsigned char buf[4 * CKPT_CHUNK];
    for (int i = 0; i < t->n && !bad; i++) {
        const ParamInfo *p = &t->info[i];
        const float *src = params + p->offset;
        for (size_t k = 0; k < p->size && !bad; k += CKPT_CHUNK) {
            const size_t m = XB_MIN((size_t)CKPT_CHUNK, p->size - k);
            f32_to_le(buf, src + k, m);
            bad = write_all(af.f, buf, 4 * m);
        }
    }
    return fileio_commit(&af, err); /* a failed write leaves the stream's error flag set */
}

/* ---- load ---- */

/* A JSON number that is an integer in [0, max]. */
static int json_uint(const cJSON *j, double max, unsigned long long *out) {
    if (!cJSON_IsNumber(j)) return 0;
    const double v = j->valuedouble;
    if (!(v >= 0 && v <= max) || v != (double)(unsigned long long)v) return 0;
    *out = (unsigned long long)v;
    return 1;
}

typedef struct {
    unsigned long long begin, end; /* in the data section, bytes */
    int present;
} Span;

/* Checks one tensor entry against parameter p; fills s. */
static int check_entry(const char *path, const cJSON *e, const ParamInfo *p, Span *s,
                       unsigned long long data_size, XbError *err) {
    const char *name = p->name;
    if (!cJSON_IsObject(e))
        return xb_error_set(err, path, 0, 0, NULL, "tensor '%s': header entry is not an object",
                            name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dtype))
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s': \"dtype\" is missing or not a string", name);
    long long dims[64];
    int ndim = 0;
    int shape_ok = cJSON_IsArray(shape) && cJSON_GetArraySize(shape) <= 64;
    for (const cJSON *d = shape_ok ? shape->child : NULL; d; d = d->next) {
        unsigned long long v;
        if (!json_uint(d, 2147483647.0, &v))
            shape_ok = 0;
        else
            dims[ndim++] = (long long)v;
    }
    if (!shape_ok)
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s': \"shape\" is missing or not an array of non-negative "
                            "integers",
                            name);
    unsigned long long b = 0, en = 0;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(offs->child, CKPT_MAX_INT, &b) ||
        !json_uint(offs->child->next, CKPT_MAX_INT, &en))
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s': \"data_offsets\" is missing or not a pair of "
                            "non-negative integers",
                            name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s' has dtype %s in the file, the model expects F32", name,
                            dtype->valuestring);
    int same = ndim == p->ndim;
    for (int d = 0; same && d < ndim; d++) same = dims[d] == p->shape[d];
    if (!same) {
        long long want[XB_PARAM_MAXDIM];
        for (int d = 0; d < p->ndim; d++) want[d] = p->shape[d];
        char got_s[1024], want_s[128];
        shape_str(got_s, sizeof got_s, dims, ndim);
        shape_str(want_s, sizeof want_s, want, p->ndim);
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s' has shape %s in the file, the model expects %s", name,
                            got_s, want_s);
    }
    if (en < b)
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s' has data_offsets [%llu, %llu]: the end is before the "
                            "beginning",
                            name, b, en);
    if (en > data_size)
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s' has data_offsets [%llu, %llu] beyond the end of the data "
                            "section (%llu bytes): the file is truncated or corrupt",
                            name, b, en, data_size);
    if (en - b != 4 * (unsigned long long)p->size)
        return xb_error_set(err, path, 0, 0, NULL,
                            "tensor '%s' has data_offsets [%llu, %llu] (%llu bytes), but F32 of "
                            "its shape needs %llu bytes",
                            name, b, en, en - b, 4 * (unsigned long long)p->size);
    s->begin = b;
    s->end = en;
    s->present = 1;
    return 0;
}

typedef struct {
    unsigned long long begin, end;
    int idx;
} SpanRef;

static int cmp_span(const void *a, const void *b) {
    const SpanRef *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->idx - y->idx;
}

static int check_overlap(const char *path, const ParamTable *t, const Span *spans, XbError *err) {
    SpanRef *order = malloc((size_t)(t->n ? t->n : 1) * sizeof *order);
    XB_ASSERT(order);
    for (int i = 0; i < t->n; i++) order[i] = (SpanRef){spans[i].begin, spans[i].end, i};
    qsort(order, (size_t)t->n, sizeof *order, cmp_span);
    int rc = 0;
    for (int k = 0; k + 1 < t->n && !rc; k++) {
        if (order[k + 1].begin < order[k].end) {
            const int a = XB_MIN(order[k].idx, order[k + 1].idx);
            const int b = XB_MAX(order[k].idx, order[k + 1].idx);
            rc = xb_error_set(err, path, 0, 0, NULL,
                              "tensors '%s' and '%s' overlap in the data section", t->info[a].name,
                              t->info[b].name);
        }
    }
    free(order);
    return rc;
}

static int check_metadata(const char *path, const cJSON *m, XbError *err) {
    if (!cJSON_IsObject(m))
        return xb_error_set(err, path, 0, 0, NULL, "\"__metadata__\" is not an object");
    for (const cJSON *c = m->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return xb_error_set(err, path, 0, 0, NULL,
                                "\"__metadata__\" value of '%s' is not a string", c->string);
    return 0;
}

/* Parses and checks the header against t; fills spans (t->n entries). */
static int check_header(const char *path, const char *text, size_t n, const ParamTable *t,
                        Span *spans, unsigned long long data_size, XbError *err) {
    const char *nul = memchr(text, '\0', n);
    if (nul)
        return xb_error_set(err, path, 0, 0, NULL,
                            "the header contains a NUL byte (header byte %zu)",
                            (size_t)(nul - text));
    const char *end = NULL;
    cJSON *h = cJSON_ParseWithLengthOpts(text, n + 1, &end, 1); /* n + 1: includes the NUL */
    if (!h)
        return xb_error_set(err, path, 0, 0, NULL,
                            "the header is not valid JSON (syntax error at header byte %zu)",
                            end ? (size_t)(end - text) : (size_t)0);
    int rc = 0;
    if (!cJSON_IsObject(h))
        rc = xb_error_set(err, path, 0, 0, NULL, "the header is not a JSON object");
    for (const cJSON *c = cJSON_IsObject(h) ? h->child : NULL; c && !rc; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            rc = check_metadata(path, c, err);
            continue;
        }
        const int i = params_find(t, c->string);
        if (i < 0)
            rc =
                xb_error_set(err, path, 0, 0, NULL,
                             "tensor '%s' in the file is not a parameter of this model", c->string);
        else if (spans[i].present)
            rc = xb_error_set(err, path, 0, 0, NULL, "tensor '%s' appears twice in the header",
                              c->string);
        else
            rc = check_entry(path, c, &t->info[i], &spans[i], data_size, err);
    }
    cJSON_Delete(h);
    for (int i = 0; i < t->n && !rc; i++)
        if (!spans[i].present)
            rc = xb_error_set(err, path, 0, 0, NULL, "tensor '%s' is missing from the file",
                              t->info[i].name);
    if (!rc) rc = check_overlap(path, t, spans, err);
    return rc;
}

static int read_tensors(const char *path, FILE *f, unsigned long long data_start,
                        const ParamTable *t, const Span *spans, float *params, XbError *err) {
    unsigned char buf[4 * CKPT_CHUNK];
    for (int i = 0; i < t->n; i++) {
        const ParamInfo *p = &t->info[i];
        if (fseeko(f, (off_t)(data_start + spans[i].begin), SEEK_SET) != 0)
            return xb_error_set(err, path, 0, 0, NULL, "cannot seek: %s", strerror(errno));
        float *dst = params + p->offset;
        for (size_t k = 0; k < p->size; k += CKPT_CHUNK) {
            const size_t m = XB_MIN((size_t)CKPT_CHUNK, p->size - k);
            if (fread(buf, 4, m, f) != m)
                return xb_error_set(err, path, 0, 0, NULL, "cannot read tensor '%s': %s", p->name,
                                    ferror(f) ? strerror(errno) : "unexpected end of file");
            le_to_f32(dst + k, buf, m);
            for (size_t j = 0; j < m; j++) /* a NaN or an infinity is no trained weight */
                if (!isfinite(dst[k + j]))
                    return xb_error_set(err, path, 0, 0, NULL,
                                        "tensor '%s' holds %s at element %zu (valid: finite "
                                        "numbers; the run that wrote it diverged, or the file is "
                                        "damaged)",
                                        p->name, isnan(dst[k + j]) ? "NaN" : "an infinity", k + j);
        }
    }
    return 0;
}

int checkpoint_load(const char *path, const ParamTable *t, float *params, XbError *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return xb_error_set(err, path, 0, 0, NULL, "cannot read the checkpoint: %s",
                            strerror(errno));
    struct stat st;
    const int stat_rc = fstat(fileno(f), &st);
    if (stat_rc != 0 || !S_ISREG(st.st_mode)) {
        const int e = stat_rc != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        fclose(f);
        return xb_error_set(err, path, 0, 0, NULL, "cannot read the checkpoint: %s", strerror(e));
    }
    const unsigned long long size = (unsigned long long)st.st_size;
    unsigned char len8[8];
    if (size < 8 || fread(len8, 1, 8, f) != 8) {
        fclose(f);
        return xb_error_set(err, path, 0, 0, NULL,
                            "the file is too short to be a safetensors file (%llu bytes; the "
                            "8-byte header length is missing)",
                            size);
    }
    const unsigned long long n = get_u64le(len8);
    int rc = 0;
    if (n > size - 8)
        rc = xb_error_set(err, path, 0, 0, NULL,
                          "header length %llu is larger than the rest of the file (%llu bytes): "
                          "not a safetensors file, or truncated",
                          n, size - 8);
    else if (n > XB_CHECKPOINT_MAX_HEADER)
        rc = xb_error_set(err, path, 0, 0, NULL,
                          "header length %llu exceeds the limit of %llu bytes", n,
                          XB_CHECKPOINT_MAX_HEADER);
    else if (n == 0)
        rc = xb_error_set(err, path, 0, 0, NULL, "header length is 0: not a safetensors file");
    if (rc) {
        fclose(f);
        return rc;
    }
    char *text = malloc((size_t)n + 1);
    XB_ASSERT(text);
    if (fread(text, 1, (size_t)n, f) != (size_t)n) {
        rc = xb_error_set(err, path, 0, 0, NULL, "cannot read the header: %s",
                          ferror(f) ? strerror(errno) : "unexpected end of file");
    } else {
        text[n] = '\0';
        Span *spans = calloc((size_t)(t->n ? t->n : 1), sizeof *spans);
        XB_ASSERT(spans);
        rc = check_header(path, text, (size_t)n, t, spans, size - 8 - n, err);
        if (!rc) rc = read_tensors(path, f, 8 + n, t, spans, params, err);
        free(spans);
    }
    free(text);
    fclose(f);
    return rc;
}
