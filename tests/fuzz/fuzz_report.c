/* Fuzzes the report reader and what reads reports: `compare`, `table` and `plot`.
 *
 * Input: one report file. It is read as `compare`, `table` and `plot` read it (summary_read,
 * through report_read and its strict JSON check); a report that reads is then put through the
 * commands themselves, in this process (main.c built as xb_main): `table` in every layout and
 * format, `plot` of both kinds, and `compare` of the report with itself. Properties:
 *   report-error   a refusal carries exit code 2 and a message naming the file;
 *   report-utf8    a report that reads is UTF-8, as RFC 8259 (8.1) requires of JSON and as
 *                  Python's json module (the schema check, scripts/reference) reads it;
 *   report-print   a document that reads prints (report_json_print) as text that passes the
 *                  strict check and parses into a document that prints the same;
 *   compare-self   `compare R R` finds no regression (exit 0);
 *   command-exit   `table` and `plot` succeed on a report that reads (exit 0). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "report/report.h"
#include "report/summary.h"

const char FUZZ_NAME[] = "report";

int xb_main(int argc, char **argv); /* src/main.c, built with -Dmain=xb_main */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (!freopen("/dev/null", "w", stdout)) abort(); /* the tables */
    return 0;
}

static int run(int argc, const char *const *argv) {
    char *copy[16];
    for (int i = 0; i < argc; i++) copy[i] = (char *)argv[i];
    copy[argc] = NULL;
    return xb_main(argc, copy);
}

static int has_nonfinite(const cJSON *j) {
    if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) return 1;
    for (const cJSON *c = j->child; c; c = c->next)
        if (has_nonfinite(c)) return 1;
    return 0;
}

/* 1 when b[0..n) is well-formed UTF-8 (Unicode 15, table 3-7: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static int is_utf8(const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n;) {
        const uint8_t c = b[i];
        size_t k = c < 0x80                 ? 0
                   : c >= 0xc2 && c <= 0xdf ? 1
                   : c >= 0xe0 && c <= 0xef ? 2
                   : c >= 0xf0 && c <= 0xf4 ? 3
                                            : 9;
        if (k == 0) {
            i++;
            continue;
        }
        if (k == 9 || n - i <= k) return 0; /* not a lead byte, or the sequence is cut */
        const uint8_t lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        const uint8_t hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        if (b[i + 1] < lo || b[i + 1] > hi) return 0;
        for (size_t j = 2; j <= k; j++)
            if (b[i + j] < 0x80 || b[i + j] > 0xbf) return 0;
        i += k + 1;
    }
    return 1;
}

/* report_json_print of the document that path holds is a fixed point: the printed text passes
 * the strict check and parses into a document that prints the same (compared as text, so that a
 * key given twice counts in its place, as the printer keeps it). */
static void check_print(const char *path) {
    cJSON *doc;
    XbError err;
    if (report_read(path, &doc, &err)) return;
    if (has_nonfinite(doc)) { /* 1e999: printed as null, by design */
        cJSON_Delete(doc);
        return;
    }
    char *text = report_json_print(doc);
    size_t pos = 0;
    const char *msg = NULL;
    if (report_json_check(text, strlen(text), &pos, &msg)) {
        fuzz_fail("report-print", "the printed report fails the strict check at byte %zu (%s)", pos,
                  msg);
    } else {
        cJSON *again = cJSON_Parse(text);
        char *text2 = again ? report_json_print(again) : NULL;
        if (!text2 || strcmp(text, text2) != 0)
            fuzz_fail("report-print", "the printed report prints again as:\n%.2000s\nnot\n%.2000s",
                      text2 ? text2 : "(cJSON cannot parse it)", text);
        free(text2);
        cJSON_Delete(again);
    }
    free(text);
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_put("reports/run.json", data, size);
    char path[4200], svg[4200];
    fuzz_path(path, sizeof path, "reports/run.json");
    fuzz_path(svg, sizeof svg, "figure.svg");
    ReportSummary s;
    XbError err;
    xb_error_clear(&err);
    if (summary_read(path, &s, &err)) {
        if (err.code != XB_EXIT_USAGE || !err.msg[0] || strcmp(err.file, path) != 0)
            fuzz_fail("report-error", "a refusal with code %d, file \"%s\", message \"%s\"",
                      err.code, err.file, err.msg);
        return 0;
    }
    if (!is_utf8(data, size)) fuzz_fail("report-utf8", "a report that is not UTF-8 reads");
    check_print(path);
    static const char *const formats[] = {"md", "latex", "csv"};
    static const char *const layouts[] = {"accuracy", "efficiency"};
    for (int f = 0; f < 3; f++)
        for (int l = 0; l < 2; l++) {
            const char *argv[] = {"xformer-bench", "table",    path,      "--format",
                                  formats[f],      "--layout", layouts[l]};
            const int rc = run(7, argv);
            if (rc)
                fuzz_fail("command-exit", "table --format %s --layout %s: exit %d", formats[f],
                          layouts[l], rc);
        }
    const char *order[] = {"xformer-bench", "table", path, "--order", "class"};
    if (run(5, order)) fuzz_fail("command-exit", "table --order class failed");
    static const char *const kinds[] = {"frontier", "scaling"};
    for (int k = 0; k < 2; k++) {
        const char *argv[] = {"xformer-bench", "plot", path, "--kind", kinds[k], "-o", svg};
        const int rc = run(7, argv);
        if (rc) fuzz_fail("command-exit", "plot --kind %s: exit %d", kinds[k], rc);
    }
    const char *cmp[] = {"xformer-bench", "compare", path, path};
    const int rc = run(4, cmp);
    if (rc) fuzz_fail("compare-self", "compare of a report with itself: exit %d", rc);
    return 0;
}
