/* xformer-bench data: load a task's data once and print what it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "config/config.h"
#include "core/error.h"
#include "core/timer.h"
#include "core/xassert.h"
#include "report/report.h"
#include "tasks/cache.h"
#include "tasks/export.h"
#include "tasks/task.h"

/* The arguments of `data`. */
typedef struct DataArgs {
    CliList what; /* the operand: a task name or a config file */
    CliList sets;
    const char *export_dir;
} DataArgs;

enum { DATA_SET, DATA_EXPORT, N_DATA_OPTS };
static const CliOpt DATA_OPTS[] = {
    [DATA_SET] = {"--set", 0, CLI_LIST, CLI_AT(DataArgs, sets, CliList), "task.KEY=VALUE",
                  .help = "a task option (repeatable; see xformer-bench list tasks)"},
    [DATA_EXPORT] = {"--export", 0, CLI_STR, CLI_AT(DataArgs, export_dir, const char *), "DIR",
                     .needs = "a directory",
                     .help = "also write the splits into DIR (created if missing) in the Long "
                             "Range Arena's formats, for an implementation we did not write"},
};

static const CliHelp DATA_HELP[] = {
    {"Loads (generates, or reads and checks) a task's data and prints its statistics: the size of\n"
     "each split, the length percentiles, the class balance, the vocabulary, the identity that\n"
     "reports record and the checksum. TASK is a task name (its options from --set), or CONFIG a\n"
     "YAML experiment whose task section is used.\n",
     ~0u},
    {"  listops     basic_{train,val,test}.tsv, LRA's TSV: header Source<TAB>Target, each\n"
     "              expression as LRA prints it; --set task.source=files --set\n"
     "              task.data_dir=DIR reads them back (with the same task.parens)\n"
     "  retrieval   new_aan_pairs.{train,eval,test}.tsv, LRA's rows label, id1, id2, text1,\n"
     "              text2, no header; --set task.source=aan --set task.data_dir=DIR reads them\n"
     "              back. A row cannot hold a tab, line feed, carriage return or NUL: those\n"
     "              bytes are written as spaces, and counted\n"
     "  text        text_{train,val,test}.tsv: header label<TAB>text, then each document's\n"
     "              bytes (tokens are byte + 1) with \\\\, \\t, \\n, \\r, \\0 for backslash,\n"
     "              tab, line feed, carriage return, NUL\n"
     "  image,      TASK_{train,val,test}_{inputs,targets}.npy, NumPy int32: inputs (N, L) the\n"
     "  pathfinder  token ids (pixel + 1), targets (N,) the labels\n"
     "  mqar,       TASK_{train,val,test}_{inputs,targets}.npy, NumPy int32: inputs (N, L) the\n"
     "  selcopy,    token ids padded with 0 to the split's longest example, targets (N, L)\n"
     "  needle      each position's class, -1 where it has none (padding included)\n\n"
     "An export never replaces a file (DIR must not hold them yet), and leaves its files\n"
     "complete or absent (each is written as NAME.tmp, and all are renamed at the end).\n\n"
     "Generated data is kept in the data cache, $XB_CACHE_DIR (default ~/.cache/xformer-bench;\n"
     "empty: off), and read back by every run with the same task, options and seed; a change to\n"
     "a generator's source makes new keys. Data read from files is not cached.\n\n"
     "Exit status: 0, or 2 bad input (unknown task, bad option, missing or malformed data, a task\n"
     "without an export format, an export file that exists or cannot be written).\n",
     0},
};

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void split_stats(const char *name, const Split *s, int n_classes) {
    if (s->n == 0) {
        printf("  %-5s      0 examples\n", name);
        return;
    }
    const int nd = s->n * split_docs(s); /* documents: two per example of a pair */
    int64_t *len = malloc((size_t)nd * sizeof *len);
    int64_t *count = calloc((size_t)n_classes, sizeof *count), total = s->n;
    XB_ASSERT(len && count);
    for (int j = 0; j < nd; j++) len[j] = s->offsets[j + 1] - s->offsets[j];
    if (s->targets) { /* a sequence task: the classes of its target positions */
        total = 0;
        for (int64_t t = 0; t < s->offsets[nd]; t++)
            if (s->targets[t] >= 0 && s->targets[t] < n_classes) count[s->targets[t]]++, total++;
    } else {
        for (int i = 0; i < s->n; i++)
            if (s->labels[i] >= 0 && s->labels[i] < n_classes) count[s->labels[i]]++;
    }
    qsort(len, (size_t)nd, sizeof *len, cmp_i64);
#define PCT(p) ((long long)len[(size_t)((double)(p) / 100.0 * (nd - 1) + 0.5)])
    printf("  %-5s %7d examples%s  length min %lld  p10 %lld  p50 %lld  p90 %lld  max %lld\n", name,
           s->n, split_docs(s) > 1 ? " (pairs)" : "", PCT(0), PCT(10), PCT(50), PCT(90), PCT(100));
#undef PCT
    if (s->targets)
        printf("        %lld target positions (%.2f per example), classes:", (long long)total,
               (double)total / s->n);
    else
        printf("        classes:");
    int most = 0;
    for (int c = 0; c < n_classes; c++) {
        if (c < 16) printf(" %d:%.1f%%", c, 100.0 * (double)count[c] / (double)total);
        if (count[c] > count[most]) most = c;
    }
    if (n_classes > 16) printf(" ... (%d classes)", n_classes);
    printf("  (majority %.1f%%)\n", 100.0 * (double)count[most] / (double)total);
    free(len);
    free(count);
}

/* The config of a: a YAML file (by its extension), or a task name with the --set options. */
static int load_config(const DataArgs *a, ConfigSet *cs, XbError *err) {
    const char *what = a->what.v[0];
    const size_t n = strlen(what);
    if (n > 5 && (!strcmp(what + n - 5, ".yaml") || !strcmp(what + n - 4, ".yml")))
        return cfg_load(what, a->sets.v, a->sets.n, cs, err);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "task:\n  name: %s\n", what);
    return cfg_load_string(yaml, "TASK", a->sets.v, a->sets.n, cs, err);
}

/* What data prints of a loaded dataset. */
static void print_dataset(const TaskSpec *t, const Dataset *ds, double seconds, int cached,
                          const char *path) {
    printf("%s: %s (%.1f s)\n", t->name, t->description, seconds);
    printf("  vocabulary %d tokens (0 = padding), %d classes\n", ds->vocab_size, ds->n_classes);
    split_stats("train", &ds->train, ds->n_classes);
    split_stats("val", &ds->val, ds->n_classes);
    split_stats("test", &ds->test, ds->n_classes);
    char *identity = report_dataset_identity_text(&ds->id);
    printf("  identity %s\n  checksum %s\n", identity, ds->checksum);
    free(identity);
    static const char *const how[] = {[CACHE_NONE] = "",
                                      [CACHE_HIT] = "read from",
                                      [CACHE_WRITTEN] = "written to",
                                      [CACHE_FAILED] = "could not be written to"};
    _Static_assert(XB_ARRAY_LEN(how) == CACHE_FAILED + 1, "a phrase for every CacheOutcome");
    if (cached != CACHE_NONE) printf("  cache    %s %s\n", how[cached], path);
}

/* Writes ds into dir in the Long Range Arena's formats and says what it wrote. */
static int export_to(const Dataset *ds, const TaskSpec *t, const char *dir) {
    fflush(stdout);
    ExportSummary ex;
    XbError err;
    xb_error_clear(&err);
    if (export_dataset(ds, t->name, dir, &ex, &err)) return print_error(&err);
    printf("  export   %s (%s):", dir, ex.format);
    for (int i = 0; i < ex.n_files; i++) printf("%s %s", i ? "," : "", ex.files[i]);
    printf("\n");
    if (ex.replaced)
        printf("           %lld bytes (tab, LF, CR, NUL) written as spaces: a row cannot "
               "hold them\n",
               (long long)ex.replaced);
    if (ex.reload) printf("           read back with: %s%s\n", ex.reload, dir);
    return XB_EXIT_OK;
}

static int data_args(const void *args, const CliSeen *seen) {
    const DataArgs *a = args;
    (void)seen;
    ConfigSet cs;
    XbError err;
    xb_error_clear(&err);
    if (load_config(a, &cs, &err)) return print_error(&err);
    const ExperimentConfig *c = &cs.runs[0];
    const TaskSpec *t = task_get(c->task_index);
    int rc = XB_EXIT_OK;
    if (a->export_dir && export_check(t->name, a->export_dir, &err)) /* before a long load */
        rc = print_error(&err);
    Dataset ds;
    const double t0 = timer_now();
    int cached;
    char path[4200];
    if (!rc) rc = cli_load_dataset(c, &ds, 1, &cached, path, sizeof path);
    if (!rc) {
        print_dataset(t, &ds, timer_now() - t0, cached, path);
        if (a->export_dir) rc = export_to(&ds, t, a->export_dir);
        dataset_free(&ds);
    }
    cfg_set_free(&cs);
    return rc;
}

CLI_CHECK_TABLE(DATA_OPTS, N_DATA_OPTS);
const CliCommand CMD_DATA =
    CLI_COMMAND("data", DataArgs, what, data_args, DATA_OPTS, DATA_HELP,
                .summary = "load a task's data, print its statistics and checksum, export it",
                .operands = "TASK|CONFIG", .min_operands = 1, .max_operands = 1,
                .one_more = "one TASK or CONFIG",
                .missing = "expected a TASK (see xformer-bench list tasks) or a CONFIG");
