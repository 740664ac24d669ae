/* xformer-bench eval: a report's model rebuilt from its resolved config, its checkpoint loaded, a
 * split evaluated as `run` evaluated it; the accuracy next to the report's, the logits on request.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/rundir.h"
#include "config/config.h"
#include "core/error.h"
#include "core/xassert.h"
#include "report/report.h"
#include "tasks/export.h"
#include "tasks/task.h"
#include "train/trainer.h"

static const char *const USAGE =
    "usage: xformer-bench eval REPORT.json [--split test|val] [--logits FILE.npy] [--threads N]\n\n"
    "Rebuilds the model of a report from the resolved config it holds, loads its checkpoint\n"
    "(RUN_ID.safetensors beside the report: the best validation step's parameters), loads the\n"
    "task's data (which must have the report's checksum) and evaluates a split exactly as run\n"
    "evaluated it: the same batches, the same parameters, the same step. Prints the accuracy\n"
    "next to the report's; for a checkpoint that run wrote they are equal.\n\n"
    "  --split test|val   the split: test (default, as the report's test.accuracy) or val (the\n"
    "                     validation batches run used, as training.best_val_accuracy)\n"
    "  --logits FILE.npy  also write the classifier's logits as a NumPy float32 array in\n"
    "                     example order: (N, C), or (N, L, C) for a sequence task\n"
    "  --threads N        threads for OpenMP and OpenBLAS, 0 = all cores (default: the\n"
    "                     report's experiment.threads)\n\n"
    "Exit status: 0, or 2 bad input (an unreadable or malformed report, a missing checkpoint or\n"
    "one of another model, data that differ from the report's, an unwritable FILE.npy).\n";

/* The item at a dotted path ("training.best_step"), or NULL. */
static const cJSON *at(const cJSON *doc, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *j = doc;
    for (char *save = NULL, *p = strtok_r(buf, ".", &save); p && j; p = strtok_r(NULL, ".", &save))
        j = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, p) : NULL;
    return j;
}

static const char *want_string(const cJSON *doc, const char *key, const char *path, XbError *err) {
    const cJSON *j = at(doc, key);
    if (!j) {
        xb_error_set(err, path, 0, 0, key, "missing (expected a string)");
        return NULL;
    }
    if (!cJSON_IsString(j)) {
        xb_error_set(err, path, 0, 0, key, "expected a string, found %s", report_json_type_name(j));
        return NULL;
    }
    return j->valuestring;
}

/* A number; null reads as NaN (a run that did not get that far). */
static int want_number(const cJSON *doc, const char *key, const char *path, double *out,
                       XbError *err) {
    const cJSON *j = at(doc, key);
    if (!j) return xb_error_set(err, path, 0, 0, key, "missing (expected a number or null)");
    if (cJSON_IsNull(j)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return xb_error_set(err, path, 0, 0, key, "expected a number or null, found %s",
                            report_json_type_name(j));
    *out = j->valuedouble;
    return 0;
}

/* The shortest decimal form of x that reads back as x. */
static void shortest(char *buf, size_t n, double x) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* The report's facts eval needs. */
typedef struct Subject {
    ConfigSet cs;
    char run_id[256], checksum[17], ckpt[4400];
    char ckpt_hash[17]; /* the report's "checkpoint.fnv1a64", or "" (a report older than it) */
    int64_t best_step;
    double test_acc, val_acc;
} Subject;

/* Reads the report at path: its config resolved again, the run, the step and the accuracies. */
static int read_subject(const char *path, Subject *s, XbError *err) {
    memset(s, 0, sizeof *s);
    cJSON *doc;
    if (report_read(path, &doc, err)) return -1;
    const char *run_id = want_string(doc, "run_id", path, err);
    const char *checksum = run_id ? want_string(doc, "dataset.checksum", path, err) : NULL;
    double step = NAN;
    int rc = !checksum || want_number(doc, "training.best_step", path, &step, err) ||
             want_number(doc, "test.accuracy", path, &s->test_acc, err) ||
             want_number(doc, "training.best_val_accuracy", path, &s->val_acc, err);
    const cJSON *config = at(doc, "config");
    if (!rc && !config)
        rc = xb_error_set(err, path, 0, 0, "config", "missing (expected an object)");
    if (!rc && !cJSON_IsObject(config))
        rc = xb_error_set(err, path, 0, 0, "config", "expected an object, found %s",
                          report_json_type_name(config));
    if (!rc && strchr(run_id, '/'))
        rc = xb_error_set(err, path, 0, 0, "run_id", "'%s' is not a file name", run_id);
    if (!rc && isnan(step))
        rc = xb_error_set(err, path, 0, 0, "training.best_step",
                          "is null: the run never evaluated, so it saved no checkpoint");
    if (!rc && (step < 0 || step != floor(step)))
        rc = xb_error_set(err, path, 0, 0, "training.best_step",
                          "expected a training step (a whole number), found %g", step);
    if (rc) {
        cJSON_Delete(doc);
        return -1;
    }
    snprintf(s->run_id, sizeof s->run_id, "%s", run_id);
    snprintf(s->checksum, sizeof s->checksum, "%s", checksum);
    s->best_step = (int64_t)step;
    /* the resolved config is JSON, which is YAML: it loads as a config file would. Printed as
     * the report was (cJSON's printer rounds to 15 digits whatever reads back within its
     * tolerance, so a seed of 16 digits would come back another number) */
    char *text = report_json_print(config);
    XB_ASSERT(text);
    rc = cfg_load_string(text, path, NULL, 0, &s->cs, err);
    free(text);
    cJSON_Delete(doc);
    if (rc) { /* positions in the reprinted text mean nothing: name the key in the report */
        char key[sizeof err->key + 8];
        snprintf(key, sizeof key, "config%s%s", err->key[0] ? "." : "", err->key);
        snprintf(err->key, sizeof err->key, "%.*s", (int)sizeof err->key - 1, key);
        snprintf(err->file, sizeof err->file, "%s", path);
        err->line = err->col = 0;
        return -1;
    }
    if (s->cs.n != 1) {
        cfg_set_free(&s->cs);
        return xb_error_set(err, path, 0, 0, "config",
                            "expands to %d runs (a report's resolved config is one run)", s->cs.n);
    }
    const char *slash = strrchr(path, '/');
    snprintf(s->ckpt, sizeof s->ckpt, "%.*s%s.safetensors", slash ? (int)(slash - path + 1) : 0,
             path, s->run_id);
    return 0;
}

/* The report's record of its checkpoint (run since reports name it): file and hash into s. */
static int read_checkpoint_record(const char *path, Subject *s, XbError *err) {
    cJSON *doc;
    if (report_read(path, &doc, err)) return -1;
    const cJSON *c = at(doc, "checkpoint");
    int rc = 0;
    if (c && cJSON_IsNull(c)) {
        rc = xb_error_set(err, path, 0, 0, "checkpoint",
                          "is null: the run put no checkpoint beside its report");
    } else if (c) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(c, "file"),
                    *hash = cJSON_GetObjectItemCaseSensitive(c, "fnv1a64");
        if (!cJSON_IsString(file) || !file->valuestring[0] || strchr(file->valuestring, '/'))
            rc = xb_error_set(err, path, 0, 0, "checkpoint.file",
                              "expected a file name beside the report");
        else if (!cJSON_IsString(hash) || strlen(hash->valuestring) != 16 ||
                 strspn(hash->valuestring, "0123456789abcdef") != 16)
            rc = xb_error_set(err, path, 0, 0, "checkpoint.fnv1a64",
                              "expected 16 lowercase hex digits");
        else {
            const char *slash = strrchr(path, '/');
            snprintf(s->ckpt, sizeof s->ckpt, "%.*s%s", slash ? (int)(slash - path + 1) : 0, path,
                     file->valuestring);
            snprintf(s->ckpt_hash, sizeof s->ckpt_hash, "%s", hash->valuestring);
        }
    }
    cJSON_Delete(doc);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *report = NULL, *logits_path = NULL, *split = "test";
    long long threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return XB_EXIT_OK;
        } else if (!strcmp(a, "--split") || !strcmp(a, "--logits") || !strcmp(a, "--threads")) {
            if (!val) return cli_usage_error("eval", "%s needs a value (see --help)", a);
            i++;
            if (!strcmp(a, "--split")) {
                if (strcmp(val, "test") && strcmp(val, "val"))
                    return cli_usage_error("eval", "--split: expected test or val, got '%s'", val);
                split = val;
            } else if (!strcmp(a, "--logits")) {
                logits_path = val;
            } else if (cli_parse_int(val, 0, 1024, &threads)) {
                return cli_usage_error(
                    "eval", "--threads: expected an integer in [0, 1024], got '%s'", val);
            }
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("eval", "unknown option '%s' (see --help)", a);
        } else if (!report) {
            report = a;
        } else {
            return cli_usage_error("eval", "expected one REPORT, got '%s' and '%s'", report, a);
        }
    }
    if (!report) {
        fputs(USAGE, stderr);
        return XB_EXIT_USAGE;
    }
    XbError err;
    xb_error_clear(&err);
    Subject s;
    if (read_subject(report, &s, &err)) return print_error(&err);
    ExperimentConfig *cfg = &s.cs.runs[0];
    if (read_checkpoint_record(report, &s, &err)) {
        cfg_set_free(&s.cs);
        return print_error(&err);
    }
    if (access(s.ckpt, R_OK) != 0) { /* before a long load of the data */
        xb_error_set(&err, s.ckpt, 0, 0, NULL,
                     "cannot read the checkpoint: %s (run writes RUN_ID.safetensors beside the "
                     "report when train.checkpoint is true)",
                     strerror(errno));
        cfg_set_free(&s.cs);
        return print_error(&err);
    }
    char have[17];
    if (s.ckpt_hash[0] && !rundir_file_hash(s.ckpt, have, &err) && strcmp(have, s.ckpt_hash)) {
        xb_error_set(&err, s.ckpt, 0, 0, NULL,
                     "is not the checkpoint of %s: its FNV-1a 64 is %s, the report names %s (a "
                     "later run of the same id, or a damaged file)",
                     report, have, s.ckpt_hash);
    }
    if (err.msg[0]) {
        cfg_set_free(&s.cs);
        return print_error(&err);
    }
    if (threads >= 0) cfg->threads = (int)threads;
    cli_set_threads(cfg);
    Dataset ds;
    int rc = cli_load_dataset(cfg, &ds, 1, NULL, NULL, 0);
    if (rc) {
        cfg_set_free(&s.cs);
        return rc;
    }
    if (strcmp(ds.checksum, s.checksum) != 0) {
        xb_error_set(&err, report, 0, 0, "dataset.checksum",
                     "the run's data had checksum %s, the task's data now has %s (its files or "
                     "its generator changed): the run cannot be evaluated again",
                     s.checksum, ds.checksum);
        dataset_free(&ds);
        cfg_set_free(&s.cs);
        return print_error(&err);
    }
    const int test = !strcmp(split, "test");
    TrainEval ev;
    float *logits = NULL;
    rc = train_eval_checkpoint(cfg, &ds, test ? &ds.test : &ds.val, s.ckpt, s.best_step,
                               test ? 0 : cfg->eval_batches, &ev, logits_path ? &logits : NULL,
                               &err);
    if (!rc && logits_path) {
        const int64_t shape[3] = {ev.n, ev.positions ? ev.positions : ev.classes, ev.classes};
        rc = export_npy(logits_path, 'f', ev.positions ? 3 : 2, shape, logits, &err);
    }
    free(logits);
    dataset_free(&ds);
    if (rc) {
        cfg_set_free(&s.cs);
        return print_error(&err);
    }
    const double said = test ? s.test_acc : s.val_acc;
    char acc[40], was[40];
    shortest(acc, sizeof acc, ev.acc);
    shortest(was, sizeof was, said);
    printf("%s: %s accuracy %s (%.2f%%) of %d examples, loss %.6g", s.run_id,
           test ? "test" : "validation", acc, 100.0 * ev.acc, ev.n, ev.loss);
    if (!isnan(ev.exact)) printf(", exact match %.2f%%", 100.0 * ev.exact);
    if (isnan(said))
        printf("; the report has none\n");
    else if (said == ev.acc)
        printf("; the report's: %s, equal\n", was);
    else
        printf("; the report's: %s, %+.4f points\n", was, 100.0 * (ev.acc - said));
    if (logits_path) {
        if (ev.positions)
            printf("  logits (%d, %d, %d) float32 -> %s\n", ev.n, ev.positions, ev.classes,
                   logits_path);
        else
            printf("  logits (%d, %d) float32 -> %s\n", ev.n, ev.classes, logits_path);
    }
    cfg_set_free(&s.cs);
    return XB_EXIT_OK;
}
