/* Checkpoints: the files are real safetensors (checked by parsing them independently of
 * checkpoint_load, and by loading files built byte by byte from the specification), round trips
 * keep every bit, and every malformed file gives an exact message naming the file. */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/params.h"
#include "train/checkpoint.h"

static char g_dir[256];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/xb_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void) {
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(g_dir);
}

static const char *tmp_path(const char *name) {
    static char p[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

/* A small model-like table: sizes that are not multiples of 16, so the buffer has padding. */
static void make_table(ParamTable *t, int qkv_rows, int with_head) {
    params_init(t);
    params_add2(t, "embed.weight", 10, 8, INIT_NORMAL, 0.02f, 1);
    params_add2(t, "blocks.0.mixer.qkv.weight", qkv_rows, 8, INIT_XAVIER_UNIFORM, 1.0f, 1);
    params_add1(t, "blocks.0.ln.bias", 7, INIT_ZEROS, 0.0f, 0);
    int s3[3] = {2, 3, 5};
    params_add(t, "blocks.0.conv.weight", 3, s3, INIT_NORMAL, 0.1f, 1);
    if (with_head) params_add2(t, "head.weight", 3, 8, INIT_NORMAL, 0.02f, 1);
}

/* Random bit patterns (NaN payloads, denormals, -0 included) in the tensors; padding is 0x7f. */
/* Random finite floats of every bit pattern (subnormals, -0 included), padding 0x7f7f7f7f. */
static float *random_params(const ParamTable *t, uint64_t seed) {
    float *p = malloc(t->total * sizeof *p);
    memset(p, 0x7f, t->total * sizeof *p);
    Rng r;
    rng_seed(&r, seed, 9);
    for (int i = 0; i < t->n; i++)
        for (size_t k = 0; k < t->info[i].size; k++) {
            uint32_t u = rng_u32(&r);
            if ((u & 0x7f800000u) == 0x7f800000u) u ^= 0x00800000u; /* finite: no NaN or inf */
            memcpy(&p[t->info[i].offset + k], &u, 4);
        }
    return p;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Writes a safetensors file by hand: u64 little-endian header length, header, data. */
static void write_safetensors(const char *path, const char *header, const unsigned char *data,
                              size_t n_data) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fwrite(header, 1, strlen(header), f);
    if (n_data) fwrite(data, 1, n_data, f);
    fclose(f);
}

static const char *err_str(const XbError *e) {
    static char buf[2048];
    xb_error_format(e, buf, sizeof buf);
    return buf;
}

static void ck_assert_error(const XbError *e, const char *path, const char *msg) {
    char want[2048];
    snprintf(want, sizeof want, "%s: %s", path, msg);
    ck_assert_str_eq(err_str(e), want);
}

static const char *const META[] = {"run_id", "listops-full-s1", "step",
                                   "400",    "config_hash",     "0123456789abcdef"};

START_TEST(test_checkpoint_round_trip_keeps_every_bit) {
    ParamTable t;
    make_table(&t, 24, 1);
    float *a = random_params(&t, 1);
    float *b = malloc(t.total * sizeof *b);
    memset(b, 0, t.total * sizeof *b);
    XbError err;
    xb_error_clear(&err);
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(checkpoint_save(path, &t, a, META, 3, &err), 0);
    ck_assert_int_eq(checkpoint_load(path, &t, b, &err), 0);
    for (int i = 0; i < t.n; i++)
        ck_assert_mem_eq(a + t.info[i].offset, b + t.info[i].offset, t.info[i].size * 4);
    /* The padding between tensors is not part of the file and is left alone. */
    ck_assert_float_eq(b[t.info[2].offset + t.info[2].size], 0.0f); /* after the 7-float bias */
    free(a);
    free(b);
    params_free(&t);
}
END_TEST

/* Reads the file with nothing but the specification: u64 LE length, JSON header, contiguous
 * little-endian F32 data in table order, data section 8-byte aligned. */
START_TEST(test_checkpoint_file_parses_as_safetensors_independently) {
    ParamTable t;
    make_table(&t, 24, 1);
    float *a = random_params(&t, 2);
    XbError err;
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(checkpoint_save(path, &t, a, META, 3, &err), 0);

    size_t n_file;
    unsigned char *b = read_all(path, &n_file);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    ck_assert_uint_eq((8 + n) % 8, 0);
    ck_assert_uint_ge(n_file, 8 + n);
    char *hdr = malloc(n + 1);
    memcpy(hdr, b + 8, n);
    hdr[n] = '\0';
    ck_assert_int_eq(hdr[0], '{');
    size_t json_end = n;
    while (json_end > 0 && hdr[json_end - 1] == ' ') json_end--;
    ck_assert_int_eq(hdr[json_end - 1], '}'); /* only spaces after the object */
    cJSON *h = cJSON_Parse(hdr);
    ck_assert_ptr_nonnull(h);

    const cJSON *m = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
    ck_assert(cJSON_IsObject(m));
    ck_assert_int_eq(cJSON_GetArraySize(m), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, META[2 * i]);
        ck_assert(cJSON_IsString(v));
        ck_assert_str_eq(v->valuestring, META[2 * i + 1]);
    }
    ck_assert_int_eq(cJSON_GetArraySize(h), t.n + 1);

    const unsigned char *data = b + 8 + n;
    size_t expect_begin = 0;
    for (int i = 0; i < t.n; i++) {
        const ParamInfo *p = &t.info[i];
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, p->name);
        ck_assert_msg(cJSON_IsObject(e), "tensor %s missing", p->name);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring, "F32");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        ck_assert_int_eq(cJSON_GetArraySize(shape), p->ndim);
        for (int d = 0; d < p->ndim; d++)
            ck_assert_int_eq(cJSON_GetArrayItem(shape, d)->valueint, p->shape[d]);
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        ck_assert_int_eq(cJSON_GetArraySize(off), 2);
        const size_t begin = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        const size_t end = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        ck_assert_uint_eq(begin, expect_begin); /* contiguous, in table order */
        ck_assert_uint_eq(end - begin, 4 * p->size);
        for (size_t k = 0; k < p->size; k++) {
            uint32_t u;
            memcpy(&u, &a[p->offset + k], 4);
            const unsigned char *q = data + begin + 4 * k;
            const uint32_t v =
                (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
            ck_assert_uint_eq(u, v);
        }
        expect_begin = end;
    }
    ck_assert_uint_eq(n_file, 8 + n + expect_begin); /* nothing after the last tensor */
    cJSON_Delete(h);
    free(hdr);
    free(b);
    free(a);
    params_free(&t);
}
END_TEST

/* A file written by hand from the specification: tensors out of table order, metadata last,
 * header not padded, values with known bytes. */
START_TEST(test_checkpoint_loads_handwritten_safetensors_file) {
    ParamTable t;
    params_init(&t);
    params_add2(&t, "a", 2, 3, INIT_ZEROS, 0.0f, 1);
    params_add1(&t, "b", 2, INIT_ZEROS, 0.0f, 0);
    const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}";
    /* b = {1, -2}, a = {0.5, 0.25, -0, 3, 1e-45 (denormal), -1}: IEEE bits, little-endian. */
    const unsigned char data[32] = {
        0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,                         /* b */
        0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x00, 0x80, /* a */
        0x00, 0x00, 0x40, 0x40, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xbf};
    const char *path = tmp_path("hand.safetensors");
    write_safetensors(path, hdr, data, sizeof data);
    float *p = calloc(t.total, sizeof *p);
    XbError err;
    xb_error_clear(&err);
    ck_assert_msg(checkpoint_load(path, &t, p, &err) == 0, "%s", err_str(&err));
    const float *a = p + t.info[0].offset, *b = p + t.info[1].offset;
    ck_assert_float_eq(b[0], 1.0f);
    ck_assert_float_eq(b[1], -2.0f);
    ck_assert_float_eq(a[0], 0.5f);
    ck_assert_float_eq(a[1], 0.25f);
    ck_assert_float_eq(a[2], 0.0f);
    ck_assert(signbit(a[2]));
    ck_assert_float_eq(a[3], 3.0f);
    uint32_t u;
    memcpy(&u, &a[4], 4);
    ck_assert_uint_eq(u, 1);
    ck_assert_float_eq(a[5], -1.0f);
    free(p);
    params_free(&t);
}
END_TEST

START_TEST(test_checkpoint_save_without_metadata_omits_it_and_loads) {
    ParamTable t;
    make_table(&t, 24, 0);
    float *a = random_params(&t, 3), *b = calloc(t.total, sizeof(float));
    XbError err;
    const char *path = tmp_path("nometa.safetensors");
    ck_assert_int_eq(checkpoint_save(path, &t, a, NULL, 0, &err), 0);
    size_t n;
    unsigned char *bytes = read_all(path, &n);
    for (size_t k = 0; k + 12 <= n; k++) ck_assert(memcmp(bytes + k, "__metadata__", 12) != 0);
    ck_assert_int_eq(checkpoint_load(path, &t, b, &err), 0);
    for (int i = 0; i < t.n; i++)
        ck_assert_mem_eq(a + t.info[i].offset, b + t.info[i].offset, t.info[i].size * 4);
    free(bytes);
    free(a);
    free(b);
    params_free(&t);
}
END_TEST

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

START_TEST(test_checkpoint_save_is_atomic_and_leaves_no_tmp) {
    ParamTable t;
    make_table(&t, 24, 1);
    float *a = random_params(&t, 4);
    XbError err;
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(checkpoint_save(path, &t, a, META, 3, &err), 0);
    ck_assert_int_eq(checkpoint_save(path, &t, a, META, 3, &err), 0); /* replaces */
    ck_assert_int_eq(dir_entries(g_dir), 1);
    /* dir_entries == 1: no temporary left */

    /* The target is a directory: rename fails, the temporary file is removed. */
    const char *sub = tmp_path("adir");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    xb_error_clear(&err);
    ck_assert_int_eq(checkpoint_save(sub, &t, a, META, 3, &err), -1);
    char msg[1500];
    snprintf(msg, sizeof msg, "cannot rename '%s.XXXXXX' to '%s': Is a directory", sub, sub);
    ck_assert_error(&err, sub, msg);
    ck_assert_int_eq(dir_entries(g_dir), 2);
    rmdir(sub);

    /* A directory that does not exist is created, as for reports. */
    const char *nested = tmp_path("new/m.safetensors");
    ck_assert_int_eq(checkpoint_save(nested, &t, a, META, 3, &err), 0);
    ck_assert_int_eq(access(nested, F_OK), 0);
    unlink(nested);
    rmdir(tmp_path("new"));

    /* A directory that cannot be made (a file is in the way): an error, no file. */
    const char *file = tmp_path("afile");
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    const char *bad = tmp_path("afile/m.safetensors");
    ck_assert_int_eq(checkpoint_save(bad, &t, a, META, 3, &err), -1);
    snprintf(msg, sizeof msg, "cannot write the checkpoint (%s.XXXXXX): Not a directory", bad);
    ck_assert_error(&err, bad, msg);
    ck_assert_int_eq(dir_entries(g_dir), 2);
    unlink(file);
    free(a);
    params_free(&t);
}
END_TEST

/* Loads path into a fresh buffer and checks the exact message and that params stay untouched. */
static void expect_load_error(const ParamTable *t, const char *path, const char *msg) {
    float *p = malloc(t->total * sizeof *p);
    memset(p, 0x5a, t->total * sizeof *p);
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(checkpoint_load(path, t, p, &err), -1);
    ck_assert_error(&err, path, msg);
    for (size_t k = 0; k < t->total * sizeof *p; k++)
        ck_assert_int_eq(((unsigned char *)p)[k], 0x5a);
    free(p);
}

/* A checkpoint holding a NaN or an infinity is refused, naming the tensor and the element (it was
 * evaluated silently, with undefined behaviour in the integer cast of xb_expf). */
START_TEST(test_checkpoint_with_nan_or_infinite_weights_is_refused) {
    ParamTable t;
    make_table(&t, 24, 1);
    float *a = random_params(&t, 6);
    const float bad[2] = {NAN, -INFINITY};
    const char *what[2] = {"NaN", "an infinity"};
    for (int v = 0; v < 2; v++) {
        a[t.info[1].offset + 5] = bad[v];
        XbError err;
        const char *path = tmp_path("m.safetensors");
        ck_assert_int_eq(checkpoint_save(path, &t, a, META, 3, &err), 0);
        char msg[512];
        snprintf(msg, sizeof msg,
                 "tensor '%s' holds %s at element 5 (valid: finite numbers; the run that wrote "
                 "it diverged, or the file is damaged)",
                 t.info[1].name, what[v]);
        float *p = malloc(t.total * sizeof *p); /* (the tensors before it may have been read) */
        xb_error_clear(&err);
        ck_assert_int_eq(checkpoint_load(path, &t, p, &err), -1);
        ck_assert_error(&err, path, msg);
        free(p);
    }
    free(a);
    params_free(&t);
}
END_TEST

START_TEST(test_checkpoint_shape_mismatch_names_tensor_and_both_shapes) {
    ParamTable big, small;
    make_table(&big, 48, 1);
    make_table(&small, 24, 1);
    float *a = random_params(&big, 5);
    XbError err;
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(checkpoint_save(path, &big, a, META, 3, &err), 0);
    expect_load_error(&small, path,
                      "tensor 'blocks.0.mixer.qkv.weight' has shape [48, 8] in the file, the "
                      "model expects [24, 8]");
    free(a);
    params_free(&big);
    params_free(&small);
}
END_TEST

START_TEST(test_checkpoint_missing_and_extra_tensors_are_errors) {
    ParamTable with, without;
    make_table(&with, 24, 1);
    make_table(&without, 24, 0);
    float *a = random_params(&with, 6), *c = random_params(&without, 6);
    XbError err;
    const char *p_with = tmp_path("with.safetensors"), *p_without = tmp_path("without.safetensors");
    ck_assert_int_eq(checkpoint_save(p_with, &with, a, META, 3, &err), 0);
    ck_assert_int_eq(checkpoint_save(p_without, &without, c, NULL, 0, &err), 0);
    expect_load_error(&without, p_with,
                      "tensor 'head.weight' in the file is not a parameter of this model");
    expect_load_error(&with, p_without, "tensor 'head.weight' is missing from the file");
    free(a);
    free(c);
    params_free(&with);
    params_free(&without);
}
END_TEST

START_TEST(test_checkpoint_truncated_file_is_an_error) {
    ParamTable t;
    make_table(&t, 24, 1);
    float *a = random_params(&t, 7);
    XbError err;
    const char *path = tmp_path("m.safetensors");
    ck_assert_int_eq(checkpoint_save(path, &t, a, META, 3, &err), 0);
    size_t n;
    unsigned char *b = read_all(path, &n);
    ck_assert_int_eq(truncate(path, (off_t)(n - 5)), 0);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | b[i];
    const unsigned long long data = n - 8 - h; /* bytes of tensor data in the full file */
    char msg[512];
    snprintf(msg, sizeof msg,
             "tensor 'head.weight' has data_offsets [%llu, %llu] beyond the end of the data "
             "section (%llu bytes): the file is truncated or corrupt",
             data - 96, data, data - 5);
    expect_load_error(&t, path, msg);

    ck_assert_int_eq(truncate(path, 5), 0);
    expect_load_error(&t, path,
                      "the file is too short to be a safetensors file (5 bytes; the 8-byte header "
                      "length is missing)");
    ck_assert_int_eq(truncate(path, 40), 0);
    snprintf(msg, sizeof msg,
             "header length %llu is larger than the rest of the file (32 bytes): not a "
             "safetensors file, or truncated",
             (unsigned long long)h);
    expect_load_error(&t, path, msg);
    free(b);
    free(a);
    params_free(&t);
}
END_TEST

START_TEST(test_checkpoint_malformed_headers_give_clear_errors) {
    ParamTable t;
    params_init(&t);
    params_add2(&t, "a", 2, 3, INIT_ZEROS, 0.0f, 1);
    params_add1(&t, "b", 2, INIT_ZEROS, 0.0f, 0);
    unsigned char data[64] = {0};
    const char *path = tmp_path("bad.safetensors");
    static const struct {
        const char *header;
        size_t n_data;
        const char *msg;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},", 32,
         "the header is not valid JSON (syntax error at header byte 57)"},
        {"[1, 2]", 0, "the header is not a JSON object"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
         20, "tensor 'a' has dtype F16 in the file, the model expects F32"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
         24, "tensors 'a' and 'b' overlap in the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
         32, "tensor 'a' has data_offsets [0, 20] (20 bytes), but F32 of its shape needs 24 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}}", 32,
         "tensor 'a' has data_offsets [24, 0]: the end is before the beginning"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
         30,
         "tensor 'b' has data_offsets [24, 32] beyond the end of the data section (30 bytes): "
         "the file is truncated or corrupt"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,24]}}", 32,
         "tensor 'a': \"shape\" is missing or not an array of non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", 32,
         "tensor 'a': \"data_offsets\" is missing or not a pair of non-negative integers"},
        {"{\"a\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", 32,
         "tensor 'a': \"dtype\" is missing or not a string"},
        {"{\"a\":[0,24]}", 32, "tensor 'a': header entry is not an object"},
        {"{\"__metadata__\":{\"step\":400}}", 0,
         "\"__metadata__\" value of 'step' is not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
         24, "tensor 'a' appears twice in the header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_safetensors(path, cases[i].header, data, cases[i].n_data);
        expect_load_error(&t, path, cases[i].msg);
    }
    write_safetensors(path, "", data, 0);
    expect_load_error(&t, path, "header length is 0: not a safetensors file");
    params_free(&t);
}
END_TEST

START_TEST(test_checkpoint_unreadable_file_names_path_and_reason) {
    ParamTable t;
    make_table(&t, 24, 1);
    const char *path = tmp_path("nope.safetensors");
    expect_load_error(&t, path, "cannot read the checkpoint: No such file or directory");
    expect_load_error(&t, g_dir, "cannot read the checkpoint: Is a directory");
    params_free(&t);
}
END_TEST

static Suite *checkpoint_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_checkpoint_round_trip_keeps_every_bit);
    tcase_add_test(tc, test_checkpoint_file_parses_as_safetensors_independently);
    tcase_add_test(tc, test_checkpoint_loads_handwritten_safetensors_file);
    tcase_add_test(tc, test_checkpoint_save_without_metadata_omits_it_and_loads);
    tcase_add_test(tc, test_checkpoint_save_is_atomic_and_leaves_no_tmp);
    tcase_add_test(tc, test_checkpoint_shape_mismatch_names_tensor_and_both_shapes);
    tcase_add_test(tc, test_checkpoint_missing_and_extra_tensors_are_errors);
    tcase_add_test(tc, test_checkpoint_truncated_file_is_an_error);
    tcase_add_test(tc, test_checkpoint_malformed_headers_give_clear_errors);
    tcase_add_test(tc, test_checkpoint_unreadable_file_names_path_and_reason);
    tcase_add_test(tc, test_checkpoint_with_nan_or_infinite_weights_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(checkpoint_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
