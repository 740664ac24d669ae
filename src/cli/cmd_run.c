/* xformer-bench run: config → dataset → training → report, for each run of a (swept) config. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "cli/rundir.h"
#include "config/config.h"
#include "core/calib.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/timer.h"
#include "core/xassert.h"
#include "report/index.h"
#include "report/report.h"
#include "tasks/cache.h"
#include "tasks/task.h"
#include "train/trainer.h"

/* The arguments of `run`. */
typedef struct RunArgs {
    CliList config; /* the operand: one config file */
    CliList sets;
    const char *output;
    long long threads, seed;
    int resume, unique, quiet, check;
    long long shard[2]; /* --shard I/N: I, N */
} RunArgs;

/* --shard I/N: shard I (from 0) of N. */
static int parse_shard(void *dst, const char *v, char *got, size_t n) {
    (void)got, (void)n;
    long long *s = dst;
    char num[2][32];
    const char *slash = strchr(v, '/');
    if (!slash || (size_t)(slash - v) >= sizeof num[0] || strlen(slash + 1) >= sizeof num[1])
        return -1;
    snprintf(num[0], sizeof num[0], "%.*s", (int)(slash - v), v);
    snprintf(num[1], sizeof num[1], "%s", slash + 1);
    if (cli_parse_int(num[0], 0, 1000000, &s[0]) || cli_parse_int(num[1], 1, 1000000, &s[1]))
        return -1;
    return s[0] < s[1] ? 0 : -1;
}

enum {
    RUN_SET,
    RUN_OUTPUT,
    RUN_THREADS,
    RUN_SEED,
    RUN_RESUME,
    RUN_SHARD,
    RUN_UNIQUE,
    RUN_QUIET,
    RUN_CHECK,
    N_RUN_OPTS
};
static const CliOpt RUN_OPTS[] = {
    [RUN_SET] = {"--set", 0, CLI_LIST, CLI_AT(RunArgs, sets, CliList), "KEY=VALUE",
                 .help = "override a config value, e.g. --set model.layers=4 (repeatable)"},
    [RUN_OUTPUT] = {"--output", 'o', CLI_STR, CLI_AT(RunArgs, output, const char *), "DIR",
                    .help = "write reports to DIR (experiment.output_dir)"},
    [RUN_THREADS] = {"--threads", 0, CLI_INT, CLI_AT(RunArgs, threads, long long), "N", .min = 0,
                     .max = 1024,
                     .help = "threads for OpenMP and OpenBLAS, 0 = all cores (experiment.threads); "
                             "per process under mpirun"},
    [RUN_SEED] = {"--seed", 0, CLI_INT, CLI_AT(RunArgs, seed, long long), "N", .min = 0,
                  .max = 9007199254740991.0, .valid = "an integer in [0, 2^53-1]",
                  .help = "experiment seed (experiment.seed)"},
    [RUN_RESUME] = {"--resume", 0, CLI_FLAG, CLI_AT(RunArgs, resume, int),
                    .help = "continue each run from its DIR/RUN_ID.state, when there is one (saved "
                            "every train.checkpoint_every steps, and when a signal stops a run)"},
    [RUN_SHARD] = {"--shard", 0, CLI_PARSE, CLI_AT(RunArgs, shard, long long *), "I/N",
                   .parse = parse_shard, .valid = "I/N with 0 <= I < N (shard I of N, from 0)",
                   .help = "run only shard I (from 0) of N of a sweep, the longest runs spread "
                           "first: N separate processes (a job array) run the sweep together"},
    [RUN_UNIQUE] = {"--unique-id", 0, CLI_FLAG, CLI_AT(RunArgs, unique, int),
                    .help = "when another process is running a run's id in its output directory, "
                            "take RUN_ID-2, RUN_ID-3, ... instead of stopping"},
    [RUN_QUIET] = {"--quiet", 'q', CLI_FLAG, CLI_AT(RunArgs, quiet, int),
                   .help = "no progress output"},
    [RUN_CHECK] = {"--check", 0, CLI_FLAG, CLI_AT(RunArgs, check, int),
                   .help = "only check the config (every run of its sweep) and that its output "
                           "directories can be written, then exit"},
};

static const CliHelp RUN_HELP[] = {
    {"Trains and evaluates the experiment described by the YAML file CONFIG (every run of its\n"
     "sweep: section) and writes one JSON report per run, DIR/RUN_ID.json, plus the best\n"
     "validation checkpoint, DIR/RUN_ID.safetensors; a sweep also writes DIR/index.json.\n",
     ~0u},
    {"Under mpirun (or srun), one run trains data-parallel: train.batch_size is the global batch,\n"
     "split evenly over the processes, and the run follows the one-process trajectory; a sweep\n"
     "gives each run to one process. Rank 0 alone writes and prints.\n\n"
     "A run holds DIR/RUN_ID.lock while it runs; a second run of the same id in the same\n"
     "directory stops at once (exit 2) naming the first. Report and checkpoint are put in place\n"
     "together at the end (the report names the checkpoint's hash). SIGINT, SIGTERM and SIGHUP\n"
     "stop a command in any phase with exit 3: before training nothing is written; during\n"
     "training or evaluation the run saves its state and its report says \"interrupted\".\n\n"
     "Exit status: 0 all runs finished, 2 bad input (config, data, usage), 3 a run diverged,\n"
     "failed or was interrupted (its report says so).\n",
     0},
};
static const char *const RUN_USAGE_EXTRA[] = {"mpirun -np N xformer-bench run CONFIG ...", NULL};

typedef struct ProgressCtx {
    const char *run_id;
    int tty, quiet;
} ProgressCtx;

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(void *ctx, const TrainProgress *p) {
    const ProgressCtx *c = ctx;
    if (c->quiet) return;
    char eta[32], val[32];
    fmt_eta(eta, sizeof eta, p->eta_s);
    if (isnan(p->val_acc))
        snprintf(val, sizeof val, "val   -  ");
    else
        snprintf(val, sizeof val, "val %5.1f%%", 100.0 * p->val_acc);
    if (c->tty)
        fprintf(stderr, "\r\033[K[%s] step %lld/%lld  loss %.4f  %s  %.2f steps/s  ETA %s%s",
                c->run_id, (long long)p->step, (long long)p->steps, p->loss, val, p->steps_per_s,
                eta, p->step == p->steps ? "\n" : "");
    else
        fprintf(stderr, "[%s] step %lld/%lld loss %.4f lr %.3g %s %.2f steps/s ETA %s%s\n",
                c->run_id, (long long)p->step, (long long)p->steps, p->loss, p->lr, val,
                p->steps_per_s, eta, p->is_eval ? " (eval)" : "");
}

int print_error(const XbError *e) {
    if (dist_rank() == 0) { /* in a group of processes, rank 0 speaks for it */
        char line[2048];
        xb_error_format(e, line, sizeof line);
        fprintf(stderr, "xformer-bench: %s\n", line);
    }
    return e->code ? e->code : XB_EXIT_USAGE;
}

int cli_set_threads(const ExperimentConfig *cfg) {
    const int threads = cfg->threads > 0 ? cfg->threads : omp_get_num_procs();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    return threads;
}

int cli_load_dataset(const ExperimentConfig *cfg, Dataset *ds, int quiet, int *cached_out,
                     char *path_out, size_t n) {
    XbError err;
    xb_error_clear(&err);
    const TaskSpec *task = task_get(cfg->task_index);
    memset(ds, 0, sizeof *ds);
    const double t0 = timer_now();
    CacheOutcome cached;
    char path[4200];
    if (task_load(task, ds, &cfg->task_opts, cfg->seed, cfg->source, &cached, path, sizeof path,
                  &err))
        return print_error(&err);
    if (cached == CACHE_FAILED) log_warn("could not write the data cache %s", path);
    if (cached_out) *cached_out = (int)cached;
    if (path_out && n) snprintf(path_out, n, "%s", path);
    if (!quiet)
        log_info("[%s] %s: %d train / %d validation / %d test examples (%.1f s%s)", cfg->run_id,
                 task->name, ds->train.n, ds->val.n, ds->test.n, timer_now() - t0,
                 cached == CACHE_HIT ? ", from the data cache" : "");
    return XB_EXIT_OK;
}

/* One run: takes its id in the output directory, then loads the data and trains; returns an
 * exit code. In a group of processes (data-parallel training) every rank loads the data and
 * trains its share; rank 0 alone takes the id, prints and writes, and its code is the group's. */
static int run_one(ExperimentConfig *cfg, int quiet, int unique, int resume) {
    Dataset ds;
    cli_set_threads(cfg);
    const int lead = dist_rank() == 0;
    RunDir rd;
    XbError err;
    xb_error_clear(&err);
    int64_t rc = 0;
    if (!lead)
        rundir_paths(&rd, cfg->output_dir, cfg->run_id);
    else if (rundir_open(&rd, cfg->output_dir, cfg->run_id, unique, &err))
        rc = print_error(&err);
    dist_bcast(&rc, sizeof rc, 0);
    if (rc) return (int)rc;
    if (lead) snprintf(cfg->run_id, sizeof cfg->run_id, "%s", rd.id); /* --unique-id's id */
    if (dist_size() > 1) {
        dist_bcast(cfg->run_id, sizeof cfg->run_id, 0);
        if (!lead) rundir_paths(&rd, cfg->output_dir, cfg->run_id);
    }
    rc = cli_load_dataset(cfg, &ds, quiet || !lead, NULL, NULL, 0);
    if (dist_max_i64(rc)) { /* every rank stops if any could not load (rank 0 said why) */
        if (!rc) dataset_free(&ds);
        rundir_close(&rd);
        return rc ? (int)rc : XB_EXIT_USAGE;
    }
    const CliRun how = {.quiet = quiet || !lead,
                        .silent = !lead,
                        .checkpoint = 1,
                        .dir = &rd,
                        .state = 1,
                        .resume = resume};
    int64_t code = cli_run_loaded(cfg, &ds, &how);
    dataset_free(&ds);
    rundir_close(&rd);
    dist_bcast(&code, sizeof code, 0);
    return (int)code;
}

/* An interrupted run's message names the signal that stopped it ("a signal" -> "SIGTERM"). */
static void name_signal(TrainResult *tr) {
    const char *at = strstr(tr->status_message, "a signal");
    if (strcmp(tr->status, "interrupted") || !xb_stop_signal() || !at) return;
    char msg[sizeof tr->status_message];
    snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - tr->status_message), tr->status_message,
             xb_stop_signal(), at + strlen("a signal"));
    snprintf(tr->status_message, sizeof tr->status_message, "%s", msg);
}

/* Trains cfg on ds for run directory rd, measuring the threads' share of the cores (usage) and
 * the wall time. Returns 0, or -1 with err set (nothing trained). */
static int train(const ExperimentConfig *cfg, const Dataset *ds, const CliRun *how, RunDir *rd,
                 TrainResult *tr, CalibUsage *usage, double *wall, XbError *err) {
    ProgressCtx pc = {.run_id = rd->id, .tty = isatty(2), .quiet = how->quiet};
    const TrainHooks hooks = {.progress = on_progress,
                              .ctx = &pc,
                              .stop = &xb_stop,
                              .state_path = how->state ? rd->state : NULL,
                              .resume = how->resume,
                              .no_eval = how->no_eval,
                              .time_warmup = how->time_warmup};
    report_reset_peak_rss(); /* a sweep's runs share the process: each reports its own peak */
    calib_usage_begin(usage);
    const double t0 = timer_now();
    if (train_run(cfg, ds, how->checkpoint ? rd->partial : NULL, &hooks, tr, err)) return -1;
    *wall = timer_now() - t0;
    calib_usage_end(usage);
    return 0;
}

/* Puts the report of a trained run (and its checkpoint) in place; *peak gets the peak RSS it
 * reports. Returns 0, or -1 with err set. */
static int write_report(const ExperimentConfig *cfg, const Dataset *ds, RunDir *rd, TrainResult *tr,
                        const RunContext *ctx, size_t *peak, XbError *err) {
    name_signal(tr);
    /* the calibration's probe, after the peak RSS is read (its buffer stays out of it); none
     * after a signal, which asks for the report now */
    RunContext c = *ctx;
    CalibProbe probe;
    c.peak_rss = *peak = report_peak_rss();
    c.probe = strcmp(tr->status, "interrupted") && calib_probe(&probe) == 0 ? &probe : NULL;
    cJSON *doc = report_from_run(cfg, ds, tr, &c);
    const int rc = rundir_commit(rd, doc, tr->best_step, err);
    cJSON_Delete(doc);
    return rc;
}

/* The closing line of a run (or the error that kept its report from being written); returns the
 * run's exit code. */
static int outcome_of(const Dataset *ds, const CliRun *how, const RunDir *rd, const TrainResult *tr,
                      size_t peak, int written, const XbError *err) {
    const int ok = strcmp(tr->status, "ok") == 0;
    if (!written) {
        print_error(err);
    } else if (!how->silent) {
        printf("%s: %s, test accuracy %.2f%% (majority baseline %.2f%%), %.2f steps/s, peak RSS "
               "%.0f MiB -> %s\n",
               rd->id, tr->status, 100.0 * tr->test_acc,
               100.0 * dataset_majority(&ds->test, ds->n_classes), tr->steps_per_s,
               (double)peak / 1048576.0, rd->report);
        fflush(stdout);
    }
    if (!ok) fprintf(stderr, "xformer-bench: %s: %s\n", rd->id, tr->status_message);
    return written && ok ? XB_EXIT_OK : XB_EXIT_RUNFAIL;
}

int cli_run_loaded(const ExperimentConfig *cfg, const Dataset *ds, const CliRun *how) {
    XbError err;
    xb_error_clear(&err);
    const int threads = cli_set_threads(cfg), lead = dist_rank() == 0;
    if (train_check(cfg, ds, &err)) return print_error(&err);
    RunDir own, *rd = how->dir;
    if (!rd) {
        if (rundir_open(&own, cfg->output_dir, cfg->run_id, 0, &err)) return print_error(&err);
        rd = &own;
    }
    TrainResult tr = {.status = "failed"};
    CalibUsage usage; /* the threads' share of the cores while they train (core/calib.h) */
    double wall = 0.0;
    size_t peak = 0;
    xb_signals_defer(1); /* a run is under way: a signal ends it with an "interrupted" report */
    const int trained = train(cfg, ds, how, rd, &tr, &usage, &wall, &err) == 0;
    const RunContext ctx = {.run_id = rd->id, /* --unique-id may have suffixed it */
                            .threads = threads,
                            .processes = dist_size(),
                            .wall_s = wall,
                            .usage = &usage};
    const int written = trained && lead && !write_report(cfg, ds, rd, &tr, &ctx, &peak, &err);
    if (rd == &own) rundir_close(rd);
    xb_signals_defer(0);
    int rc;
    if (!trained) /* the error, as the run could not train */
        rc = print_error(&err);
    else if (!lead) /* the other ranks of a data-parallel run: rank 0 reports */
        rc = strcmp(tr.status, "ok") ? XB_EXIT_RUNFAIL : XB_EXIT_OK;
    else
        rc = outcome_of(ds, how, rd, &tr, peak, written, &err);
    train_result_free(&tr);
    return rc;
}

/* A run's cost for the sweep's schedule: steps × tokens × layers × width × (width + length). */
static double run_cost(const ExperimentConfig *c) {
    return (double)c->steps * c->batch_size * c->max_len * c->layers * c->d_model *
           (double)(c->d_model + c->max_len);
}

/* Which of `parts` shares runs each run of cs (owner[r]): longest first, each to the share with the
 * least work so far (LPT), the same on every process, so no process waits to be told. */
static void schedule_runs(const ConfigSet *cs, int parts, int *owner) {
    int *order = malloc((size_t)cs->n * sizeof *order);
    double *load = calloc((size_t)parts, sizeof *load);
    XB_ASSERT(order && load);
    for (int r = 0; r < cs->n; r++) order[r] = r;
    for (int a = 1; a < cs->n; a++) /* by cost, descending; ties in sweep order */
        for (int b = a; b > 0 && run_cost(&cs->runs[order[b]]) > run_cost(&cs->runs[order[b - 1]]);
             b--) {
            const int t = order[b];
            order[b] = order[b - 1], order[b - 1] = t;
        }
    for (int k = 0; k < cs->n; k++) {
        int best = 0;
        for (int p = 1; p < parts; p++)
            if (load[p] < load[best]) best = p;
        owner[order[k]] = best;
        load[best] += run_cost(&cs->runs[order[k]]);
    }
    free(order);
    free(load);
}

/* Loads the config of a, with its overrides; then makes and probes every output directory before
 * any data is made or any step runs. Returns 0 or the exit code after the error. */
static int load_runs(const RunArgs *a, ConfigSet *cs) {
    XbError err;
    xb_error_clear(&err);
    if (cfg_load(a->config.v[0], a->sets.v, a->sets.n, cs, &err)) return print_error(&err);
    for (int r = 0; r < cs->n; r++) {
        ExperimentConfig *c = &cs->runs[r];
        if (a->output) snprintf(c->output_dir, sizeof c->output_dir, "%s", a->output);
        if (r > 0 && !strcmp(c->output_dir, cs->runs[r - 1].output_dir)) continue;
        if (fileio_probe_dir(c->output_dir, &err)) {
            if (!a->output) snprintf(err.key, sizeof err.key, "experiment.output_dir");
            cfg_set_free(cs);
            return print_error(&err);
        }
    }
    return XB_EXIT_OK;
}

/* Under mpirun: --shard is not for it, and a single run's global batch splits evenly over the
 * processes (data-parallel training). Returns 0 or the exit code after the error. */
static int check_world(const CliSeen *seen, const ConfigSet *cs, int sharded) {
    const int world = dist_world_size();
    if (seen->given[RUN_SHARD] && world > 1)
        return cli_usage_error("run",
                               "--shard splits a sweep between separate processes; under "
                               "mpirun the ranks share it already (valid: one or the other)");
    for (int r = 0; r < cs->n && !sharded && world > 1; r++)
        if (cs->runs[r].batch_size % world) {
            XbError err;
            xb_error_set(&err, cs->runs[r].source, 0, 0, "train.batch_size",
                         "%d examples do not split evenly over the %d processes of mpirun "
                         "(valid: a multiple of %d)",
                         cs->runs[r].batch_size, world, world);
            return print_error(&err);
        }
    return XB_EXIT_OK;
}

/* Rank 0 of a world that shared a sweep learns every run's outcome (codes[r] < 0 where this
 * process did not run r); returns the worst exit code over the world. */
static int gather_codes(const ConfigSet *cs, int *codes, int rc) {
    int64_t *all = malloc((size_t)cs->n * sizeof *all);
    XB_ASSERT(all);
    for (int r = 0; r < cs->n; r++) all[r] = codes[r] < 0 ? 0 : codes[r] + 1;
    dist_allreduce_i64(all, (size_t)cs->n); /* each run has one owner */
    for (int r = 0; r < cs->n; r++) codes[r] = (int)all[r] - 1;
    free(all);
    return (int)dist_max_i64(rc);
}

/* Runs this process's runs of cs: all of them, or, for a sweep under mpirun or a shard of one
 * (--shard I/N, e.g. a Slurm job array), its share, scheduled longest first (a single run under
 * mpirun trains data-parallel). Writes the sweep's index; returns the worst exit code. */
static int run_sweep(const RunArgs *a, const CliSeen *seen, ConfigSet *cs, int sharded) {
    const int world = dist_world_size(), shards = seen->given[RUN_SHARD] != 0;
    const int parts = shards ? (int)a->shard[1] : world;
    const int mine = shards ? (int)a->shard[0] : dist_world_rank();
    int *codes = malloc((size_t)cs->n * sizeof *codes),
        *owner = calloc((size_t)cs->n, sizeof *owner);
    XB_ASSERT(codes && owner);
    for (int r = 0; r < cs->n; r++) codes[r] = -1;
    if (sharded) schedule_runs(cs, parts, owner);
    if (sharded && world > 1) dist_solo(1); /* each run on its own process */
    int rc = XB_EXIT_OK, usage = 0;
    for (int r = 0; r < cs->n && !xb_stop && !usage; r++) {
        ExperimentConfig *c = &cs->runs[r];
        if (sharded && owner[r] != mine) continue;
        if (seen->given[RUN_THREADS]) c->threads = (int)a->threads;
        if (seen->given[RUN_SEED]) c->seed = (uint64_t)a->seed;
        if (cs->n > 1 && !a->quiet && dist_rank() == 0)
            log_info("run %d of %d: %s", r + 1, cs->n, c->run_id);
        codes[r] = run_one(c, a->quiet, a->unique, a->resume);
        if (codes[r] > rc) rc = codes[r];
        usage = codes[r] == XB_EXIT_USAGE && !sharded; /* bad input stops a plain sweep */
    }
    if (sharded && world > 1) {
        dist_solo(0);
        rc = gather_codes(cs, codes, rc);
    }
    if (cs->n > 1 && dist_world_rank() == 0 && !(codes[0] == XB_EXIT_USAGE && !sharded)) {
        XbError err;
        xb_error_clear(&err);
        const int w = report_write_sweep_index(cs, codes, &err) ? print_error(&err) : 0;
        if (w > rc) rc = w;
    }
    free(owner);
    free(codes);
    return rc;
}

static int run_args(const void *args, const CliSeen *seen) {
    const RunArgs *a = args;
    xb_signals_install(); /* from here on a signal ends the command with status 3 */
    ConfigSet cs;
    int rc = load_runs(a, &cs);
    if (rc) return rc;
    const int sharded = cs.n > 1 && (dist_world_size() > 1 || seen->given[RUN_SHARD]);
    rc = check_world(seen, &cs, sharded);
    if (!rc && a->check)
        printf("%s: valid, %d run%s\n", a->config.v[0], cs.n, cs.n == 1 ? "" : "s");
    else if (!rc)
        rc = run_sweep(a, seen, &cs, sharded);
    cfg_set_free(&cs);
    return rc;
}

CLI_CHECK_TABLE(RUN_OPTS, N_RUN_OPTS);
const CliCommand CMD_RUN = CLI_COMMAND(
    "run", RunArgs, config, run_args, RUN_OPTS, RUN_HELP,
    .summary = "train and evaluate the experiment(s) of a YAML config, write JSON reports",
    .operands = "CONFIG", .min_operands = 1, .max_operands = 1, .one_more = "one CONFIG",
    .usage_extra = RUN_USAGE_EXTRA);
