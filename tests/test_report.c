/* Reports: every field with its type, NaN as null, nothing run-dependent outside "measured", the
 * document conforms to report.schema.json, atomic writes, exact round trips, and read errors that
 * name the file and the place.
 *
 * With XB_REPORT_OUT=DIR in the environment, test_report_sample_reports_read_back also leaves its
 * sample reports in DIR: the report-schema test (validate_report.py) validates them with
 * python3-jsonschema. */
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
#include "fixture_files.h"
#include "report/report.h"
#include "tasks/task.h"
#include "version.h"

#define FIX XB_FIXTURES "/report/"
#define SCHEMA_PATH XB_FIXTURES "/../../src/report/report.schema.json"

/* ---- a sample run ---- */

typedef struct Sample {
    RunReport r;
    CalibUsage usage;
    CalibProbe probe;
    EvalRecord ev[3];
    DatasetId id;
    cJSON *config;
} Sample;

enum { SAMPLE_OK, SAMPLE_DIVERGED, SAMPLE_NO_EVAL, N_SAMPLES };
static const char *const SAMPLE_NAMES[] = {"ok", "diverged", "no_eval"};

static void sample_init(Sample *s, int variant) {
    memset(s, 0, sizeof *s);
    s->config = cJSON_Parse("{\"experiment\": {\"name\": \"listops-full\", \"seed\": 1, "
                            "\"steps\": 300}, \"model\": {\"mixer\": \"full\", \"d_model\": 64, "
                            "\"heads\": 4, \"dropout\": 0.1}, \"tags\": [\"a\", \"b\"]}");
    ck_assert_ptr_nonnull(s->config);
    RunReport *r = &s->r;
    r->config = s->config;
    snprintf(r->config_hash, sizeof r->config_hash, "0123456789abcdef");
    snprintf(r->run_id, sizeof r->run_id, "listops-full-s1");
    r->status = "ok";
    r->threads = 2;
    dataset_id_str(&s->id, "task", "listops");
    dataset_id_str(&s->id, "generator", "listops");
    dataset_id_int(&s->id, "seed", 7);
    dataset_id_begin(&s->id, "options");
    dataset_id_int(&s->id, "max_depth", 3);
    dataset_id_int(&s->id, "max_length", 128);
    dataset_id_end(&s->id);
    r->dataset_id = &s->id;
    r->dataset_checksum = "fedcba9876543210";
    r->train_n = 1000, r->val_n = 100, r->test_n = 200, r->vocab_size = 20, r->n_classes = 10;
    r->mixer = "full";
    r->mixer_classes = "dense";
    r->n_params = 123456;
    for (int i = 0; i < 3; i++) {
        s->ev[i].step = 100 * (i + 1);
        s->ev[i].lr = 1e-3 / 3.0 * (i + 1);
        s->ev[i].train_loss = 2.3 - 0.1 * i;
        s->ev[i].val_loss = 2.25 - 0.1 * i;
        s->ev[i].val_acc = 0.1 + 0.2 * i; /* 0.1 + 0.2: not representable in 15 digits */
        s->ev[i].elapsed_s = 1.5 * (i + 1);
    }
    r->evals = s->ev;
    r->n_evals = 3;
    r->steps_done = 300, r->best_step = 300, r->best_val_acc = s->ev[2].val_acc;
    r->test_acc = 0.4375, r->test_loss = 1.875, r->majority_baseline = 0.171;
    r->flops_fwd_analytic = 3000000000ULL, r->flops_bwd_analytic = 6000000000ULL;
    r->flops_step_counted = 9000012345ULL;
    r->flops_total_counted = 9007199254740991ULL; /* 2^53 - 1: the largest allowed */
    r->mem = (MemoryReport){.parameters = 493824,
                            .gradients = 493824,
                            .optimizer = 987648,
                            .activations = 5000000,
                            .scratch_peak = 65536,
                            .peak_rss = 50000000};
    r->wall_s = 12.5, r->train_s = 10.25, r->eval_s = 2.0, r->steps_per_s = 29.3;
    r->tokens_per_s = 29.3 * 32 * 128;
    s->usage = (CalibUsage){.wall_s = 11.0, .cpu_s = 15.0, .on_core_s = 15.0, .waiting_s = 5.0};
    s->probe = (CalibProbe){.sgemm_gflops = 150.0,
                            .triad_gbs = 40.0,
                            .use = {.wall_s = 0.0625, .on_core_s = 0.1, .waiting_s = 0.025}};
    r->usage = &s->usage, r->probe = &s->probe;
    if (variant == SAMPLE_DIVERGED) {
        r->usage = NULL, r->probe = NULL; /* no calibration is valid too (older reports) */
        r->status = "diverged";
        snprintf(r->status_message, sizeof r->status_message,
                 "training loss became NaN at step 212");
        s->ev[1].train_loss = NAN;
        s->ev[1].val_loss = INFINITY;
        r->n_evals = 2;
        r->steps_done = 212, r->best_step = 100, r->best_val_acc = s->ev[0].val_acc;
        r->test_acc = NAN, r->test_loss = -INFINITY;
    } else if (variant == SAMPLE_NO_EVAL) {
        r->status = "interrupted";
        snprintf(r->status_message, sizeof r->status_message, "interrupted at step 12");
        r->evals = NULL;
        r->n_evals = 0;
        r->steps_done = 12, r->best_step = -1, r->best_val_acc = NAN;
        r->test_acc = NAN, r->test_loss = NAN;
        r->flops_total_counted = 0;
        r->steps_per_s = NAN;
        r->probe = NULL;                               /* no probe after a signal */
        s->usage.on_core_s = s->usage.waiting_s = NAN; /* no schedstat */
    }
}

static void sample_free(Sample *s) { cJSON_Delete(s->config); }

/* doc at a dotted path ("training.best_step", "evals.0.lr"). */
static const cJSON *at(const cJSON *doc, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *j = doc;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, atoi(k))
                             : cJSON_GetObjectItemCaseSensitive(j, k);
    return j;
}

static int is_integer(const cJSON *j) {
    return cJSON_IsNumber(j) && j->valuedouble == floor(j->valuedouble);
}

/* ---- fields and values ---- */

START_TEST(test_report_build_has_every_field_with_its_type) {
    /* i integer, n number, s string, o object, a array */
    static const struct {
        const char *path;
        char type;
    } fields[] = {
        {"schema_version", 'i'},
        {"tool", 'o'},
        {"tool.name", 's'},
        {"tool.version", 's'},
        {"tool.git_commit", 's'},
        {"run_id", 's'},
        {"status", 's'},
        {"status_message", 's'},
        {"config", 'o'},
        {"config_hash", 's'},
        {"environment", 'o'},
        {"environment.cpu", 's'},
        {"environment.cores", 'i'},
        {"environment.threads", 'i'},
        {"environment.blas", 's'},
        {"environment.blas_threads", 'i'},
        {"environment.compiler", 's'},
        {"environment.os", 's'},
        {"dataset", 'o'},
        {"dataset.identity", 'o'},
        {"dataset.checksum", 's'},
        {"dataset.vocab_size", 'i'},
        {"dataset.n_classes", 'i'},
        {"dataset.splits", 'o'},
        {"dataset.splits.train", 'i'},
        {"dataset.splits.val", 'i'},
        {"dataset.splits.test", 'i'},
        {"model", 'o'},
        {"model.mixer", 's'},
        {"model.mixer_classes", 's'},
        {"model.parameters", 'i'},
        {"training", 'o'},
        {"training.steps", 'i'},
        {"training.best_step", 'i'},
        {"training.best_val_accuracy", 'n'},
        {"evals", 'a'},
        {"evals.0.step", 'i'},
        {"evals.0.lr", 'n'},
        {"evals.0.train_loss", 'n'},
        {"evals.0.val_loss", 'n'},
        {"evals.0.val_accuracy", 'n'},
        {"test", 'o'},
        {"test.accuracy", 'n'},
        {"test.loss", 'n'},
        {"test.majority_baseline", 'n'},
        {"flops", 'o'},
        {"flops.analytic_forward_step", 'i'},
        {"flops.analytic_backward_step", 'i'},
        {"flops.analytic_train_step", 'i'},
        {"flops.counted_train_step", 'i'},
        {"flops.counted_total", 'i'},
        {"memory", 'o'},
        {"memory.parameters", 'i'},
        {"memory.gradients", 'i'},
        {"memory.optimizer", 'i'},
        {"memory.activations", 'i'},
        {"memory.scratch_peak", 'i'},
        {"memory.planned_total", 'i'},
        {"measured", 'o'},
        {"measured.wall_s", 'n'},
        {"measured.train_s", 'n'},
        {"measured.eval_s", 'n'},
        {"measured.steps_per_s", 'n'},
        {"measured.tokens_per_s", 'n'},
        {"measured.peak_rss", 'i'},
        {"measured.eval_elapsed_s", 'a'},
    };
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const cJSON *j = at(doc, fields[i].path);
        ck_assert_msg(j != NULL, "%s is missing", fields[i].path);
        int ok = 0;
        switch (fields[i].type) {
        case 'i':
            ok = is_integer(j);
            break;
        case 'n':
            ok = cJSON_IsNumber(j);
            break;
        case 's':
            ok = cJSON_IsString(j);
            break;
        case 'o':
            ok = cJSON_IsObject(j);
            break;
        case 'a':
            ok = cJSON_IsArray(j);
            break;
        }
        ck_assert_msg(ok, "%s is not of type '%c'", fields[i].path, fields[i].type);
    }
    /* And nothing else at the top level: 16 sections. */
    ck_assert_int_eq(cJSON_GetArraySize(doc), 16);
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

START_TEST(test_report_build_values_come_from_the_run) {
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    ck_assert_int_eq(at(doc, "schema_version")->valueint, XB_REPORT_SCHEMA_VERSION);
    ck_assert_str_eq(at(doc, "tool.name")->valuestring, "xformer-bench");
    ck_assert_str_eq(at(doc, "tool.version")->valuestring, XB_VERSION);
    ck_assert_str_eq(at(doc, "tool.git_commit")->valuestring, XB_GIT_COMMIT);
    ck_assert_str_eq(at(doc, "run_id")->valuestring, "listops-full-s1");
    ck_assert_str_eq(at(doc, "status")->valuestring, "ok");
    ck_assert_str_eq(at(doc, "status_message")->valuestring, "");
    ck_assert_str_eq(at(doc, "config_hash")->valuestring, "0123456789abcdef");
    ck_assert_int_eq(at(doc, "environment.threads")->valueint, 2);
    ck_assert_int_eq(at(doc, "environment.cores")->valueint, (int)sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert(strlen(at(doc, "environment.blas")->valuestring) > 0);

    /* The config is a deep copy: equal, and unaffected by later changes to the original. */
    const cJSON *cfg = at(doc, "config");
    ck_assert_ptr_ne(cfg, s.config);
    ck_assert(cJSON_Compare(cfg, s.config, 1));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(s.config, "model"), "d_model",
                              cJSON_CreateNumber(128));
    ck_assert_int_eq(at(doc, "config.model.d_model")->valueint, 64);

    ck_assert_str_eq(at(doc, "dataset.identity.generator")->valuestring, "listops");
    ck_assert_int_eq(at(doc, "dataset.identity.options.max_length")->valueint, 128);
    ck_assert_str_eq(at(doc, "dataset.checksum")->valuestring, "fedcba9876543210");
    ck_assert_int_eq(at(doc, "dataset.splits.train")->valueint, 1000);
    ck_assert_int_eq(at(doc, "dataset.splits.val")->valueint, 100);
    ck_assert_int_eq(at(doc, "dataset.splits.test")->valueint, 200);
    ck_assert_int_eq(at(doc, "dataset.vocab_size")->valueint, 20);
    ck_assert_int_eq(at(doc, "dataset.n_classes")->valueint, 10);
    ck_assert_str_eq(at(doc, "model.mixer")->valuestring, "full");
    ck_assert_str_eq(at(doc, "model.mixer_classes")->valuestring, "dense");
    ck_assert_double_eq(at(doc, "model.parameters")->valuedouble, 123456);
    ck_assert_double_eq(at(doc, "training.steps")->valuedouble, 300);
    ck_assert_double_eq(at(doc, "training.best_step")->valuedouble, 300);
    ck_assert_double_eq(at(doc, "training.best_val_accuracy")->valuedouble, 0.1 + 0.2 * 2);

    ck_assert_int_eq(cJSON_GetArraySize(at(doc, "evals")), 3);
    ck_assert_int_eq(cJSON_GetArraySize(at(doc, "measured.eval_elapsed_s")), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(at(doc, "evals"), i);
        ck_assert_int_eq(cJSON_GetArraySize(e), 5);
        ck_assert_double_eq(at(e, "step")->valuedouble, (double)s.ev[i].step);
        ck_assert_double_eq(at(e, "lr")->valuedouble, s.ev[i].lr);
        ck_assert_double_eq(at(e, "train_loss")->valuedouble, s.ev[i].train_loss);
        ck_assert_double_eq(at(e, "val_loss")->valuedouble, s.ev[i].val_loss);
        ck_assert_double_eq(at(e, "val_accuracy")->valuedouble, s.ev[i].val_acc);
        ck_assert_double_eq(cJSON_GetArrayItem(at(doc, "measured.eval_elapsed_s"), i)->valuedouble,
                            s.ev[i].elapsed_s);
    }
    ck_assert_double_eq(at(doc, "test.accuracy")->valuedouble, 0.4375);
    ck_assert_double_eq(at(doc, "test.loss")->valuedouble, 1.875);
    ck_assert_double_eq(at(doc, "test.majority_baseline")->valuedouble, 0.171);

    ck_assert_double_eq(at(doc, "flops.analytic_forward_step")->valuedouble, 3e9);
    ck_assert_double_eq(at(doc, "flops.analytic_backward_step")->valuedouble, 6e9);
    ck_assert_double_eq(at(doc, "flops.analytic_train_step")->valuedouble, 9e9);
    ck_assert_double_eq(at(doc, "flops.counted_train_step")->valuedouble, 9000012345.0);
    ck_assert_double_eq(at(doc, "flops.counted_total")->valuedouble, 9007199254740991.0);

    ck_assert_double_eq(at(doc, "memory.parameters")->valuedouble, 493824);
    ck_assert_double_eq(at(doc, "memory.gradients")->valuedouble, 493824);
    ck_assert_double_eq(at(doc, "memory.optimizer")->valuedouble, 987648);
    ck_assert_double_eq(at(doc, "memory.activations")->valuedouble, 5000000);
    ck_assert_double_eq(at(doc, "memory.scratch_peak")->valuedouble, 65536);
    ck_assert_double_eq(at(doc, "memory.planned_total")->valuedouble,
                        493824 + 493824 + 987648 + 5000000 + 65536);

    ck_assert_double_eq(at(doc, "measured.wall_s")->valuedouble, 12.5);
    ck_assert_double_eq(at(doc, "measured.train_s")->valuedouble, 10.25);
    ck_assert_double_eq(at(doc, "measured.eval_s")->valuedouble, 2.0);
    ck_assert_double_eq(at(doc, "measured.steps_per_s")->valuedouble, 29.3);
    ck_assert_double_eq(at(doc, "measured.tokens_per_s")->valuedouble, 29.3 * 32 * 128);
    ck_assert_double_eq(at(doc, "measured.peak_rss")->valuedouble, 50000000);
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

START_TEST(test_report_build_writes_nan_and_infinity_as_null) {
    Sample s;
    sample_init(&s, SAMPLE_DIVERGED);
    cJSON *doc = report_build(&s.r);
    ck_assert(cJSON_IsNull(at(doc, "evals.1.train_loss")));     /* NaN */
    ck_assert(cJSON_IsNull(at(doc, "evals.1.val_loss")));       /* +inf */
    ck_assert(cJSON_IsNull(at(doc, "test.accuracy")));          /* NaN */
    ck_assert(cJSON_IsNull(at(doc, "test.loss")));              /* -inf */
    ck_assert(cJSON_IsNumber(at(doc, "evals.1.val_accuracy"))); /* finite stays a number */
    ck_assert_str_eq(at(doc, "status")->valuestring, "diverged");
    ck_assert_str_eq(at(doc, "status_message")->valuestring,
                     "training loss became NaN at step 212");

    char *text = report_json_print(doc);
    ck_assert_ptr_null(strstr(text, "nan"));
    ck_assert_ptr_null(strstr(text, "inf"));
    cJSON *back = cJSON_Parse(text);
    ck_assert(cJSON_Compare(doc, back, 1));
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(doc);
    sample_free(&s);

    /* No evaluation at all: no best step, no accuracy, empty arrays. */
    sample_init(&s, SAMPLE_NO_EVAL);
    doc = report_build(&s.r);
    ck_assert(cJSON_IsNull(at(doc, "training.best_step")));
    ck_assert(cJSON_IsNull(at(doc, "training.best_val_accuracy")));
    ck_assert(cJSON_IsNull(at(doc, "measured.steps_per_s")));
    ck_assert_int_eq(cJSON_GetArraySize(at(doc, "evals")), 0);
    ck_assert_int_eq(cJSON_GetArraySize(at(doc, "measured.eval_elapsed_s")), 0);
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

/* The calibration: the threads' share of the cores and its parts, the probe's figures and sizes;
 * null where they were not measured. */
START_TEST(test_report_build_writes_the_calibration) {
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    static const struct {
        const char *key;
        double v;
    } want[] = {{"core_share", 0.75},
                {"window_s", 11.0},
                {"cpu_s", 15.0},
                {"on_core_s", 15.0},
                {"waiting_s", 5.0},
                {"threads", 2},
                {"sgemm_gflops_per_s", 150.0},
                {"triad_gb_per_s", 40.0},
                {"sgemm_n", CALIB_SGEMM_N},
                {"triad_bytes", 12.0 * CALIB_TRIAD_N},
                {"probe_s", 0.0625},
                {"probe_core_share", 0.8}};
    const cJSON *c = at(doc, "measured.calibration");
    ck_assert_int_eq(cJSON_GetArraySize(c), (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_msg(cJSON_IsNumber(at(c, want[i].key)), "%s", want[i].key);
        ck_assert_double_eq_tol(at(c, want[i].key)->valuedouble, want[i].v, 1e-12);
    }
    cJSON_Delete(doc);
    sample_free(&s);
    sample_init(&s, SAMPLE_NO_EVAL); /* no probe, no schedstat: null */
    doc = report_build(&s.r);
    c = at(doc, "measured.calibration");
    static const char *const nulls[] = {"core_share",         "on_core_s",      "waiting_s",
                                        "sgemm_gflops_per_s", "triad_gb_per_s", "probe_s",
                                        "probe_core_share"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        ck_assert_msg(cJSON_IsNull(at(c, nulls[i])), "%s", nulls[i]);
    ck_assert_double_eq(at(c, "cpu_s")->valuedouble, 15.0);
    cJSON_Delete(doc);
    sample_free(&s);
    sample_init(&s, SAMPLE_DIVERGED); /* none: no calibration object */
    doc = report_build(&s.r);
    ck_assert_ptr_null(at(doc, "measured.calibration"));
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

/* Two identical runs differ only in timings and peak RSS: with "measured" removed, their reports
 * are equal byte for byte. */
START_TEST(test_report_build_keeps_run_dependent_values_in_measured) {
    Sample a, b;
    sample_init(&a, SAMPLE_OK);
    sample_init(&b, SAMPLE_OK);
    b.r.wall_s = 99.0, b.r.train_s = 80.0, b.r.eval_s = 19.0;
    b.r.steps_per_s = 3.0, b.r.tokens_per_s = 1000.0, b.r.mem.peak_rss = 1 << 30;
    for (int i = 0; i < 3; i++) b.ev[i].elapsed_s = 7.0 * i;
    cJSON *da = report_build(&a.r), *db = report_build(&b.r);
    ck_assert(!cJSON_Compare(da, db, 1));
    cJSON_DeleteItemFromObject(da, "measured");
    cJSON_DeleteItemFromObject(db, "measured");
    char *ta = report_json_print(da), *tb = report_json_print(db);
    ck_assert_str_eq(ta, tb);
    free(ta);
    free(tb);
    cJSON_Delete(da);
    cJSON_Delete(db);
    sample_free(&a);
    sample_free(&b);
}
END_TEST

/* ---- the document conforms to report.schema.json ----
 * A checker for the subset of JSON Schema 2020-12 that report.schema.json uses; it refuses any
 * other keyword, so the schema cannot grow beyond what this test understands. The full validation
 * with python3-jsonschema is the report-schema test. */

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    ck_assert_msg(j != NULL, "%s is not valid JSON", path);
    return j;
}

static int type_matches(const char *type, const cJSON *v) {
    if (!strcmp(type, "object")) return cJSON_IsObject(v);
    if (!strcmp(type, "array")) return cJSON_IsArray(v);
    if (!strcmp(type, "string")) return cJSON_IsString(v);
    if (!strcmp(type, "number")) return cJSON_IsNumber(v);
    if (!strcmp(type, "integer")) return is_integer(v);
    if (!strcmp(type, "null")) return cJSON_IsNull(v);
    if (!strcmp(type, "boolean")) return cJSON_IsBool(v);
    ck_abort_msg("unknown type '%s' in the schema", type);
    return 0;
}

/* 0 when v conforms to schema s; otherwise 1 with why = "path: reason". */
static int conforms(const cJSON *root, const cJSON *s, const cJSON *v, const char *where, char *why,
                    size_t n) {
    static const char *const annotations[] = {"$schema",     "$id",   "title",
                                              "description", "$defs", "pattern"};
    for (const cJSON *k = s->child; k; k = k->next) {
        const char *kw = k->string;
        char sub[512];
        int annotation = 0;
        for (size_t i = 0; i < sizeof annotations / sizeof annotations[0]; i++)
            annotation |= !strcmp(kw, annotations[i]);
        if (annotation) continue;
        if (!strcmp(kw, "$ref")) {
            ck_assert(!strncmp(k->valuestring, "#/$defs/", 8));
            const cJSON *def = at(cJSON_GetObjectItem(root, "$defs"), k->valuestring + 8);
            ck_assert_ptr_nonnull(def);
            if (conforms(root, def, v, where, why, n)) return 1;
        } else if (!strcmp(kw, "type")) {
            int ok = 0;
            if (cJSON_IsString(k)) ok = type_matches(k->valuestring, v);
            for (const cJSON *t = cJSON_IsArray(k) ? k->child : NULL; t; t = t->next)
                ok |= type_matches(t->valuestring, v);
            if (!ok) return snprintf(why, n, "%s: wrong type", where), 1;
        } else if (!strcmp(kw, "const")) {
            if (!cJSON_Compare(k, v, 1)) return snprintf(why, n, "%s: not the const", where), 1;
        } else if (!strcmp(kw, "enum")) {
            int ok = 0;
            for (const cJSON *e = k->child; e; e = e->next) ok |= cJSON_Compare(e, v, 1);
            if (!ok) return snprintf(why, n, "%s: not in the enum", where), 1;
        } else if (!strcmp(kw, "minimum")) {
            if (cJSON_IsNumber(v) && v->valuedouble < k->valuedouble)
                return snprintf(why, n, "%s: below the minimum", where), 1;
        } else if (!strcmp(kw, "maximum")) {
            if (cJSON_IsNumber(v) && v->valuedouble > k->valuedouble)
                return snprintf(why, n, "%s: above the maximum", where), 1;
        } else if (!strcmp(kw, "minLength")) {
            if (cJSON_IsString(v) && (double)strlen(v->valuestring) < k->valuedouble)
                return snprintf(why, n, "%s: too short", where), 1;
        } else if (!strcmp(kw, "required")) {
            for (const cJSON *r = k->child; r && cJSON_IsObject(v); r = r->next)
                if (!cJSON_GetObjectItemCaseSensitive(v, r->valuestring))
                    return snprintf(why, n, "%s: '%s' is missing", where, r->valuestring), 1;
        } else if (!strcmp(kw, "properties")) {
            for (const cJSON *p = k->child; p && cJSON_IsObject(v); p = p->next) {
                const cJSON *pv = cJSON_GetObjectItemCaseSensitive(v, p->string);
                snprintf(sub, sizeof sub, "%s.%s", where, p->string);
                if (pv && conforms(root, p, pv, sub, why, n)) return 1;
            }
        } else if (!strcmp(kw, "additionalProperties")) {
            ck_assert(cJSON_IsFalse(k));
            const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
            for (const cJSON *c = cJSON_IsObject(v) ? v->child : NULL; c; c = c->next)
                if (!cJSON_GetObjectItemCaseSensitive(props, c->string))
                    return snprintf(why, n, "%s: unexpected key '%s'", where, c->string), 1;
        } else if (!strcmp(kw, "items")) {
            int i = 0;
            for (const cJSON *c = cJSON_IsArray(v) ? v->child : NULL; c; c = c->next, i++) {
                snprintf(sub, sizeof sub, "%s.%d", where, i);
                if (conforms(root, k, c, sub, why, n)) return 1;
            }
        } else {
            ck_abort_msg("schema keyword '%s' is not understood by this test", kw);
        }
    }
    return 0;
}

START_TEST(test_report_build_conforms_to_the_schema) {
    cJSON *schema = load_json(SCHEMA_PATH);
    ck_assert_str_eq(cJSON_GetObjectItem(schema, "$schema")->valuestring,
                     "https://json-schema.org/draft/2020-12/schema");
    for (int v = 0; v < N_SAMPLES; v++) {
        Sample s;
        sample_init(&s, v);
        cJSON *doc = report_build(&s.r);
        char why[600] = "";
        ck_assert_msg(!conforms(schema, schema, doc, "$", why, sizeof why), "%s report: %s",
                      SAMPLE_NAMES[v], why);
        cJSON_Delete(doc);
        sample_free(&s);
    }
    cJSON_Delete(schema);
}
END_TEST

/* The schema is strict: unknown keys, missing sections and NaN-as-string are refused (proves
 * additionalProperties false is set at every level except config and dataset.identity). */
START_TEST(test_report_schema_refuses_unknown_and_missing_fields) {
    cJSON *schema = load_json(SCHEMA_PATH);
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    char why[600];
    static const char *const objects[] = {"",
                                          "tool",
                                          "environment",
                                          "dataset",
                                          "dataset.splits",
                                          "model",
                                          "training",
                                          "evals.0",
                                          "test",
                                          "flops",
                                          "memory",
                                          "measured",
                                          "measured.calibration"};
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++) {
        cJSON *copy = cJSON_Duplicate(doc, 1);
        cJSON *o = objects[i][0] ? (cJSON *)at(copy, objects[i]) : copy;
        cJSON_AddStringToObject(o, "hostname", "box");
        ck_assert_msg(conforms(schema, schema, copy, "$", why, sizeof why),
                      "extra key accepted in '%s'", objects[i]);
        cJSON_Delete(copy);
    }
    /* free-form objects */
    cJSON *copy = cJSON_Duplicate(doc, 1);
    cJSON_AddStringToObject((cJSON *)at(copy, "config"), "anything", "x");
    cJSON_AddStringToObject((cJSON *)at(copy, "dataset.identity"), "files", "x");
    ck_assert_msg(!conforms(schema, schema, copy, "$", why, sizeof why), "%s", why);
    cJSON_Delete(copy);
    for (const cJSON *c = doc->child; c; c = c->next) {
        copy = cJSON_Duplicate(doc, 1);
        cJSON_DeleteItemFromObject(copy, c->string);
        ck_assert_msg(conforms(schema, schema, copy, "$", why, sizeof why),
                      "report without '%s' accepted", c->string);
        cJSON_Delete(copy);
    }
    copy = cJSON_Duplicate(doc, 1);
    cJSON_ReplaceItemInObject((cJSON *)at(copy, "test"), "accuracy", cJSON_CreateString("nan"));
    ck_assert(conforms(schema, schema, copy, "$", why, sizeof why));
    ck_assert_str_eq(why, "$.test.accuracy: wrong type");
    cJSON_Delete(copy);
    cJSON_Delete(doc);
    sample_free(&s);
    cJSON_Delete(schema);
}
END_TEST

/* ---- writing and reading ---- */

static char g_dir[256];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/xb_report_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        struct dirent *e;
        char p[1024];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        remove(path);
    }
}

static void teardown(void) { rm_rf(g_dir); }

static const char *tmp_path(const char *name) {
    static char p[4][700];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

/* The names in dir, sorted, joined by spaces. */
static const char *listing(const char *dir) {
    static char out[2048];
    char names[32][256];
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < 32)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(out, " ");
        strcat(out, names[i]);
    }
    return out;
}

static const char *err_str(const XbError *e) {
    static char buf[2048];
    xb_error_format(e, buf, sizeof buf);
    return buf;
}

START_TEST(test_report_write_then_read_round_trips_exactly) {
    for (int v = 0; v < N_SAMPLES; v++) {
        Sample s;
        sample_init(&s, v);
        cJSON *doc = report_build(&s.r);
        /* Doubles that cJSON's own printer would not round-trip. */
        cJSON_AddItemToObject(cJSON_GetObjectItem(doc, "config"), "x",
                              cJSON_CreateNumber(0.7000000000000001));
        cJSON_AddItemToObject(cJSON_GetObjectItem(doc, "config"), "y",
                              cJSON_CreateNumber(9007199254740992.0));
        cJSON_AddItemToObject(cJSON_GetObjectItem(doc, "config"), "z",
                              cJSON_CreateNumber(-2.5e-310));
        cJSON_AddItemToObject(cJSON_GetObjectItem(doc, "config"), "s",
                              cJSON_CreateString("quote \" backslash \\ tab \t nl \n \x01 é"));
        XbError err;
        xb_error_clear(&err);
        const char *path = tmp_path("r.json");
        ck_assert_msg(report_write(path, doc, &err) == 0, "%s", err_str(&err));
        cJSON *back = NULL;
        ck_assert_msg(report_read(path, &back, &err) == 0, "%s", err_str(&err));
        ck_assert(cJSON_Compare(doc, back, 1));
        /* cJSON_Compare allows a relative DBL_EPSILON; check the bits of the hard ones. */
        static const char *const exact[] = {"config.x",
                                            "config.y",
                                            "config.z",
                                            "evals.2.val_accuracy",
                                            "evals.0.lr",
                                            "flops.counted_total",
                                            "measured.tokens_per_s"};
        for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
            const cJSON *a = at(doc, exact[i]), *b = at(back, exact[i]);
            if (!a) continue; /* no evals in the no_eval sample */
            ck_assert_msg(memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) == 0,
                          "%s: %.17g read back as %.17g", exact[i], a->valuedouble, b->valuedouble);
        }
        cJSON_Delete(back);
        cJSON_Delete(doc);
        sample_free(&s);
    }
}
END_TEST

START_TEST(test_report_write_is_atomic_and_leaves_no_tmp) {
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    XbError err;
    xb_error_clear(&err);
    const char *path = tmp_path("r.json");
    ck_assert_int_eq(report_write(path, doc, &err), 0);
    ck_assert_str_eq(listing(g_dir), "r.json");
    /* Replacing an existing report. */
    cJSON_ReplaceItemInObject(doc, "run_id", cJSON_CreateString("second"));
    ck_assert_int_eq(report_write(path, doc, &err), 0);
    ck_assert_str_eq(listing(g_dir), "r.json");
    cJSON *back = NULL;
    ck_assert_int_eq(report_read(path, &back, &err), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(back, "run_id")->valuestring, "second");
    cJSON_Delete(back);

    /* The target is a directory: the rename fails, the error names it, no .tmp is left. */
    const char *dir = tmp_path("adir");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(report_write(dir, doc, &err), -1);
    char want[2048];
    snprintf(want, sizeof want, "%s: cannot rename '%s.XXXXXX' to '%s': Is a directory", dir, dir,
             dir);
    ck_assert_str_eq(err_str(&err), want);
    ck_assert_str_eq(listing(g_dir), "adir r.json");
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

/* The temporary is a name of its own made with O_EXCL: a symlink planted where the old fixed name
 * PATH.tmp was (in a shared, world-writable directory) is neither followed nor replaced. */
START_TEST(test_report_write_never_follows_a_planted_symlink) {
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    XbError err;
    xb_error_clear(&err);
    const char *victim = tmp_path("victim");
    FILE *f = fopen(victim, "w");
    fputs("keep", f);
    fclose(f);
    ck_assert_int_eq(symlink(victim, tmp_path("r.json.tmp")), 0);
    ck_assert_int_eq(report_write(tmp_path("r.json"), doc, &err), 0);
    char got[16] = "";
    f = fopen(victim, "r");
    ck_assert_ptr_nonnull(fgets(got, sizeof got, f));
    fclose(f);
    ck_assert_str_eq(got, "keep");
    ck_assert_str_eq(listing(g_dir), "r.json r.json.tmp victim");
    unlink(tmp_path("r.json.tmp"));
    unlink(victim);
    unlink(tmp_path("r.json"));
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

START_TEST(test_report_write_creates_missing_directories) {
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    XbError err;
    xb_error_clear(&err);
    const char *path = tmp_path("a/b//c/r.json");
    ck_assert_msg(report_write(path, doc, &err) == 0, "%s", err_str(&err));
    ck_assert_str_eq(listing(tmp_path("a/b/c")), "r.json");
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

START_TEST(test_report_write_to_unwritable_directory_fails_and_leaves_no_file) {
    Sample s;
    sample_init(&s, SAMPLE_OK);
    cJSON *doc = report_build(&s.r);
    XbError err;
    xb_error_clear(&err);
    char want[2048];

    /* A parent that is a regular file (fails even as root). */
    FILE *f = fopen(tmp_path("plain"), "w");
    fclose(f);
    const char *path = tmp_path("plain/r.json");
    ck_assert_int_eq(report_write(path, doc, &err), -1);
    snprintf(want, sizeof want, "%s: cannot write the report (%s.XXXXXX): Not a directory", path,
             path);
    ck_assert_str_eq(err_str(&err), want);
    ck_assert_int_eq(err.code, XB_EXIT_RUNFAIL);
    path = tmp_path("plain/sub/r.json");
    ck_assert_int_eq(report_write(path, doc, &err), -1);
    snprintf(want, sizeof want, "%s: cannot create directory '%s': Not a directory", path,
             tmp_path("plain/sub"));
    ck_assert_str_eq(err_str(&err), want);
    ck_assert_str_eq(listing(g_dir), "plain");

    /* A directory without write permission (root ignores permissions: skipped then). */
    if (geteuid() != 0) {
        const char *ro = tmp_path("ro");
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        path = tmp_path("ro/r.json");
        ck_assert_int_eq(report_write(path, doc, &err), -1);
        snprintf(want, sizeof want, "%s: cannot write the report (%s.XXXXXX): Permission denied",
                 path, path);
        ck_assert_str_eq(err_str(&err), want);
        ck_assert_str_eq(listing(ro), "");
    }
    cJSON_Delete(doc);
    sample_free(&s);
}
END_TEST

START_TEST(test_report_read_errors_name_file_and_position) {
    static const struct {
        const char *file, *msg; /* msg after "PATH" */
    } cases[] = {
        {"missing.json", ": cannot read the report: No such file or directory"},
        {"empty.json", ": the file is empty (expected a JSON report)"},
        {"syntax_error.json", ":4:18: JSON syntax error at ','"},
        {"truncated.json", ":2:1: JSON syntax error: unexpected end of file"},
        {"not_object.json", ": expected a JSON object (a report), found an array"},
        {"no_schema_version.json", ": schema_version: missing (every xformer-bench report has "
                                   "one; this xformer-bench reads version 1)"},
        {"schema_version_string.json", ": schema_version: expected an integer, found a string"},
        {"schema_version_fraction.json",
         ": schema_version: expected an integer, found a fractional number"},
        {"schema_version_7.json", ": schema_version: report schema_version 7 is not supported "
                                  "(this xformer-bench reads version 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], want[2048];
        snprintf(path, sizeof path, "%s%s", FIX, cases[i].file);
        snprintf(want, sizeof want, "%s%s", path, cases[i].msg);
        XbError err;
        xb_error_clear(&err);
        cJSON *doc = (cJSON *)1;
        ck_assert_int_eq(report_read(path, &doc, &err), -1);
        ck_assert_ptr_null(doc);
        ck_assert_str_eq(err_str(&err), want);
        ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    }
    /* A directory is unreadable too. */
    XbError err;
    cJSON *doc;
    ck_assert_int_eq(report_read(FIX, &doc, &err), -1);
    ck_assert_str_eq(err.msg, "cannot read the report: Is a directory");
}
END_TEST

static void expect_read_error(const char *path, const char *msg) {
    XbError err;
    xb_error_clear(&err);
    cJSON *doc = (cJSON *)1;
    ck_assert_int_eq(report_read(path, &doc, &err), -1);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    char want[2048];
    snprintf(want, sizeof want, "%s%s", path, msg);
    ck_assert_str_eq(err_str(&err), want);
}

/* JSON nested past the limit was reported as a syntax error at its bracket; it is a limit. */
START_TEST(test_report_nested_too_deeply_says_so) {
    const char *path = tmp_path("deep.json");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"a\": ", f);
    for (int i = 0; i < 5000; i++) fputc('[', f);
    for (int i = 0; i < 5000; i++) fputc(']', f);
    fputs("}\n", f);
    ck_assert_int_eq(fclose(f), 0);
    expect_read_error(path,
                      ":1:70: JSON nested more than 64 levels deep (a report nests at most 4)");
    /* 63 levels below the object still read */
    f = fopen(path, "w");
    fputs("{\"schema_version\": 1, \"a\": ", f);
    for (int i = 0; i < 63; i++) fputc('[', f);
    for (int i = 0; i < 63; i++) fputc(']', f);
    fputs("}\n", f);
    ck_assert_int_eq(fclose(f), 0);
    XbError err;
    cJSON *doc = NULL;
    ck_assert_int_eq(report_read(path, &doc, &err), 0);
    cJSON_Delete(doc);
}
END_TEST

/* RFC 8259 8.1: JSON is UTF-8; a Latin-1 byte in a string made a report that Python's json
 * refuses and compare, table and plot read. */
START_TEST(test_report_that_is_not_utf8_is_refused) {
    const char *path = tmp_path("latin1.json");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"schema_version\": 1,\n \"run_id\": \"r\xe9sum\xe9\"}\n", f);
    ck_assert_int_eq(fclose(f), 0);
    expect_read_error(path, ":2:14: JSON syntax error: byte 0xe9 is not UTF-8 (RFC 8259 JSON is "
                            "UTF-8 text)");
    f = fopen(path, "w"); /* overlong, surrogate, cut short */
    fputs("{\"schema_version\": 1, \"a\": \"\xe2\x82\xac \xf0\x9f\x98\x80\", \"b\": \"\xc0\xaf\"}",
          f);
    ck_assert_int_eq(fclose(f), 0);
    expect_read_error(path, ":1:46: JSON syntax error: byte 0xc0 is not UTF-8 (RFC 8259 JSON is "
                            "UTF-8 text)");
    f = fopen(path, "w");
    fputs("{\"schema_version\": 1, \"a\": \"\xed\xa0\x80\"}", f);
    ck_assert_int_eq(fclose(f), 0);
    expect_read_error(path, ":1:29: JSON syntax error: byte 0xed is not UTF-8 (RFC 8259 JSON is "
                            "UTF-8 text)");
    f = fopen(path, "w");
    fputs("{\"schema_version\": 1, \"a\": \"\xe2\x82", f);
    ck_assert_int_eq(fclose(f), 0);
    expect_read_error(path, ":1:29: JSON syntax error: byte 0xe2 is not UTF-8 (RFC 8259 JSON is "
                            "UTF-8 text)");
    f = fopen(path, "w"); /* every plane of UTF-8 reads */
    fputs("{\"schema_version\": 1, \"a\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}", f);
    ck_assert_int_eq(fclose(f), 0);
    XbError err;
    cJSON *doc = NULL;
    ck_assert_int_eq(report_read(path, &doc, &err), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "a")->valuestring,
                     "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    cJSON_Delete(doc);
}
END_TEST

/* A report that never ends (/dev/zero) was read until the memory ran out. */
START_TEST(test_report_that_is_not_a_file_or_too_large_is_refused) {
    expect_read_error("/dev/zero",
                      ": cannot read the report: it is a character device, not a regular file");
    const char *path = tmp_path("fifo.json");
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    expect_read_error(path, ": cannot read the report: it is a FIFO, not a regular file");
    ck_assert_int_eq(unlink(path), 0);
    path = tmp_path("huge.json");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(truncate(path, 17 << 20), 0); /* sparse: no disk space */
    expect_read_error(path, ": cannot read the report: it is 17 MiB, more than a report may be "
                            "(at most 16 MiB)");
    ck_assert_int_eq(unlink(path), 0);
}
END_TEST

START_TEST(test_report_peak_rss_grows_with_touched_memory) {
    const size_t before = report_peak_rss();
    ck_assert_uint_gt(before, 1 << 20);
    const size_t n = 128u << 20;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i += 4096) p[i] = (char)i;
    const size_t after = report_peak_rss();
    ck_assert_uint_ge(after, before);
    ck_assert_uint_ge(after, n); /* the 128 MiB are resident now */
    free(p);
}
END_TEST

/* A sweep runs its points in one process: a point's peak must not include memory an earlier point
 * freed and the allocator kept. glibc raises its mmap threshold to the size of a mapped block
 * that is freed, so a later, smaller block comes from the heap and stays resident after free. */
START_TEST(test_report_reset_peak_rss_leaves_out_memory_freed_before) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    ck_assert_int_eq(report_reset_peak_rss(), 0);
    const size_t start = report_peak_rss(); /* the resident set now */
    const size_t big = 24u << 20, small = 20u << 20;
    char *p = malloc(big); /* mapped, and freed: the threshold becomes 24 MiB */
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < big; i += 4096) p[i] = (char)i;
    free(p);
    char *q = malloc(small); /* from the heap now */
    ck_assert_ptr_nonnull(q);
    for (size_t i = 0; i < small; i += 4096) q[i] = (char)i;
    free(q);
    ck_assert_int_eq(report_reset_peak_rss(), 0);
    const size_t after = report_peak_rss();
    ck_assert_msg(after < start + (8u << 20),
                  "the peak after a reset is %zu MiB above the start: freed memory counted",
                  (after - start) >> 20);
#endif
}
END_TEST

/* Writes each sample report, reads it back; also into $XB_REPORT_OUT when set (for the
 * report-schema test). */
START_TEST(test_report_sample_reports_read_back) {
    const char *out = getenv("XB_REPORT_OUT");
    for (int v = 0; v < N_SAMPLES; v++) {
        Sample s;
        sample_init(&s, v);
        cJSON *doc = report_build(&s.r);
        char name[64], path[1024];
        snprintf(name, sizeof name, "sample_%s.json", SAMPLE_NAMES[v]);
        for (int k = 0; k < (out ? 2 : 1); k++) {
            if (k == 0)
                snprintf(path, sizeof path, "%s", tmp_path(name));
            else
                snprintf(path, sizeof path, "%s/%s", out, name);
            XbError err;
            xb_error_clear(&err);
            ck_assert_msg(report_write(path, doc, &err) == 0, "%s", err_str(&err));
            cJSON *back = NULL;
            ck_assert_msg(report_read(path, &back, &err) == 0, "%s", err_str(&err));
            ck_assert(cJSON_Compare(doc, back, 1));
            cJSON_Delete(back);
        }
        cJSON_Delete(doc);
        sample_free(&s);
    }
}
END_TEST

/* ---- dataset identities: the exact text `data` prints, and the report's object ---- */

/* The identity text of d as `data` prints it (owned by the caller). */
static char *identity_text(const Dataset *d) { return report_dataset_identity_text(&d->id); }

static void load_task(Dataset *d, const char *task, const char *const *kv, int n, uint64_t seed) {
    const OptValues v = fixture_task_opts(task, kv, n);
    XbError err;
    xb_error_clear(&err);
    const int rc = task_get(task_find(task))->load(d, &v, seed, "t.yaml", &err);
    char msg[1024] = "";
    if (rc) xb_error_format(&err, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
}

/* d's identity prints as want, and a report of d holds it as the same JSON object. */
static void assert_identity(const Dataset *d, const char *want) {
    char *text = identity_text(d);
    ck_assert_str_eq(text, want);
    Sample s;
    sample_init(&s, SAMPLE_OK);
    s.r.dataset_id = &d->id;
    cJSON *doc = report_build(&s.r);
    cJSON *parsed = cJSON_Parse(text);
    ck_assert_ptr_nonnull(parsed);
    ck_assert(cJSON_Compare(at(doc, "dataset.identity"), parsed, 1));
    cJSON_Delete(parsed);
    cJSON_Delete(doc);
    sample_free(&s);
    free(text);
}

START_TEST(test_identity_of_generated_data_is_pinned) {
    const char *lo[] = {"num_train",  "20", "num_val",    "5",  "num_test", "5",
                        "min_length", "10", "max_length", "30", "parens",   "1"};
    Dataset d;
    load_task(&d, "listops", lo, 12, 7);
    assert_identity(&d, "{\"task\":\"listops\",\"generator\":\"lra-listops\",\"source\":"
                        "\"generate\",\"seed\":7,\"num_train\":20,\"num_val\":5,\"num_test\":5,"
                        "\"min_length\":10,\"max_length\":30,\"max_depth\":10,\"max_args\":10,"
                        "\"parens\":true}");
    dataset_free(&d);
    const char *mq[] = {"num_train", "10", "num_val", "2", "num_test", "3"};
    load_task(&d, "mqar", mq, 6, 9007199254740991ULL); /* the largest seed a config takes */
    assert_identity(&d, "{\"task\":\"mqar\",\"generator\":\"multi-query-associative-recall\","
                        "\"seed\":9007199254740991,\"num_train\":10,\"num_val\":2,\"num_test\":3,"
                        "\"min_pairs\":32,\"max_pairs\":32,\"queries\":8,\"keys\":256,"
                        "\"values\":64}");
    dataset_free(&d);
}
END_TEST

/* Read from files: each file's hash in a "files" object (ListOps) or one hash (AAN), and the
 * directory as a JSON string however it is spelt. */
START_TEST(test_identity_of_files_names_them_and_escapes_the_directory) {
    char dir[64] = "/tmp/xb-id\"q\\-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *const names[] = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};
    for (int k = 0; k < 3; k++) fixture_put(dir, "", names[k], "Source\tTarget\n[MAX 2 9 ]\t9\n");
    fixture_put(dir, "", "new_aan_pairs.train.tsv", "1\tA\tB\tone\ttwo\n0\tC\tD\tx\ty\n");
    fixture_put(dir, "", "new_aan_pairs.eval.tsv", "0\tC\tD\tone\ttwo\n");
    fixture_put(dir, "", "new_aan_pairs.test.tsv", "1\tE\tF\tthree\tfour\n");
    char want[1024];
    const char *tail = dir + strlen("/tmp/xb-id\"q\\-"); /* mkdtemp's six characters */
    const char *lo[] = {"source", "files", "data_dir", dir};
    Dataset d;
    load_task(&d, "listops", lo, 4, 1);
    snprintf(want, sizeof want,
             "{\"task\":\"listops\",\"source\":\"files\",\"data_dir\":\"/tmp/xb-id\\\"q\\\\-%s\","
             "\"files\":{\"basic_train.tsv\":\"97c717227668ced9\",\"basic_val.tsv\":"
             "\"97c717227668ced9\",\"basic_test.tsv\":\"97c717227668ced9\"},\"parens\":false}",
             tail);
    assert_identity(&d, want);
    dataset_free(&d);
    const char *aan[] = {"source", "aan", "data_dir", dir, "max_bytes", "16"};
    load_task(&d, "retrieval", aan, 6, 1);
    snprintf(want, sizeof want,
             "{\"task\":\"retrieval\",\"source\":\"aan\",\"data_dir\":\"/tmp/xb-id\\\"q\\\\-%s\","
             "\"files\":\"76c424702d224d2c\",\"max_bytes\":16}",
             tail);
    assert_identity(&d, want);
    dataset_free(&d);
    fixture_rmdir(dir);
}
END_TEST

/* However long (up to an option's 511 bytes) and however many characters need escaping, the
 * directory is in the identity whole. */
START_TEST(test_identity_holds_the_whole_data_dir_however_long) {
    char dir[512] = "/tmp/xb-id-long-XXXXXX", want[2048], escaped[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const size_t top = strlen(dir);
    while (strlen(dir) + 21 < 490) /* 484 bytes: fixture_put takes paths below 512 */
        strcat(dir, "/\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"q");
    const char *const names[] = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};
    for (int k = 0; k < 3; k++) fixture_put(dir, "", names[k], "Source\tTarget\n[MAX 2 9 ]\t9\n");
    size_t n = 0;
    for (const char *c = dir; *c; c++) {
        if (*c == '"') escaped[n++] = '\\';
        escaped[n++] = *c;
    }
    escaped[n] = '\0';
    const char *lo[] = {"source", "files", "data_dir", dir};
    Dataset d;
    load_task(&d, "listops", lo, 4, 1);
    snprintf(want, sizeof want,
             "{\"task\":\"listops\",\"source\":\"files\",\"data_dir\":\"%s\",\"files\":{"
             "\"basic_train.tsv\":\"97c717227668ced9\",\"basic_val.tsv\":\"97c717227668ced9\","
             "\"basic_test.tsv\":\"97c717227668ced9\"},\"parens\":false}",
             escaped);
    assert_identity(&d, want);
    dataset_free(&d);
    dir[top] = '\0';
    fixture_rmdir(dir);
}
END_TEST

/* Identity number k of test_dataset_validate_refuses_an_identity_the_report_cannot_hold. */
static void odd_identity(DatasetId *id, int k) {
    memset(id, 0, sizeof *id);
    if (k == 1 || k == 2) { /* the task's name not first, or not a string */
        if (k == 1) dataset_id_str(id, "name", "parity");
        if (k == 2) dataset_id_int(id, "task", 1);
        return;
    }
    if (k == 0) return; /* no fields */
    dataset_id_str(id, "task", "parity");
    if (k == 3 || k == 7 || k == 8) { /* a key twice; nested at the top; an unknown kind */
        dataset_id_int(id, "a", 1);
        dataset_id_int(id, k == 3 ? "a" : "b", 2);
        if (k == 7) id->f[2].depth = 1;
        if (k == 8) id->f[2].kind = DATASET_ID_KINDS;
        return;
    }
    dataset_id_begin(id, "files");
    dataset_id_hash(id, "a", 1);
    if (k == 4) dataset_id_hash(id, "a", 2); /* a key twice in one object */
    if (k == 6) return;                      /* an object left open */
    dataset_id_end(id);
    dataset_id_begin(id, "more"); /* k == 5: the same key in two objects is fine */
    dataset_id_hash(id, "a", 1);
    dataset_id_end(id);
}

/* dataset_validate holds every dataset to an identity the report can hold: at least a field, the
 * task's name first, no key twice at the top or within an object, fields of known kinds nested
 * only in objects. */
START_TEST(test_dataset_validate_refuses_an_identity_the_report_cannot_hold) {
    const char *kv[] = {"num_train", "4", "num_val", "2", "num_test", "2", "max_length", "40"};
    static const char *const want[] = {
        "t.yaml: the dataset's identity has 0 fields (valid: 1 to 40)",
        "t.yaml: the dataset's identity starts with the key \"name\" (valid: \"task\", the "
        "task's name)",
        "t.yaml: the dataset's identity has a \"task\" that is not a string (valid: the task's "
        "name)",
        "t.yaml: the dataset's identity has the key \"a\" twice",
        "t.yaml: the dataset's identity has the key \"a\" twice in \"files\"",
        "",
        "t.yaml: the dataset's identity has an object left open",
        "t.yaml: the dataset's identity field 2 (\"b\") is nested where no object is open",
        "t.yaml: the dataset's identity field 2 (\"b\") is of no known kind",
    };
    Dataset d;
    load_task(&d, "parity", kv, 8, 1);
    for (int k = 0; k < (int)(sizeof want / sizeof want[0]); k++) {
        odd_identity(&d.id, k);
        XbError err;
        xb_error_clear(&err);
        char msg[1024] = "";
        if (dataset_validate(&d, "t.yaml", &err)) xb_error_format(&err, msg, sizeof msg);
        ck_assert_msg(!strcmp(msg, want[k]), "%d: %s", k, msg);
    }
    dataset_free(&d);
}
END_TEST

/* Pathfinder's generator settings: integers, numbers as %g prints them, the list of margins. */
START_TEST(test_identity_of_generated_pathfinder_pins_numbers_and_margins) {
    const char *p128[] = {"resolution", "128",     "difficulty", "intermediate", "num_train",
                          "2",          "num_val", "1",          "num_test",     "1"};
    Dataset d;
    load_task(&d, "pathfinder", p128, 10, 3);
    assert_identity(&d, "{\"task\":\"pathfinder\",\"source\":\"generate\",\"generator\":"
                        "\"linsley-snakes2\",\"seed\":3,\"resolution\":128,\"difficulty\":"
                        "\"intermediate\",\"num_train\":2,\"num_val\":1,\"num_test\":1,"
                        "\"contour_length\":9,\"distractors\":11,\"distractor_length\":3,"
                        "\"paddle_length\":5,\"thickness\":1.5,\"margins\":[2,3],\"padding\":1,"
                        "\"marker_radius\":3,\"seed_distance\":20,\"continuity\":1.8,"
                        "\"contrast\":0.9}");
    dataset_free(&d);
    const char *p32[] = {"num_train", "4", "num_val", "2", "num_test", "2"};
    load_task(&d, "pathfinder", p32, 6, 3);
    assert_identity(&d, "{\"task\":\"pathfinder\",\"source\":\"generate\",\"generator\":"
                        "\"linsley-snakes2\",\"seed\":3,\"resolution\":32,\"difficulty\":"
                        "\"hard\",\"num_train\":4,\"num_val\":2,\"num_test\":2,"
                        "\"contour_length\":14,\"distractors\":5,\"distractor_length\":4,"
                        "\"paddle_length\":2,\"thickness\":0.5,\"margins\":[1,1],\"padding\":1,"
                        "\"marker_radius\":1.5,\"seed_distance\":7,\"continuity\":1,"
                        "\"contrast\":1.5}");
    dataset_free(&d);
}
END_TEST

static Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("build");
    tcase_add_test(tc, test_report_build_has_every_field_with_its_type);
    tcase_add_test(tc, test_report_build_values_come_from_the_run);
    tcase_add_test(tc, test_report_build_writes_nan_and_infinity_as_null);
    tcase_add_test(tc, test_report_build_writes_the_calibration);
    tcase_add_test(tc, test_report_build_keeps_run_dependent_values_in_measured);
    tcase_add_test(tc, test_report_build_conforms_to_the_schema);
    tcase_add_test(tc, test_report_schema_refuses_unknown_and_missing_fields);
    suite_add_tcase(s, tc);
    tc = tcase_create("io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_report_write_then_read_round_trips_exactly);
    tcase_add_test(tc, test_report_write_is_atomic_and_leaves_no_tmp);
    tcase_add_test(tc, test_report_write_creates_missing_directories);
    tcase_add_test(tc, test_report_write_never_follows_a_planted_symlink);
    tcase_add_test(tc, test_report_write_to_unwritable_directory_fails_and_leaves_no_file);
    tcase_add_test(tc, test_report_read_errors_name_file_and_position);
    tcase_add_test(tc, test_report_nested_too_deeply_says_so);
    tcase_add_test(tc, test_report_that_is_not_utf8_is_refused);
    tcase_add_test(tc, test_report_that_is_not_a_file_or_too_large_is_refused);
    tcase_add_test(tc, test_report_peak_rss_grows_with_touched_memory);
    tcase_add_test(tc, test_report_reset_peak_rss_leaves_out_memory_freed_before);
    tcase_add_test(tc, test_report_sample_reports_read_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("identity");
    tcase_add_test(tc, test_identity_of_generated_data_is_pinned);
    tcase_add_test(tc, test_identity_of_files_names_them_and_escapes_the_directory);
    tcase_add_test(tc, test_identity_holds_the_whole_data_dir_however_long);
    tcase_add_test(tc, test_dataset_validate_refuses_an_identity_the_report_cannot_hold);
    tcase_add_test(tc, test_identity_of_generated_pathfinder_pins_numbers_and_margins);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(report_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
