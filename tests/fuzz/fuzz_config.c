/* Fuzzes the config loader: YAML -> ExperimentConfig, with --set overrides and sweeps.
 *
 * Input: the YAML file, then optionally NUL bytes separating --set overrides ("KEY=VALUE"), at
 * most 8 (a NUL cannot be part of a YAML file read by cfg_load, nor of a command-line argument).
 * The YAML goes through cfg_load as a file, as `run` and `data` read it. Properties:
 *   config-error    a refusal carries exit code 2 and a message;
 *   config-run-id   every run has a run id that is a file name (non-empty, no '/');
 *   sweep-run-ids   no two runs of a sweep write the same report (OUTPUT_DIR/RUN_ID.json);
 *   config-json     the resolved config as the report prints it (report_json_print) passes the
 *                   strict JSON check that `compare`, `table` and `eval` read reports with;
 *   config-reload   that text, loaded as a config, gives the same resolved config;
 *   config-eval     `eval` (main.c, run in this process) reads a report holding that config
 *                   and fails only for want of the checkpoint. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz.h"
#include "report/report.h"

const char FUZZ_NAME[] = "config";

enum { MAX_SETS = 8, MAX_RELOADS = 8 };

int xb_main(int argc, char **argv); /* src/main.c, built with -Dmain=xb_main */

/* `xformer-bench eval` on a report that holds the resolved config text (and the other fields
 * eval reads first) must fail only for want of the checkpoint, after reading the config. */
static void check_eval(const ExperimentConfig *c, const char *config_text) {
    cJSON *doc = cJSON_Parse(
        "{\"schema_version\": 1, \"run_id\": \"fuzz\", \"dataset\": {\"checksum\": "
        "\"0000000000000000\"}, \"training\": {\"best_step\": 0, \"best_val_accuracy\": null}, "
        "\"test\": {\"accuracy\": null}}");
    cJSON *config = cJSON_Parse(config_text);
    if (!doc || !config) fuzz_fail("harness", "cannot build a report around the config");
    cJSON_AddItemToObject(doc, "config", config);
    char *report = report_json_print(doc);
    cJSON_Delete(doc);
    fuzz_put("eval/fuzz.json", report, strlen(report));
    free(report);
    char path[4200], out[4200];
    fuzz_path(path, sizeof path, "eval/fuzz.json");
    fuzz_path(out, sizeof out, "eval/stderr");
    fflush(stderr);
    const int saved = dup(2), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0 || dup2(fd, 2) < 0) fuzz_fail("harness", "cannot redirect stderr");
    char *argv[] = {"xformer-bench", "eval", path, NULL};
    const int rc = xb_main(3, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved), close(fd);
    char said[2048] = "";
    FILE *f = fopen(out, "rb");
    if (f) {
        said[fread(said, 1, sizeof said - 1, f)] = '\0';
        fclose(f);
    }
    if (rc != XB_EXIT_USAGE || !strstr(said, "cannot read the checkpoint"))
        fuzz_fail("config-eval", "eval of a report of run %s: exit %d, %s", c->run_id, rc, said);
}

/* The resolved config of c as the report prints it; malloc'd. */
static char *resolved_text(const ExperimentConfig *c) {
    cJSON *j = cfg_to_json(c);
    char *s = report_json_print(j);
    cJSON_Delete(j);
    return s;
}

/* The report writer's text of the resolved config loads as a config giving the same resolved
 * config (config-reload); and `eval`, run in this process on a report that holds it, reads it
 * and gets as far as looking for the checkpoint (config-eval). */
static void check_reload(const ExperimentConfig *c) {
    char *text = resolved_text(c);
    size_t pos = 0;
    const char *msg = NULL;
    if (report_json_check(text, strlen(text), &pos, &msg)) {
        fuzz_fail("config-json",
                  "the resolved config of run %s fails the strict check at byte "
                  "%zu (%s): %.300s",
                  c->run_id, pos, msg, text);
        free(text);
        return;
    }
    ConfigSet again;
    XbError err;
    xb_error_clear(&err);
    if (cfg_load_string(text, "report.json", NULL, 0, &again, &err) != 0 || again.n != 1) {
        char line[2048];
        xb_error_format(&err, line, sizeof line);
        fuzz_fail("config-reload", "the resolved config of run %s does not load again: %s\n%s",
                  c->run_id, line, text);
    } else {
        char *text2 = resolved_text(&again.runs[0]);
        if (strcmp(text, text2) != 0)
            fuzz_fail("config-reload", "run %s loads again as another config:\n%s\n%s", c->run_id,
                      text, text2);
        free(text2);
        cfg_set_free(&again);
    }
    check_eval(c, text);
    free(text);
}

/* No two runs write the same report; a quadratic scan over the first 256 runs (a sweep can
 * expand to 4096). */
static void check_distinct(const ConfigSet *cs) {
    const int n = cs->n < 256 ? cs->n : 256;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (!strcmp(cs->runs[a].run_id, cs->runs[b].run_id) &&
                !strcmp(cs->runs[a].output_dir, cs->runs[b].output_dir)) {
                fuzz_fail("sweep-run-ids", "runs %d and %d of the sweep both write %s/%s.json", a,
                          b, cs->runs[a].output_dir, cs->runs[a].run_id);
                return;
            }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t ny = nul ? (size_t)(nul - data) : size;
    fuzz_put("config.yaml", data, ny);
    /* the overrides, as NUL-terminated copies */
    char *sets = malloc(size - ny + 1);
    const char *ov[MAX_SETS];
    int n_ov = 0;
    if (nul) {
        memcpy(sets, nul + 1, size - ny - 1);
        sets[size - ny - 1] = '\0';
        for (char *p = sets; n_ov < MAX_SETS;) {
            ov[n_ov++] = p;
            const size_t m = strlen(p);
            if (p + m >= sets + (size - ny - 1)) break;
            p += m + 1;
        }
    }
    char path[4200];
    fuzz_path(path, sizeof path, "config.yaml");
    ConfigSet cs;
    XbError err;
    if (cfg_load(path, ov, n_ov, &cs, &err) != 0) {
        if (err.code != XB_EXIT_USAGE || !err.msg[0])
            fuzz_fail("config-error", "a refusal with code %d and message \"%s\"", err.code,
                      err.msg);
        free(sets);
        return 0;
    }
    for (int r = 0; r < cs.n; r++) {
        const ExperimentConfig *c = &cs.runs[r];
        if (!c->run_id[0] || strchr(c->run_id, '/'))
            fuzz_fail("config-run-id", "run %d of %d has the run id \"%s\"", r, cs.n, c->run_id);
        if (r < MAX_RELOADS || r == cs.n - 1) check_reload(c);
    }
    check_distinct(&cs);
    cfg_set_free(&cs);
    free(sets);
    return 0;
}
