#include "train/state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/xassert.h"

#define MAGIC "XBSTATE1"
#define MAX_HEADER (64ull << 20)

/* Writes n bytes through f, hashing them. */
static int put(FILE *f, uint64_t *h, const void *p, size_t n) {
    *h = xb_fnv1a64(*h, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static void hex64(char out[17], uint64_t v) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

static cJSON *header_of(const TrainState *s) {
    cJSON *h = cJSON_CreateObject();
    char buf[17];
    XB_ASSERT(h);
    cJSON_AddNumberToObject(h, "version", 1);
    hex64(buf, s->config_hash);
    cJSON_AddStringToObject(h, "config_hash", buf);
    hex64(buf, s->data_checksum);
    cJSON_AddStringToObject(h, "data_checksum", buf);
    cJSON_AddNumberToObject(h, "step", (double)s->step);
    cJSON_AddNumberToObject(h, "adam_t", (double)s->adam_t);
    hex64(buf, s->rng_state);
    cJSON_AddStringToObject(h, "rng_state", buf);
    hex64(buf, s->rng_inc);
    cJSON_AddStringToObject(h, "rng_inc", buf);
    cJSON_AddNumberToObject(h, "sampler_pos", s->sampler_pos);
    cJSON_AddNumberToObject(h, "sampler_n", s->sampler_n);
    cJSON_AddNumberToObject(h, "best_step", (double)s->best_step);
    /* doubles as their exact bits: a resumed run must continue with the same numbers */
    uint64_t bits;
    memcpy(&bits, &s->best_val_acc, 8);
    hex64(buf, bits);
    cJSON_AddStringToObject(h, "best_val_acc", buf);
    memcpy(&bits, &s->loss_sum, 8);
    hex64(buf, bits);
    cJSON_AddStringToObject(h, "loss_sum", buf);
    cJSON_AddNumberToObject(h, "loss_n", (double)s->loss_n);
    hex64(buf, s->flops_total);
    cJSON_AddStringToObject(h, "flops_total", buf);
    hex64(buf, s->flops_step_counted);
    cJSON_AddStringToObject(h, "flops_step_counted", buf);
    cJSON_AddNumberToObject(h, "n_params", (double)s->n_params);
    cJSON *ev = cJSON_AddArrayToObject(h, "evals");
    for (int i = 0; i < s->n_evals; i++) {
        const EvalRecord *r = &s->evals[i];
        const double v[5] = {r->lr, r->train_loss, r->val_loss, r->val_acc, r->elapsed_s};
        cJSON *o = cJSON_CreateArray();
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)r->step));
        for (int k = 0; k < 5; k++) {
            memcpy(&bits, &v[k], 8);
            hex64(buf, bits);
            cJSON_AddItemToArray(o, cJSON_CreateString(buf));
        }
        cJSON_AddItemToArray(ev, o);
    }
    return h;
}

static int little_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

int state_save(const char *path, const TrainState *s, XbError *err) {
    if (!little_endian())
        return xb_error_set(err, path, 0, 0, NULL, "resumable states need a little-endian host");
    cJSON *h = header_of(s);
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    XB_ASSERT(text);
    AtomicFile af;
    if (fileio_open(&af, path, "resumable state", err)) {
        free(text);
        return -1;
    }
    uint64_t hash = XB_FNV_OFFSET, hl = strlen(text);
    int bad = put(af.f, &hash, MAGIC, 8) || put(af.f, &hash, &hl, 8) ||
              put(af.f, &hash, text, (size_t)hl);
    const float *arr[4] = {s->params, s->m, s->v, s->best};
    for (int k = 0; k < 4 && !bad; k++) bad = put(af.f, &hash, arr[k], s->n_params * sizeof(float));
    if (!bad) bad = put(af.f, &hash, s->perm, (size_t)s->sampler_n * sizeof(int));
    if (!bad) bad = fwrite(&hash, 1, 8, af.f) != 8;
    free(text);
    if (bad) {
        const int e = errno;
        fileio_abort(&af);
        return xb_error_set(err, path, 0, 0, NULL, "cannot write the resumable state: %s",
                            strerror(e ? e : EIO));
    }
    return fileio_commit(&af, err);
}

/* Header fields: a hex-encoded 64-bit value, or a number. */
static int hex_field(const cJSON *h, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, key);
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 16 ||
        strspn(v->valuestring, "0123456789abcdef") != 16)
        return -1;
    *out = strtoull(v->valuestring, NULL, 16);
    return 0;
}

static int num_field(const cJSON *h, const char *key, double lo, double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = v->valuedouble;
    return 0;
}

static double from_bits(uint64_t b) {
    double d;
    memcpy(&d, &b, 8);
    return d;
}

#define CORRUPT(what)                                                                              \
    xb_error_set(err, path, 0, 0, NULL,                                                            \
                 "not a resumable state of xformer-bench, or a damaged one: %s (valid: a state "   \
                 "written by run with train.checkpoint_every; remove it to start over)",           \
                 what)

/* The state's identity in header h against this run's: its config and its data. */
static int check_identity(const char *path, const cJSON *h, uint64_t want_config,
                          uint64_t want_data, XbError *err) {
    uint64_t cfg_h, data_h;
    double version;
    if (hex_field(h, "config_hash", &cfg_h) || hex_field(h, "data_checksum", &data_h) ||
        num_field(h, "version", 1, 1, &version))
        return CORRUPT("its header lacks the config hash, dataset checksum or version");
    if (cfg_h != want_config)
        return xb_error_set(err, path, 0, 0, NULL,
                            "was saved by a run of another config (config hash %016llx; this "
                            "run's is %016llx) (valid: the state of this config's run; remove it "
                            "to start over)",
                            (unsigned long long)cfg_h, (unsigned long long)want_config);
    if (data_h != want_data)
        return xb_error_set(err, path, 0, 0, NULL,
                            "was saved with another dataset (checksum %016llx; this run's data has "
                            "%016llx): the task's files or generator changed (valid: remove the "
                            "state to start over)",
                            (unsigned long long)data_h, (unsigned long long)want_data);
    return 0;
}

/* The scalars and the evaluation history of header h into s. */
static int read_header(const char *path, const cJSON *h, TrainState *s, int max_evals,
                       size_t want_params, int want_n, XbError *err) {
    uint64_t u[6];
    double d[7];
    if (num_field(h, "step", 0, 9.0e15, &d[0]) || num_field(h, "adam_t", 0, 9.0e15, &d[1]) ||
        num_field(h, "sampler_pos", 0, 2147483647.0, &d[2]) ||
        num_field(h, "sampler_n", 0, 2147483647.0, &d[3]) ||
        num_field(h, "best_step", -1, 9.0e15, &d[4]) || num_field(h, "loss_n", 0, 9.0e15, &d[5]) ||
        num_field(h, "n_params", 1, 9.0e15, &d[6]) || hex_field(h, "rng_state", &u[0]) ||
        hex_field(h, "rng_inc", &u[1]) || hex_field(h, "best_val_acc", &u[2]) ||
        hex_field(h, "loss_sum", &u[3]) || hex_field(h, "flops_total", &u[4]) ||
        hex_field(h, "flops_step_counted", &u[5]))
        return CORRUPT("a field of its header is missing or out of range");
    if ((size_t)d[6] != want_params || (int)d[3] != want_n || d[2] > d[3])
        return CORRUPT("its sizes are not this run's model and data");
    s->step = (int64_t)d[0], s->adam_t = (int64_t)d[1], s->sampler_pos = (int)d[2];
    s->best_step = (int64_t)d[4], s->loss_n = (int64_t)d[5];
    s->rng_state = u[0], s->rng_inc = u[1];
    s->best_val_acc = from_bits(u[2]), s->loss_sum = from_bits(u[3]);
    s->flops_total = u[4], s->flops_step_counted = u[5];
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(h, "evals");
    if (!cJSON_IsArray(ev) || cJSON_GetArraySize(ev) > max_evals)
        return CORRUPT("its evaluation history is missing or longer than this run's");
    s->n_evals = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, ev) {
        EvalRecord *r = &s->evals[s->n_evals++];
        double *dst[5] = {&r->lr, &r->train_loss, &r->val_loss, &r->val_acc, &r->elapsed_s};
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) != 6 || !cJSON_IsNumber(o->child))
            return CORRUPT("an evaluation record is malformed");
        r->step = (int64_t)o->child->valuedouble;
        const cJSON *x = o->child->next;
        for (int k = 0; k < 5; k++, x = x->next) {
            if (!cJSON_IsString(x) || strlen(x->valuestring) != 16 ||
                strspn(x->valuestring, "0123456789abcdef") != 16)
                return CORRUPT("an evaluation record is malformed");
            *dst[k] = from_bits(strtoull(x->valuestring, NULL, 16));
        }
    }
    if (s->step < 1 || s->adam_t != s->step || s->best_step > s->step)
        return CORRUPT("its steps are inconsistent");
    return 0;
}

int state_load(const char *path, TrainState *s, int max_evals, XbError *err) {
    if (!little_endian())
        return xb_error_set(err, path, 0, 0, NULL, "resumable states need a little-endian host");
    FILE *f = fopen(path, "rb");
    if (!f)
        return xb_error_set(err, path, 0, 0, NULL, "cannot read the resumable state: %s",
                            strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = CORRUPT("it is not a regular file");
    const unsigned long long size = rc ? 0 : (unsigned long long)st.st_size;
    char magic[8];
    uint64_t hl = 0, hash = XB_FNV_OFFSET;
    if (!rc && (size < 24 || fread(magic, 1, 8, f) != 8 || memcmp(magic, MAGIC, 8) ||
                fread(&hl, 1, 8, f) != 8))
        rc = CORRUPT("it does not start with XBSTATE1 and a header length");
    else if (!rc && (hl == 0 || hl > MAX_HEADER || hl > size - 24))
        rc = CORRUPT("its header length is out of range: it is truncated or damaged");
    char *text = NULL;
    cJSON *h = NULL;
    if (!rc) {
        hash = xb_fnv1a64(xb_fnv1a64(hash, magic, 8), &hl, 8);
        text = malloc(hl + 1);
        XB_ASSERT(text);
        if (fread(text, 1, hl, f) != hl) rc = CORRUPT("it is truncated");
        text[rc ? 0 : hl] = '\0';
        hash = xb_fnv1a64(hash, text, hl);
        h = rc ? NULL : cJSON_ParseWithLength(text, (size_t)hl);
        if (!rc && !cJSON_IsObject(h)) rc = CORRUPT("its header is not a JSON object");
    }
    /* whose state it is first: a state of another config is not a damaged one */
    if (!rc) rc = check_identity(path, h, s->config_hash, s->data_checksum, err);
    const unsigned long long data =
        4ull * sizeof(float) * s->n_params + (unsigned long long)s->sampler_n * sizeof(int);
    if (!rc && size != 16 + hl + data + 8)
        rc = CORRUPT("it is truncated, or its size does not match this run's model and data");
    float *arr[4] = {s->params, s->m, s->v, s->best};
    for (int k = 0; k < 4 && !rc; k++) {
        if (fread(arr[k], sizeof(float), s->n_params, f) != s->n_params)
            rc = CORRUPT("it is truncated");
        else
            hash = xb_fnv1a64(hash, arr[k], s->n_params * sizeof(float));
    }
    if (!rc && fread(s->perm, sizeof(int), (size_t)s->sampler_n, f) != (size_t)s->sampler_n)
        rc = CORRUPT("it is truncated");
    if (!rc) hash = xb_fnv1a64(hash, s->perm, (size_t)s->sampler_n * sizeof(int));
    uint64_t want = 0;
    if (!rc && (fread(&want, 1, 8, f) != 8 || want != hash))
        rc = CORRUPT("its checksum does not match its contents");
    fclose(f);
    if (!rc) rc = read_header(path, h, s, max_evals, s->n_params, s->sampler_n, err);
    cJSON_Delete(h);
    free(text);
    for (int k = 0; k < s->sampler_n && !rc; k++)
        if (s->perm[k] < 0 || s->perm[k] >= s->sampler_n) rc = CORRUPT("its data order is invalid");
    if (rc) err->code = XB_EXIT_USAGE;
    return rc;
}
