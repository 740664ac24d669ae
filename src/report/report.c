/* Run reports: building the JSON document from a RunReport, writing it atomically, reading it
 * back with errors that name the file and the place. The layout is report.schema.json. */
#include "report/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/fileio.h"
#include "core/xassert.h"
#include "tasks/task.h"
#include "version.h"

#define REPORT_MAX_INT 9007199254740992.0 /* 2^53: larger integers do not survive a double */

/* ---- building ---- */

static cJSON *add(cJSON *obj, const char *key, cJSON *item) {
    XB_ASSERT(item);
    XB_ASSERT(cJSON_AddItemToObject(obj, key, item));
    return item;
}

static cJSON *json_int(int64_t v) {
    XB_ASSERT((double)v <= REPORT_MAX_INT && (double)v >= -REPORT_MAX_INT);
    return cJSON_CreateNumber((double)v);
}

static cJSON *json_u64(uint64_t v) {
    XB_ASSERT((double)v <= REPORT_MAX_INT);
    return cJSON_CreateNumber((double)v);
}

/* NaN and infinities are not JSON: they become null. */
static cJSON *json_real(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *json_str(const char *s) {
    XB_ASSERT(s);
    return cJSON_CreateString(s);
}

static int is_status(const char *s) {
    static const char *const statuses[] = {"ok", "diverged", "interrupted", "failed"};
    for (size_t i = 0; s && i < XB_ARRAY_LEN(statuses); i++)
        if (strcmp(s, statuses[i]) == 0) return 1;
    return 0;
}

static int is_hex16(const char *s) {
    if (strlen(s) != 16) return 0;
    for (int i = 0; i < 16; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* The JSON value of identity field f of id (an object field's: an empty object to fill). */
static cJSON *identity_value(const DatasetId *id, const DatasetIdField *f) {
    char hex[17];
    switch (f->kind) {
    case DATASET_ID_STR:
        return json_str(dataset_id_text(id, f));
    case DATASET_ID_INT:
        return json_int(f->v.i);
    case DATASET_ID_NUM:
        return json_real(f->v.x);
    case DATASET_ID_BOOL:
        return cJSON_CreateBool(f->v.i != 0);
    case DATASET_ID_HASH:
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)f->v.hash);
        return json_str(hex);
    case DATASET_ID_LIST: {
        cJSON *a = cJSON_CreateArray();
        XB_ASSERT(a);
        for (int k = 0; k < f->n; k++) cJSON_AddItemToArray(a, json_int(f->v.list[k]));
        return a;
    }
    case DATASET_ID_OBJECT:
        return cJSON_CreateObject();
    default:
        XB_ASSERT(!"a kind of identity field");
        return NULL;
    }
}

cJSON *report_dataset_identity(const DatasetId *id) {
    char why[200];
    XB_ASSERT(dataset_id_check(id, why, sizeof why) == 0);
    cJSON *top = cJSON_CreateObject(), *object = NULL;
    XB_ASSERT(top);
    for (int i = 0; i < id->n; i++) {
        const DatasetIdField *f = &id->f[i];
        cJSON *v = add(f->depth ? object : top, f->key, identity_value(id, f));
        if (f->kind == DATASET_ID_OBJECT) object = v;
    }
    return top;
}

char *report_dataset_identity_text(const DatasetId *id) {
    cJSON *j = report_dataset_identity(id);
    char *text = report_json_print_compact(j);
    cJSON_Delete(j);
    return text;
}

static cJSON *build_dataset(const RunReport *r) {
    cJSON *d = cJSON_CreateObject();
    XB_ASSERT(d && r->dataset_id);
    add(d, "identity", report_dataset_identity(r->dataset_id));
    add(d, "checksum", json_str(r->dataset_checksum));
    add(d, "vocab_size", json_int(r->vocab_size));
    add(d, "n_classes", json_int(r->n_classes));
    if (r->sequence) add(d, "targets", json_str("per-position"));
    cJSON *splits = add(d, "splits", cJSON_CreateObject());
    add(splits, "train", json_int(r->train_n));
    add(splits, "val", json_int(r->val_n));
    add(splits, "test", json_int(r->test_n));
    return d;
}

static cJSON *build_evals(const RunReport *r) {
    cJSON *a = cJSON_CreateArray();
    XB_ASSERT(a && r->n_evals >= 0 && (r->n_evals == 0 || r->evals));
    for (int i = 0; i < r->n_evals; i++) {
        const EvalRecord *e = &r->evals[i];
        cJSON *o = cJSON_CreateObject();
        XB_ASSERT(o);
        add(o, "step", json_int(e->step));
        add(o, "lr", json_real(e->lr));
        add(o, "train_loss", json_real(e->train_loss));
        add(o, "val_loss", json_real(e->val_loss));
        add(o, "val_accuracy", json_real(e->val_acc));
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *build_memory(const MemoryReport *m) {
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    const size_t parts[] = {m->parameters, m->gradients, m->optimizer, m->activations,
                            m->scratch_peak};
    static const char *const names[] = {"parameters", "gradients", "optimizer", "activations",
                                        "scratch_peak"};
    _Static_assert(XB_ARRAY_LEN(names) == sizeof parts / sizeof parts[0], "a name for each part");
    uint64_t total = 0;
    for (size_t i = 0; i < XB_ARRAY_LEN(parts); i++) {
        add(o, names[i], json_u64(parts[i]));
        total += parts[i];
    }
    add(o, "planned_total", json_u64(total));
    return o;
}

/* The calibration: the threads' share of the cores over training and evaluation (what compare
 * divides steps/s by), its parts, and the probe's figures (null without a probe). */
static cJSON *build_calibration(const RunReport *r) {
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o && r->usage);
    const CalibUsage *u = r->usage;
    const CalibProbe *p = r->probe;
    add(o, "core_share", json_real(calib_core_share(u)));
    add(o, "window_s", json_real(u->wall_s));
    add(o, "cpu_s", json_real(u->cpu_s));
    add(o, "on_core_s", json_real(u->on_core_s));
    add(o, "waiting_s", json_real(u->waiting_s));
    add(o, "threads", json_int(r->threads));
    add(o, "sgemm_gflops_per_s", json_real(p ? p->sgemm_gflops : NAN));
    add(o, "triad_gb_per_s", json_real(p ? p->triad_gbs : NAN));
    add(o, "sgemm_n", json_int(CALIB_SGEMM_N));
    add(o, "triad_bytes", json_u64(3 * sizeof(float) * (uint64_t)CALIB_TRIAD_N));
    add(o, "probe_s", json_real(p ? p->use.wall_s : NAN));
    add(o, "probe_core_share", json_real(p ? calib_core_share(&p->use) : NAN));
    return o;
}

static cJSON *build_measured(const RunReport *r) {
    cJSON *o = cJSON_CreateObject();
    XB_ASSERT(o);
    add(o, "wall_s", json_real(r->wall_s));
    add(o, "train_s", json_real(r->train_s));
    add(o, "eval_s", json_real(r->eval_s));
    add(o, "steps_per_s", json_real(r->steps_per_s));
    add(o, "tokens_per_s", json_real(r->tokens_per_s));
    add(o, "step_s_median", json_real(r->step_s_median));
    add(o, "peak_rss", json_u64(r->mem.peak_rss));
    add(o, "comm_s", json_real(r->comm_s));
    if (r->profile) { /* training steps, per kernel family (core/profile.h) */
        cJSON *pr = add(o, "profile", cJSON_CreateObject());
        double in_kernels = 0.0;
        for (int k = 0; k < PROF_N; k++) {
            cJSON *f = add(pr, prof_name((ProfKind)k), cJSON_CreateObject());
            add(f, "forward_s", json_real(r->profile[k][0]));
            add(f, "backward_s", json_real(r->profile[k][1]));
            in_kernels += r->profile[k][0] + r->profile[k][1];
        }
        add(pr, "other_s", json_real(r->train_s > in_kernels ? r->train_s - in_kernels : 0.0));
        add(pr, "regions", json_u64((uint64_t)r->profile_regions));
    }
    if (r->usage) add(o, "calibration", build_calibration(r));
    cJSON *el = add(o, "eval_elapsed_s", cJSON_CreateArray());
    for (int i = 0; i < r->n_evals; i++) cJSON_AddItemToArray(el, json_real(r->evals[i].elapsed_s));
    return o;
}

cJSON *report_build(const RunReport *r) {
    XB_ASSERT(r->config && cJSON_IsObject(r->config));
    XB_ASSERT(is_status(r->status));
    XB_ASSERT(is_hex16(r->config_hash));

    cJSON *doc = cJSON_CreateObject();
    XB_ASSERT(doc);
    add(doc, "schema_version", json_int(XB_REPORT_SCHEMA_VERSION));
    cJSON *tool = add(doc, "tool", cJSON_CreateObject());
    add(tool, "name", json_str("xformer-bench"));
    add(tool, "version", json_str(XB_VERSION));
    add(tool, "git_commit", json_str(XB_GIT_COMMIT));
    add(doc, "run_id", json_str(r->run_id));
    add(doc, "status", json_str(r->status));
    add(doc, "status_message", json_str(r->status_message));
    add(doc, "config", cJSON_Duplicate(r->config, 1));
    add(doc, "config_hash", json_str(r->config_hash));
    cJSON *env = add(doc, "environment", report_environment(r->threads));
    cJSON_AddNumberToObject(env, "processes", r->processes > 0 ? r->processes : 1);
    add(doc, "dataset", build_dataset(r));

    cJSON *model = add(doc, "model", cJSON_CreateObject());
    add(model, "mixer", json_str(r->mixer));
    add(model, "mixer_classes", json_str(r->mixer_classes));
    add(model, "parameters", json_u64(r->n_params));

    cJSON *tr = add(doc, "training", cJSON_CreateObject());
    add(tr, "steps", json_int(r->steps_done));
    /* best_step < 0: no evaluation happened, so there is no best step. */
    add(tr, "best_step", r->best_step >= 0 ? json_int(r->best_step) : cJSON_CreateNull());
    add(tr, "best_val_accuracy", json_real(r->best_val_acc));

    add(doc, "evals", build_evals(r));

    cJSON *test = add(doc, "test", cJSON_CreateObject());
    add(test, "accuracy", json_real(r->test_acc));
    add(test, "loss", json_real(r->test_loss));
    add(test, "majority_baseline", json_real(r->majority_baseline));
    if (r->sequence) add(test, "exact_match", json_real(r->test_exact));

    cJSON *fl = add(doc, "flops", cJSON_CreateObject());
    XB_ASSERT(r->flops_fwd_analytic <= UINT64_MAX - r->flops_bwd_analytic);
    add(fl, "analytic_forward_step", json_u64(r->flops_fwd_analytic));
    add(fl, "analytic_backward_step", json_u64(r->flops_bwd_analytic));
    add(fl, "analytic_train_step", json_u64(r->flops_fwd_analytic + r->flops_bwd_analytic));
    add(fl, "counted_train_step", json_u64(r->flops_step_counted));
    add(fl, "counted_total", json_u64(r->flops_total_counted));

    add(doc, "memory", build_memory(&r->mem));
    add(doc, "measured", build_measured(r));
    return doc;
}

cJSON *report_from_run(const ExperimentConfig *cfg, const Dataset *ds, const RunResult *res,
                       const RunContext *ctx) {
    cJSON *config = cfg_to_json(cfg);
    RunReport rr = {.config = config,
                    .status = res->status,
                    .threads = ctx->threads,
                    .processes = ctx->processes,
                    .dataset_id = &ds->id,
                    .dataset_checksum = ds->checksum,
                    .train_n = ds->train.n,
                    .val_n = ds->val.n,
                    .test_n = ds->test.n,
                    .vocab_size = ds->vocab_size,
                    .n_classes = ds->n_classes,
                    .sequence = ds->sequence,
                    .mixer = cfg_mixer_name(cfg),
                    .mixer_classes = cfg_mixer_classes(cfg),
                    .n_params = res->n_params,
                    .evals = res->evals,
                    .n_evals = res->n_evals,
                    .steps_done = res->steps_done,
                    .best_step = res->best_step,
                    .best_val_acc = res->best_val_acc,
                    .test_acc = res->test_acc,
                    .test_loss = res->test_loss,
                    .majority_baseline = dataset_majority(&ds->test, ds->n_classes),
                    .test_exact = res->test_exact,
                    .flops_fwd_analytic = res->flops_fwd,
                    .flops_bwd_analytic = res->flops_bwd,
                    .flops_step_counted = res->flops_step_counted,
                    .flops_total_counted = res->flops_total,
                    .mem = res->mem,
                    .wall_s = ctx->wall_s,
                    .train_s = res->train_s,
                    .eval_s = res->eval_s,
                    .steps_per_s = res->steps_per_s,
                    .tokens_per_s = res->tokens_per_s,
                    .comm_s = res->comm_s,
                    .profile = (const double(*)[2])res->profile,
                    .profile_regions = res->profile_regions,
                    .step_s_median = res->step_s_median,
                    .usage = ctx->usage,
                    .probe = ctx->probe};
    snprintf(rr.config_hash, sizeof rr.config_hash, "%016llx", (unsigned long long)cfg_hash(cfg));
    snprintf(rr.run_id, sizeof rr.run_id, "%s", ctx->run_id);
    snprintf(rr.status_message, sizeof rr.status_message, "%s", res->status_message);
    rr.mem.peak_rss = ctx->peak_rss;
    cJSON *doc = report_build(&rr);
    cJSON_Delete(config);
    return doc;
}

void report_set_checkpoint(cJSON *doc, const char *file, const char *fnv1a64, int64_t step) {
    cJSON_DeleteItemFromObject(doc, "checkpoint");
    if (!file) {
        XB_ASSERT(cJSON_AddNullToObject(doc, "checkpoint"));
        return;
    }
    cJSON *c = cJSON_AddObjectToObject(doc, "checkpoint");
    XB_ASSERT(c && fnv1a64);
    add(c, "file", json_str(file));
    add(c, "fnv1a64", json_str(fnv1a64));
    add(c, "step", cJSON_CreateNumber((double)step));
}

/* ---- writing ---- */

int report_write(const char *path, const cJSON *doc, XbError *err) {
    AtomicFile af;
    if (fileio_open(&af, path, "report", err)) return -1;
    char *text = report_json_print(doc);
    fputs(text, af.f);
    free(text);
    return fileio_commit(&af, err);
}

/* ---- reading ---- */

/* 1-based line and column (in bytes) of text[pos]. */
static void line_col(const char *text, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

const char *report_json_type_name(const cJSON *j) {
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an object";
}

static int check_schema_version(const char *path, const cJSON *doc, XbError *err) {
    const char *key = "schema_version";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    if (!v)
        return xb_error_set(err, path, 0, 0, key,
                            "missing (every xformer-bench report has one; this xformer-bench reads "
                            "version %d)",
                            XB_REPORT_SCHEMA_VERSION);
    const double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !(fabs(d) <= REPORT_MAX_INT) || d != floor(d))
        return xb_error_set(err, path, 0, 0, key, "expected an integer, found %s",
                            cJSON_IsNumber(v) ? "a fractional number" : report_json_type_name(v));
    if (d != XB_REPORT_SCHEMA_VERSION)
        return xb_error_set(err, path, 0, 0, key,
                            "report schema_version %.0f is not supported (this xformer-bench reads "
                            "version %d)",
                            d, XB_REPORT_SCHEMA_VERSION);
    return 0;
}

int report_read(const char *path, cJSON **out, XbError *err) {
    *out = NULL;
    size_t n = 0;
    char *text = fileio_read_all(path, XB_FILE_REPORT, NULL, &n, err);
    if (!text) return -1;
    size_t lead = 0;
    while (lead < n && strchr(" \t\r\n", text[lead])) lead++;
    if (lead == n) {
        free(text);
        return xb_error_set(err, path, 0, 0, NULL, "the file is empty (expected a JSON report)");
    }
    const char *nul = memchr(text, '\0', n);
    /* cJSON's error pointer can be far from the mistake; the strict checker finds the byte. */
    size_t check_pos = 0;
    const char *check_msg = NULL;
    const int bad = nul ? 1 : report_json_check(text, n, &check_pos, &check_msg) != 0;
    const char *end = NULL;
    cJSON *doc = bad ? NULL : cJSON_ParseWithLengthOpts(text, n + 1, &end, 1);
    if (!doc) {
        const size_t pos = nul   ? (size_t)(nul - text)
                           : bad ? check_pos
                           : end ? (size_t)(end - text)
                                 : 0;
        int line, col;
        line_col(text, pos, &line, &col);
        const unsigned char c = (unsigned char)text[pos];
        if (nul)
            xb_error_set(err, path, line, col, NULL, "JSON syntax error: NUL byte");
        else if (bad && check_msg == report_json_not_utf8)
            xb_error_set(
                err, path, line, col, NULL,
                "JSON syntax error: byte 0x%02x is not UTF-8 (RFC 8259 JSON is UTF-8 text)", c);
        else if (bad && check_msg == report_json_too_deep)
            xb_error_set(err, path, line, col, NULL,
                         "JSON nested more than %d levels deep (a report nests at most 4)",
                         REPORT_JSON_MAX_DEPTH);
        else if (c == '\0')
            xb_error_set(err, path, line, col, NULL, "JSON syntax error: unexpected end of file");
        else if (c >= 0x20 && c < 0x7f)
            xb_error_set(err, path, line, col, NULL, "JSON syntax error at '%c'", c);
        else
            xb_error_set(err, path, line, col, NULL, "JSON syntax error at byte 0x%02x", c);
        free(text);
        return -1;
    }
    free(text);
    if (!cJSON_IsObject(doc)) {
        xb_error_set(err, path, 0, 0, NULL, "expected a JSON object (a report), found %s",
                     report_json_type_name(doc));
        cJSON_Delete(doc);
        return -1;
    }
    if (check_schema_version(path, doc, err)) {
        cJSON_Delete(doc);
        return -1;
    }
    *out = doc;
    return 0;
}

/* ---- peak RSS ---- */

int report_reset_peak_rss(void) {
#ifdef __GLIBC__
    /* Memory an earlier run of this process freed and the allocator kept (a sweep runs its points
     * in one process) would count toward this run's peak: how much of it glibc keeps depends on
     * the sizes freed before (its mmap threshold follows them), so give it back first. */
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    const int ok = fputs("5", f) >= 0; /* 5: reset the peak resident set size to the current */
    return fclose(f) == 0 && ok ? 0 : -1;
}

size_t report_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        int found = 0;
        while (!found && fgets(line, sizeof line, f))
            found = sscanf(line, "VmHWM: %llu kB", &kb) == 1;
        fclose(f);
        if (found) return (size_t)kb * 1024;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0) return (size_t)ru.ru_maxrss * 1024;
    return 0;
}
