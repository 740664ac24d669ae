/* Config: defaults, parsing with positions, every error message verbatim, overrides, sweeps,
 * canonical JSON and its hash. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

/* Line numbers in the expected messages below refer to this text. */
static const char *const BASE = "task:\n"            /* 1 */
                                "  name: listops\n"  /* 2 */
                                "  num_train: 100\n" /* 3 */
                                "model:\n"           /* 4 */
                                "  layers: 2\n"      /* 5 */
                                "train:\n"           /* 6 */
                                "  steps: 10\n";     /* 7 */

/* BASE with the first occurrence of old replaced by new (caller frees). */
static char *with_line(const char *old, const char *new_text) {
    const char *p = strstr(BASE, old);
    ck_assert_ptr_nonnull(p);
    size_t n = strlen(BASE) - strlen(old) + strlen(new_text) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(p - BASE), BASE, new_text, p + strlen(old));
    return s;
}

static char *base_plus(const char *extra) {
    size_t n = strlen(BASE) + strlen(extra) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%s%s", BASE, extra);
    return s;
}

static void load_ok(const char *yaml, const char *const *sets, int n, ConfigSet *cs) {
    XbError err;
    xb_error_clear(&err);
    int rc = cfg_load_string(yaml, "t.yaml", sets, n, cs, &err);
    char buf[2048];
    xb_error_format(&err, buf, sizeof buf);
    ck_assert_msg(rc == 0, "unexpected error: %s", buf);
    ck_assert_int_ge(cs->n, 1);
}

static void expect_error(const char *yaml, const char *const *sets, int n, const char *expected) {
    ConfigSet cs;
    XbError err;
    xb_error_clear(&err);
    int rc = cfg_load_string(yaml, "t.yaml", sets, n, &cs, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    ck_assert_int_eq(cs.n, 0);
    ck_assert_ptr_null(cs.runs);
    char buf[2048];
    xb_error_format(&err, buf, sizeof buf);
    ck_assert_str_eq(buf, expected);
}

/* The replaced-line form, freeing the text. */
static void expect_line_error(const char *old, const char *new_text, const char *expected) {
    char *y = with_line(old, new_text);
    expect_error(y, NULL, 0, expected);
    free(y);
}

static int task_opt_int(const ExperimentConfig *c, const char *name) {
    const TaskSpec *t = task_get(c->task_index);
    return opt_int(&c->task_opts, t->opts, t->n_opts, name);
}

/* ---- values ---- */

START_TEST(test_defaults_filled_for_minimal_config) {
    ConfigSet cs;
    load_ok("task: {name: listops}\n", NULL, 0, &cs);
    ck_assert_int_eq(cs.n, 1);
    const ExperimentConfig *c = &cs.runs[0];
    ck_assert_str_eq(c->name, "t");
    ck_assert_str_eq(c->run_id, "t");
    ck_assert_str_eq(c->output_dir, "results/t");
    ck_assert_str_eq(c->source, "t.yaml");
    ck_assert_int_eq(c->sweep_index, 0);
    ck_assert_int_eq(c->sweep_size, 1);
    ck_assert_uint_eq(c->seed, 1);
    ck_assert_int_eq(c->threads, 0);
    ck_assert_int_eq(c->layers, 2);
    ck_assert_int_eq(c->d_model, 64);
    ck_assert_int_eq(c->heads, 2);
    ck_assert_int_eq(c->d_ff, 128);
    ck_assert_float_eq(c->dropout, 0.1f);
    ck_assert_int_eq(c->max_len, 512);
    ck_assert_int_eq(c->pooling, POOL_CLS);
    ck_assert_int_eq(c->positions, POS_SINUSOIDAL);
    ck_assert_int_eq(c->head_hidden, 0);
    ck_assert_int_eq(c->mixer_index, mixer_find("full"));
    ck_assert_int_eq(c->batch_size, 32);
    ck_assert_int_eq(c->steps, 1000);
    ck_assert_double_eq(c->lr, 1e-3);
    ck_assert_int_eq(c->schedule, SCHED_COSINE);
    ck_assert_int_eq(c->warmup, 0);
    ck_assert_double_eq(c->weight_decay, 0.01);
    ck_assert_double_eq(c->beta1, 0.9);
    ck_assert_double_eq(c->beta2, 0.999);
    ck_assert_double_eq(c->eps, 1e-8);
    ck_assert_double_eq(c->clip_norm, 1.0);
    ck_assert_int_eq(c->eval_every, 100);
    ck_assert_int_eq(c->eval_batches, 0);
    ck_assert_int_eq(c->log_every, 10);
    ck_assert_int_eq(c->checkpoint, 1);
    /* the task's own defaults come from its table and are not marked as given */
    ck_assert_int_eq(c->task_index, task_find("listops"));
    ck_assert_int_eq(task_opt_int(c, "num_train"), 96000);
    const TaskSpec *t = task_get(c->task_index);
    ck_assert_int_eq(c->task_opts.n, t->n_opts);
    for (int i = 0; i < t->n_opts; i++) ck_assert_int_eq(c->task_opts.set[i], 0);
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_every_section_parses_given_values) {
    const char *y =
        "experiment: {name: quick-start_1.x, seed: 9007199254740991, threads: 3, "
        "output_dir: out/q}\n"
        "task:\n"
        "  name: listops\n"
        "  num_train: 20000\n"
        "  parens: true\n"
        "model:\n"
        "  layers: 3\n"
        "  d_model: 96\n"
        "  heads: 6\n"
        "  d_ff: 200\n"
        "  dropout: 0\n"
        "  max_len: 100\n"
        "  pooling: mean\n"
        "  positions: none\n"
        "  head_hidden: 7\n"
        "  mixer:\n"
        "    name: full\n"
        "    causal: true\n"
        "train: {batch_size: 8, steps: 500, lr: 2e-3, schedule: rsqrt, warmup: 500, "
        "weight_decay: 0, beta1: 0.8, beta2: 0.98, eps: 1e-9, clip_norm: 0, eval_every: 20, "
        "eval_batches: 4, log_every: 5, checkpoint: false}\n";
    ConfigSet cs;
    load_ok(y, NULL, 0, &cs);
    const ExperimentConfig *c = &cs.runs[0];
    ck_assert_str_eq(c->name, "quick-start_1.x");
    ck_assert_str_eq(c->run_id, "quick-start_1.x");
    ck_assert_uint_eq(c->seed, 9007199254740991ull);
    ck_assert_int_eq(c->threads, 3);
    ck_assert_str_eq(c->output_dir, "out/q");
    ck_assert_int_eq(task_opt_int(c, "num_train"), 20000);
    const TaskSpec *t = task_get(c->task_index);
    ck_assert_int_eq(opt_bool(&c->task_opts, t->opts, t->n_opts, "parens"), 1);
    ck_assert_int_eq(c->task_opts.set[opt_index(t->opts, t->n_opts, "num_train")], 1);
    ck_assert_int_eq(c->layers, 3);
    ck_assert_int_eq(c->d_model, 96);
    ck_assert_int_eq(c->heads, 6);
    ck_assert_int_eq(c->d_ff, 200);
    ck_assert_float_eq(c->dropout, 0.0f);
    ck_assert_int_eq(c->max_len, 100);
    ck_assert_int_eq(c->pooling, POOL_MEAN);
    ck_assert_int_eq(c->positions, POS_NONE);
    ck_assert_int_eq(c->head_hidden, 7);
    const MixerSpec *m = mixer_get(c->mixer_index);
    ck_assert_str_eq(m->name, "full");
    ck_assert_int_eq(opt_bool(&c->mixer_opts, m->opts, m->n_opts, "causal"), 1);
    ck_assert_int_eq(opt_bool(&c->mixer_opts, m->opts, m->n_opts, "bias"), 0);
    ck_assert_int_eq(c->batch_size, 8);
    ck_assert_int_eq(c->steps, 500);
    ck_assert_double_eq(c->lr, 2e-3);
    ck_assert_int_eq(c->schedule, SCHED_RSQRT);
    ck_assert_int_eq(c->warmup, 500);
    ck_assert_double_eq(c->weight_decay, 0.0);
    ck_assert_double_eq(c->beta1, 0.8);
    ck_assert_double_eq(c->beta2, 0.98);
    ck_assert_double_eq(c->eps, 1e-9);
    ck_assert_double_eq(c->clip_norm, 0.0);
    ck_assert_int_eq(c->eval_every, 20);
    ck_assert_int_eq(c->eval_batches, 4);
    ck_assert_int_eq(c->log_every, 5);
    ck_assert_int_eq(c->checkpoint, 0);
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_name_defaults_to_file_stem_without_directory_or_extension) {
    ConfigSet cs;
    XbError err;
    ck_assert_int_eq(cfg_load_string(BASE, "configs/lra/my-run.v2.yaml", NULL, 0, &cs, &err), 0);
    ck_assert_str_eq(cs.runs[0].name, "my-run.v2");
    ck_assert_str_eq(cs.runs[0].output_dir, "results/my-run.v2");
    ck_assert_str_eq(cs.runs[0].source, "configs/lra/my-run.v2.yaml");
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_int_accepts_sign_and_float_accepts_integer_and_exponent) {
    ConfigSet cs;
    char *y = base_plus("  lr: 3\n  eps: 1E-7\n  beta1: .5\nexperiment:\n  seed: +0\n");
    load_ok(y, NULL, 0, &cs);
    ck_assert_double_eq(cs.runs[0].lr, 3.0);
    ck_assert_double_eq(cs.runs[0].eps, 1e-7);
    ck_assert_double_eq(cs.runs[0].beta1, 0.5);
    ck_assert_uint_eq(cs.runs[0].seed, 0);
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_mixer_given_as_plain_scalar) {
    ConfigSet cs;
    char *y = with_line("  layers: 2\n", "  layers: 2\n  mixer: full\n");
    load_ok(y, NULL, 0, &cs);
    ck_assert_str_eq(mixer_get(cs.runs[0].mixer_index)->name, "full");
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_empty_sections_count_as_absent) {
    ConfigSet cs;
    load_ok("experiment:\ntask:\n  name: listops\nmodel:\ntrain: ~\nsweep: {}\n", NULL, 0, &cs);
    ck_assert_int_eq(cs.n, 1);
    ck_assert_int_eq(cs.runs[0].layers, 2);
    cfg_set_free(&cs);
}
END_TEST

/* ---- errors 1-3: reading and shape ---- */

START_TEST(test_missing_file_reports_strerror) {
    ConfigSet cs;
    XbError err;
    const char *path = "/nonexistent-dir-xb/none.yaml";
    ck_assert_int_eq(cfg_load(path, NULL, 0, &cs, &err), -1);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    char buf[1024];
    xb_error_format(&err, buf, sizeof buf);
    ck_assert_str_eq(buf, "/nonexistent-dir-xb/none.yaml: cannot read: No such file or directory");
}
END_TEST

START_TEST(test_cfg_load_reads_a_file) {
    char path[] = "/tmp/xb-cfg-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, BASE, strlen(BASE)), (ssize_t)strlen(BASE));
    close(fd);
    ConfigSet cs;
    XbError err;
    const char *sets[] = {"model.layers=5"};
    ck_assert_int_eq(cfg_load(path, sets, 1, &cs, &err), 0);
    ck_assert_int_eq(cs.runs[0].layers, 5);
    ck_assert_int_eq(task_opt_int(&cs.runs[0], "num_train"), 100);
    ck_assert_str_eq(cs.runs[0].source, path);
    ck_assert_str_eq(cs.runs[0].name, path + 5); /* stem: no directory, no extension */
    cfg_set_free(&cs);
    unlink(path);
}
END_TEST

START_TEST(test_yaml_syntax_error_reports_problem_and_context) {
    expect_line_error("  layers: 2", "  layers: [2",
                      "t.yaml:6:6: YAML syntax error: did not find expected ',' or ']' "
                      "(while parsing a flow sequence)");
}
END_TEST

START_TEST(test_empty_document_is_rejected_at_line_1) {
    const char *msg =
        "t.yaml:1:1: expected a mapping with sections experiment, task, model, train, "
        "sweep";
    expect_error("", NULL, 0, msg);
    expect_error("# only a comment\n", NULL, 0, msg);
}
END_TEST

START_TEST(test_top_level_not_a_mapping_is_rejected) {
    const char *msg =
        "t.yaml:1:1: expected a mapping with sections experiment, task, model, train, "
        "sweep";
    expect_error("- a\n- b\n", NULL, 0, msg);
    expect_error("just text\n", NULL, 0, msg);
}
END_TEST

/* ---- errors 4-8: keys and values ---- */

START_TEST(test_unknown_key_suggests_nearest_with_full_path) {
    expect_line_error("  layers: 2", "  layer: 2",
                      "t.yaml:5:3: model.layer: unknown key (did you mean model.layers?)");
    /* a transposition counts as one edit */
    expect_line_error("  steps: 10", "  setps: 10",
                      "t.yaml:7:3: train.setps: unknown key (did you mean train.steps?)");
}
END_TEST

START_TEST(test_unknown_section_suggests_nearest) {
    expect_line_error("model:", "modle:", "t.yaml:4:1: modle: unknown key (did you mean model?)");
}
END_TEST

START_TEST(test_unknown_key_lists_valid_keys_when_none_is_near) {
    expect_line_error("  steps: 10", "  steps: 10\n  foo: 1",
                      "t.yaml:8:3: train.foo: unknown key (valid: batch_size, steps, lr, schedule, "
                      "warmup, weight_decay, beta1, beta2, eps, clip_norm, eval_every, "
                      "eval_batches, log_every, checkpoint, checkpoint_every)");
    expect_line_error(
        "  layers: 2", "  something_else: 2",
        "t.yaml:5:3: model.something_else: unknown key (valid: layers, d_model, "
        "heads, d_ff, dropout, max_len, pooling, positions, head_hidden, funnel, "
        "latents, cross_attends, segment, memory, compress, compressed_memory, ffn, experts, "
        "capacity_factor, eval_capacity_factor, balance_loss, router_z_loss, mixer)");
}
END_TEST

START_TEST(test_unknown_task_option_uses_the_task_table) {
    expect_line_error("  num_train: 100", "  num_trian: 100",
                      "t.yaml:3:3: task.num_trian: unknown key (did you mean task.num_train?)");
    expect_line_error("  num_train: 100", "  zzz: 100",
                      "t.yaml:3:3: task.zzz: unknown key (valid: name, source, data_dir, "
                      "num_train, num_val, num_test, min_length, max_length, max_depth, "
                      "max_args, parens)");
}
END_TEST

START_TEST(test_unknown_mixer_option_uses_the_mixer_table) {
    expect_line_error("  layers: 2", "  layers: 2\n  mixer:\n    name: full\n    casual: true",
                      "t.yaml:8:5: model.mixer.casual: unknown key (did you mean "
                      "model.mixer.causal?)");
    expect_line_error(
        "  layers: 2", "  layers: 2\n  mixer: {name: full, window: 3}",
        "t.yaml:6:23: model.mixer.window: unknown key (valid: name, causal, bias, relative)");
}
END_TEST

START_TEST(test_duplicate_key_reports_first_line) {
    expect_line_error("  layers: 2", "  layers: 2\n  layers: 3",
                      "t.yaml:6:3: model.layers: duplicate key (first given at line 5)");
    char *y = base_plus("model:\n  heads: 1\n");
    expect_error(y, NULL, 0, "t.yaml:8:1: model: duplicate key (first given at line 4)");
    free(y);
}
END_TEST

START_TEST(test_section_not_a_mapping) {
    expect_line_error("train:\n  steps: 10", "train: 5",
                      "t.yaml:6:8: train: expected a mapping, got a scalar");
    expect_line_error("train:\n  steps: 10", "train: [1]",
                      "t.yaml:6:8: train: expected a mapping, got a sequence");
    expect_line_error("  layers: 2", "  layers: 2\n  mixer: [full]",
                      "t.yaml:6:10: model.mixer: expected a mapping, got a sequence");
}
END_TEST

START_TEST(test_scalar_expected_but_collection_given) {
    expect_line_error("  layers: 2", "  layers: [2]",
                      "t.yaml:5:11: model.layers: expected an integer in [1, 64], got a sequence");
    expect_line_error("  steps: 10", "  steps: 10\n  schedule: {a: 1}",
                      "t.yaml:8:13: train.schedule: expected one of: constant, cosine, rsqrt, "
                      "linear, got a mapping");
}
END_TEST

START_TEST(test_int_rejects_words_fractions_exponents_and_quotes) {
    expect_line_error("  layers: 2", "  layers: two",
                      "t.yaml:5:11: model.layers: expected an integer in [1, 64], got \"two\"");
    expect_line_error("  layers: 2", "  layers: 2.5",
                      "t.yaml:5:11: model.layers: expected an integer in [1, 64], got \"2.5\"");
    expect_line_error("  layers: 2", "  layers: 4.0",
                      "t.yaml:5:11: model.layers: expected an integer in [1, 64], got \"4.0\"");
    expect_line_error("  layers: 2", "  layers: 1e1",
                      "t.yaml:5:11: model.layers: expected an integer in [1, 64], got \"1e1\"");
    expect_line_error("  layers: 2", "  layers: \"4\"",
                      "t.yaml:5:11: model.layers: expected an integer in [1, 64], got \"4\"");
    expect_line_error("  layers: 2", "  layers:",
                      "t.yaml:5:10: model.layers: expected an integer in [1, 64], got \"\"");
}
END_TEST

START_TEST(test_float_rejects_words_and_quotes) {
    expect_line_error("  steps: 10", "  steps: 10\n  lr: fast",
                      "t.yaml:8:7: train.lr: expected a number in [1e-10, 10], got \"fast\"");
    expect_line_error("  steps: 10", "  steps: 10\n  lr: '0.1'",
                      "t.yaml:8:7: train.lr: expected a number in [1e-10, 10], got \"0.1\"");
    expect_line_error("  steps: 10", "  steps: 10\n  lr: .nan",
                      "t.yaml:8:7: train.lr: expected a number in [1e-10, 10], got \".nan\"");
}
END_TEST

START_TEST(test_bool_accepts_only_true_and_false) {
    expect_line_error("  steps: 10", "  steps: 10\n  checkpoint: maybe",
                      "t.yaml:8:15: train.checkpoint: expected true or false, got \"maybe\"");
    expect_line_error("  steps: 10", "  steps: 10\n  checkpoint: yes",
                      "t.yaml:8:15: train.checkpoint: expected true or false, got \"yes\"");
    expect_line_error("  steps: 10", "  steps: 10\n  checkpoint: \"true\"",
                      "t.yaml:8:15: train.checkpoint: expected true or false, got \"true\"");
}
END_TEST

START_TEST(test_bad_enum_lists_choices) {
    expect_line_error("  layers: 2", "  layers: 2\n  pooling: max",
                      "t.yaml:6:12: model.pooling: expected one of: cls, mean, none, got \"max\"");
}
END_TEST

/* The mechanism's own check runs at every length a SELF block gives it (config/layout.h): a
 * pooled Funnel stage's, the latents', the recurrence's window; not at a length no SELF block
 * has (a stage of one block is its POOL block alone). */
START_TEST(test_mechanism_checked_at_every_length_it_runs_at) {
    expect_line_error("  layers: 2",
                      "  layers: 4\n  max_len: 512\n  funnel: 2\n  mixer: {name: linformer, k: 300}",
                      "t.yaml:8:3: model.mixer.k: 300 is longer than model.max_len = 257 (valid: "
                      "1 to 257: Linformer shortens the keys); the mechanism runs at length 257 "
                      "there (a pooled funnel stage)");
    expect_line_error("  layers: 2",
                      "  layers: 2\n  max_len: 512\n  latents: 64\n  pooling: mean\n"
                      "  mixer: {name: linformer, k: 300}",
                      "t.yaml:9:3: model.mixer.k: 300 is longer than model.max_len = 64 (valid: "
                      "1 to 64: Linformer shortens the keys); the mechanism runs at length 64 "
                      "there (over model.latents)");
    /* two blocks in two stages: the second is the POOL block, no mechanism runs at 257 */
    ConfigSet cs;
    char *y = with_line("  layers: 2", "  layers: 2\n  max_len: 512\n  funnel: 2\n"
                                       "  mixer: {name: linformer, k: 300}");
    load_ok(y, NULL, 0, &cs);
    cfg_set_free(&cs);
    free(y);
}
END_TEST

/* pooling none puts the head at every input position: it needs a task with per-position
 * targets and blocks that keep the length. */
START_TEST(test_per_position_head_refuses_shortening_blocks_and_classification_tasks) {
    expect_line_error("  layers: 2", "  layers: 2\n  pooling: none\n  funnel: 2",
                      "t.yaml:7:11: model.funnel: the Funnel's stages shorten the sequence, but "
                      "model.pooling: none puts the classifier at every input position (valid: "
                      "model.funnel: 0, or model.pooling: cls or mean)");
    expect_line_error("  layers: 2", "  layers: 2\n  pooling: none\n  latents: 8",
                      "t.yaml:7:12: model.latents: the Perceiver's blocks run over its latents, "
                      "not the input, but model.pooling: none puts the classifier at every input "
                      "position (valid: model.latents: 0, or model.pooling: cls or mean)");
    expect_line_error("  layers: 2", "  layers: 2\n  pooling: none",
                      "t.yaml:6:12: model.pooling: none puts the classifier at every position, "
                      "but task listops has one label per example (valid: cls, mean)");
}
END_TEST

START_TEST(test_out_of_range_reports_text_and_range) {
    expect_line_error("  layers: 2", "  layers: 0",
                      "t.yaml:5:11: model.layers: 0 is out of range (an integer in [1, 64])");
    expect_line_error("  layers: 2", "  layers: 2\n  dropout: 1.5",
                      "t.yaml:6:12: model.dropout: 1.5 is out of range (a number in [0, 0.95])");
    expect_line_error("  num_train: 100", "  num_train: -5",
                      "t.yaml:3:14: task.num_train: -5 is out of range (an integer in [1, "
                      "10000000])");
    expect_line_error("  layers: 2", "  layers: 99999999999999999999",
                      "t.yaml:5:11: model.layers: 99999999999999999999 is out of range (an "
                      "integer in [1, 64])");
    char *y = base_plus("experiment: {seed: 9007199254740992}\n");
    expect_error(y, NULL, 0,
                 "t.yaml:8:20: experiment.seed: 9007199254740992 is out of range (an integer in "
                 "[0, 9007199254740991])");
    free(y);
}
END_TEST

#define NAME_VALID                                                                                 \
    "expected a name of 1 to 100 characters from A-Z a-z 0-9 . _ -, not starting with . or - (it " \
    "names the run's files)"

START_TEST(test_experiment_name_must_be_file_name_safe) {
    char *y = base_plus("experiment:\n  name: a/b\n");
    expect_error(y, NULL, 0, "t.yaml:9:9: experiment.name: " NAME_VALID ", got \"a/b\"");
    free(y);
}
END_TEST

/* A run name becomes OUTPUT_DIR/NAME.json: ".", ".." and ".x" read as directories or hidden
 * files, "-rf" as an option of the commands that handle it; a config file's stem that starts
 * so is made valid, not refused. */
START_TEST(test_run_names_that_are_not_plain_file_names_are_refused) {
    static const char *const bad[] = {".", "..", "-rf", ".hidden", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], want[512];
        snprintf(text, sizeof text, "experiment:\n  name: \"%s\"\n", bad[i]);
        char *y = base_plus(text);
        snprintf(want, sizeof want, "t.yaml:9:9: experiment.name: " NAME_VALID ", got \"%s\"",
                 bad[i]);
        expect_error(y, NULL, 0, want);
        free(y);
    }
    const char *sets[] = {"experiment.name=.."};
    expect_error(BASE, sets, 1, "--set:1:17: experiment.name: " NAME_VALID ", got \"..\"");
    ConfigSet cs;
    XbError err;
    ck_assert_int_eq(cfg_load_string(BASE, "configs/-rf.yaml", NULL, 0, &cs, &err), 0);
    ck_assert_str_eq(cs.runs[0].name, "_rf");
    cfg_set_free(&cs);
    ck_assert_int_eq(cfg_load_string(BASE, "configs/.yaml", NULL, 0, &cs, &err), 0);
    ck_assert_str_eq(cs.runs[0].name, "_yaml");
    cfg_set_free(&cs);
    load_ok("task: {name: listops}\nexperiment: {name: a.b-c_1}\n", NULL, 0, &cs);
    ck_assert_str_eq(cs.runs[0].name, "a.b-c_1");
    cfg_set_free(&cs);
}
END_TEST

/* ---- one document, no tags, no NUL bytes, bounded nesting and size ---- */

START_TEST(test_a_second_yaml_document_is_an_error) {
    char *y = base_plus("---\nmodel: {layers: 3}\n");
    expect_error(y, NULL, 0,
                 "t.yaml:8:1: a second YAML document (a config is one document: remove this '---' "
                 "and what follows, or split them into two files)");
    free(y);
    y = base_plus("---\n"); /* even an empty one */
    expect_error(y, NULL, 0,
                 "t.yaml:8:1: a second YAML document (a config is one document: remove this '---' "
                 "and what follows, or split them into two files)");
    free(y);
    ConfigSet cs; /* markers around the one document are fine */
    load_ok("---\ntask: {name: listops}\n...\n", NULL, 0, &cs);
    cfg_set_free(&cs);
}
END_TEST

#define TAG_MSG(t)                                                                                 \
    "YAML tags are not supported, got " t " (a config's values take their type from their key: "   \
    "write the value without the tag)"

START_TEST(test_tags_are_refused_at_their_line_and_key) {
    expect_line_error("  layers: 2", "  layers: !!str 2",
                      "t.yaml:5:11: model.layers: " TAG_MSG("!!str"));
    expect_line_error("  layers: 2", "  layers: !!int 2",
                      "t.yaml:5:11: model.layers: " TAG_MSG("!!int"));
    expect_line_error("  name: listops", "  name: !custom listops",
                      "t.yaml:2:9: task.name: " TAG_MSG("!custom"));
    expect_line_error("model:\n", "model: !!map\n", "t.yaml:4:8: model: " TAG_MSG("!!map"));
    expect_line_error("  steps: 10", "  !!str steps: 10", "t.yaml:7:3: train: " TAG_MSG("!!str"));
    char *y = base_plus("sweep:\n  model.layers: [1, !!float 2]\n");
    expect_error(y, NULL, 0, "t.yaml:9:21: sweep.model.layers: " TAG_MSG("!!float"));
    free(y);
}
END_TEST

/* Writes n bytes of text to a temporary file; its path into path (64 bytes). */
static void temp_config(char *path, const char *text, size_t n) {
    snprintf(path, 64, "/tmp/xb-cfg-XXXXXX");
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static void expect_file_error(const char *path, const char *msg) {
    ConfigSet cs;
    XbError err;
    ck_assert_int_eq(cfg_load(path, NULL, 0, &cs, &err), -1);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    char buf[2048], want[2048];
    xb_error_format(&err, buf, sizeof buf);
    snprintf(want, sizeof want, "%s%s", path, msg);
    ck_assert_str_eq(buf, want);
}

/* libyaml reads a C string: a NUL byte would end the config there and the rest would be ignored. */
START_TEST(test_a_nul_byte_is_an_error_not_the_end_of_the_config) {
    static const char text[] = "task:\n  name: listops\nmodel:\n  lay\0ers: 2\n";
    char path[64];
    temp_config(path, text, sizeof text - 1);
    expect_file_error(path, ":4:6: a NUL byte (a config is text: UTF-8 without NUL bytes)");
    unlink(path);
    char *y = base_plus("experiment:\n  name: \"run\\0x\"\n"); /* the escape \0 */
    expect_error(y, NULL, 0,
                 "t.yaml:9:9: experiment.name: a NUL byte in the value (a \\0 escape; a config's "
                 "text holds none)");
    free(y);
}
END_TEST

START_TEST(test_config_size_and_file_type_are_bounded) {
    const size_t n = (1u << 20) + 1;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    memcpy(big, "task: {name: listops}\n", 22);
    char path[64];
    temp_config(path, big, n);
    free(big);
    expect_file_error(path,
                      ": cannot read: it is 1.0 MiB, more than a config may be (at most 1 MiB)");
    unlink(path);
    expect_file_error("/dev/zero", ": cannot read: it is a character device, not a regular file");
    /* a FIFO without a writer: refused at once, not waited on */
    snprintf(path, sizeof path, "/tmp/xb-fifo-%d", (int)getpid());
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    expect_file_error(path, ": cannot read: it is a FIFO, not a regular file");
    unlink(path);
}
END_TEST

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Appends printf-style text at buf + *k (cap bytes in all), advancing *k. */
__attribute__((format(printf, 4, 5))) static void appendf(char *buf, size_t cap, size_t *k,
                                                          const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int w = vsnprintf(buf + *k, cap - *k, fmt, ap);
    va_end(ap);
    ck_assert(w >= 0 && (size_t)w < cap - *k);
    *k += (size_t)w;
}

/* 200 KB of nested flow sequences took libyaml 37 s (its scanner is quadratic in the depth): the
 * nesting is refused where it passes the limit, before the rest is scanned. */
START_TEST(test_deep_nesting_is_refused_at_once) {
    const size_t depth = 100000, cap = 2 * depth + 64;
    char *y = malloc(cap);
    ck_assert_ptr_nonnull(y);
    size_t k = 0;
    appendf(y, cap, &k, "task: {name: listops}\nmodel: ");
    memset(y + k, '[', depth), k += depth;
    memset(y + k, ']', depth), k += depth;
    y[k] = '\0';
    const double t0 = now_s();
    expect_error(y, NULL, 0,
                 "t.yaml:2:39: model: YAML nested more than 32 levels deep (a config nests 3: "
                 "section, key, and a mixer option or sweep list)");
    ck_assert_double_lt(now_s() - t0, 1.0);
    /* block mappings nest the same way */
    k = 0;
    for (int d = 0; d < 40; d++) appendf(y, cap, &k, "%*sk%d:\n", 2 * d, "", d);
    expect_error(y, NULL, 0,
                 "t.yaml:33:65: k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15.k16.k17.k18."
                 "k19.k20.k21.k22.k23.k24.k25.k26.k27.k28.k29.k30.k31: YAML nested more than 32 "
                 "levels deep (a config nests 3: section, key, and a mixer option or sweep list)");
    free(y);
}
END_TEST

/* ---- errors 9-13: names and cross-checks ---- */

START_TEST(test_unknown_task_suggests_or_lists) {
    expect_line_error("  name: listops", "  name: listop",
                      "t.yaml:2:9: task.name: unknown task \"listop\" (did you mean listops?)");
    expect_line_error("  name: listops", "  name: imdb",
                      "t.yaml:2:9: task.name: unknown task \"imdb\" (valid: listops, text, "
                      "retrieval, image, pathfinder, parity, recall, mqar, needle, selcopy)");
}
END_TEST

START_TEST(test_missing_task_name_at_task_key_or_line_1) {
    expect_line_error("  name: listops\n", "",
                      "t.yaml:1:1: task.name: missing (one of: listops, text, retrieval, image, "
                      "pathfinder, parity, recall, mqar, needle, selcopy)");
    expect_error("model:\n  layers: 2\ntask:\n  num_train: 5\n", NULL, 0,
                 "t.yaml:3:1: task.name: missing (one of: listops, text, retrieval, image, "
                 "pathfinder, parity, recall, mqar, needle, selcopy)");
    expect_error("model:\n  layers: 2\n", NULL, 0,
                 "t.yaml:1:1: task.name: missing (one of: listops, text, retrieval, image, "
                 "pathfinder, parity, recall, mqar, needle, selcopy)");
}
END_TEST

START_TEST(test_unknown_mechanism_suggests_or_lists) {
    expect_line_error("  layers: 2", "  layers: 2\n  mixer:\n    name: ful",
                      "t.yaml:7:11: model.mixer.name: unknown mechanism \"ful\" (did you mean "
                      "full?)");
    /* the list is the registry's, whatever mechanisms it holds */
    char want[1024];
    int k = snprintf(want, sizeof want,
                     "t.yaml:6:10: model.mixer.name: unknown mechanism \"qqqqqqqqqq\" (valid: ");
    for (int i = 0; i < mixer_count(); i++)
        k += snprintf(want + k, sizeof want - (size_t)k, "%s%s", i ? ", " : "", mixer_get(i)->name);
    snprintf(want + k, sizeof want - (size_t)k, ")");
    expect_line_error("  layers: 2", "  layers: 2\n  mixer: qqqqqqqqqq", want);
}
END_TEST

START_TEST(test_heads_must_divide_d_model) {
    expect_line_error("  layers: 2", "  layers: 2\n  heads: 3",
                      "t.yaml:6:10: model.heads: 3 does not divide model.d_model = 64 (valid: a "
                      "divisor of 64, e.g. 1, 2, 4, 8, 16)");
    /* heads not given: reported at d_model; at most 8 divisors up to 16 */
    expect_line_error("  layers: 2", "  layers: 2\n  d_model: 720\n  heads: 7",
                      "t.yaml:7:10: model.heads: 7 does not divide model.d_model = 720 (valid: a "
                      "divisor of 720, e.g. 1, 2, 3, 4, 5, 6, 8, 9)");
    expect_line_error("  layers: 2", "  layers: 2\n  d_model: 945",
                      "t.yaml:6:12: model.heads: 2 does not divide model.d_model = 945 (valid: a "
                      "divisor of 945, e.g. 1, 3, 5, 7, 9, 15)");
    expect_line_error("  layers: 2", "  layers: 2\n  d_model: 35",
                      "t.yaml:6:12: model.heads: 2 does not divide model.d_model = 35 (valid: a "
                      "divisor of 35, e.g. 1, 5, 7)");
}
END_TEST

START_TEST(test_warmup_must_not_exceed_steps) {
    expect_line_error("  steps: 10", "  steps: 10\n  warmup: 20",
                      "t.yaml:8:11: train.warmup: 20 is greater than train.steps = 10 (valid: 0 "
                      "to 10)");
    ConfigSet cs;
    char *y = with_line("  steps: 10", "  steps: 10\n  warmup: 10");
    load_ok(y, NULL, 0, &cs);
    ck_assert_int_eq(cs.runs[0].warmup, 10);
    cfg_set_free(&cs);
    free(y);
    /* before an inverse-sqrt decay a longer warm-up is allowed (LRA's retrieval) */
    y = with_line("  steps: 10", "  steps: 10\n  warmup: 20\n  schedule: rsqrt");
    load_ok(y, NULL, 0, &cs);
    ck_assert_int_eq(cs.runs[0].warmup, 20);
    ck_assert_int_eq(cs.runs[0].schedule, SCHED_RSQRT);
    cfg_set_free(&cs);
    free(y);
}
END_TEST

/* ---- errors 14-15: sweep and overrides ---- */

START_TEST(test_sweep_value_must_be_a_non_empty_list) {
    char *y = base_plus("sweep:\n  model.layers: 3\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:17: sweep.model.layers: expected a non-empty list of values");
    free(y);
    y = base_plus("sweep:\n  model.layers: []\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:17: sweep.model.layers: expected a non-empty list of values");
    free(y);
}
END_TEST

START_TEST(test_sweep_key_must_be_a_valid_dotted_key) {
    char *y = base_plus("sweep:\n  model.layres: [1]\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:3: sweep.model.layres: unknown key (did you mean sweep.model.layers?)");
    free(y);
    y = base_plus("sweep:\n  modle.layers: [1]\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:3: sweep.modle.layers: unknown key (did you mean sweep.model.layers?)");
    free(y);
    /* task options are checked against the task's table once its name is known */
    y = base_plus("sweep:\n  task.num_trian: [1]\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:3: sweep.task.num_trian: unknown key (did you mean "
                 "sweep.task.num_train?)");
    free(y);
}
END_TEST

START_TEST(test_sweep_item_errors_point_at_the_item) {
    char *y = base_plus("sweep:\n  model.layers: [1, 99]\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:21: model.layers: 99 is out of range (an integer in [1, 64])");
    free(y);
    y = base_plus("sweep:\n  model.mixer.name: [full, fool]\n");
    expect_error(y, NULL, 0,
                 "t.yaml:9:28: model.mixer.name: unknown mechanism \"fool\" (did you mean full?)");
    free(y);
}
END_TEST

START_TEST(test_name_and_sweep_cannot_be_swept) {
    char *y = base_plus("sweep:\n  experiment.name: [a, b]\n");
    expect_error(y, NULL, 0, "t.yaml:9:3: sweep.experiment.name: cannot be swept");
    free(y);
    y = base_plus("sweep:\n  sweep.x: [a]\n");
    expect_error(y, NULL, 0, "t.yaml:9:3: sweep.sweep.x: cannot be swept");
    free(y);
}
END_TEST

START_TEST(test_override_without_equals_or_key) {
    const char *a[] = {"model.layers"};
    expect_error(BASE, a, 1, "--set:1:1: expected KEY=VALUE, got \"model.layers\"");
    const char *b[] = {"model.layers=3", "=3"};
    expect_error(BASE, b, 2, "--set:2:1: expected KEY=VALUE, got \"=3\"");
}
END_TEST

START_TEST(test_override_errors_report_position_and_column) {
    const char *a[] = {"model.layers=abc"};
    expect_error(BASE, a, 1,
                 "--set:1:14: model.layers: expected an integer in [1, 64], got \"abc\"");
    const char *b[] = {"train.lr=0.1", "model.layres=2"};
    expect_error(BASE, b, 2, "--set:2:1: model.layres: unknown key (did you mean model.layers?)");
    const char *c[] = {"task.name=lisops"};
    expect_error(BASE, c, 1,
                 "--set:1:11: task.name: unknown task \"lisops\" (did you mean listops?)");
    const char *d[] = {"model.heads=5"};
    expect_error(BASE, d, 1,
                 "--set:1:13: model.heads: 5 does not divide model.d_model = 64 (valid: a "
                 "divisor of 64, e.g. 1, 2, 4, 8, 16)");
}
END_TEST

/* ---- semantics ---- */

START_TEST(test_overrides_win_over_file_and_sweep) {
    char *y = base_plus("sweep:\n  model.layers: [3, 4]\n  train.lr: [0.1, 0.2]\n");
    const char *sets[] = {"model.layers=7", "task.num_train=55", "model.mixer.causal=true",
                          "model.layers=8"};
    ConfigSet cs;
    load_ok(y, sets, 4, &cs);
    ck_assert_int_eq(cs.n, 4);
    for (int r = 0; r < cs.n; r++) {
        const ExperimentConfig *c = &cs.runs[r];
        ck_assert_int_eq(c->layers, 8); /* the last override wins */
        ck_assert_int_eq(task_opt_int(c, "num_train"), 55);
        const MixerSpec *m = mixer_get(c->mixer_index);
        ck_assert_int_eq(opt_bool(&c->mixer_opts, m->opts, m->n_opts, "causal"), 1);
        ck_assert_double_eq(c->lr, r % 2 ? 0.2 : 0.1);
    }
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_sweep_is_cartesian_with_last_key_fastest_and_named_runs) {
    char *y = base_plus("experiment: {name: quickstart}\n"
                        "sweep:\n  model.layers: [1, 2]\n  train.lr: [1e-3, 0.01, 1]\n");
    ConfigSet cs;
    load_ok(y, NULL, 0, &cs);
    ck_assert_int_eq(cs.n, 6);
    const int layers[] = {1, 1, 1, 2, 2, 2};
    const double lr[] = {1e-3, 0.01, 1, 1e-3, 0.01, 1};
    for (int r = 0; r < 6; r++) {
        ck_assert_int_eq(cs.runs[r].layers, layers[r]);
        ck_assert_double_eq(cs.runs[r].lr, lr[r]);
        ck_assert_int_eq(cs.runs[r].sweep_index, r);
        ck_assert_int_eq(cs.runs[r].sweep_size, 6);
        ck_assert_str_eq(cs.runs[r].name, "quickstart");
        ck_assert_str_eq(cs.runs[r].output_dir, "results/quickstart");
    }
    ck_assert_str_eq(cs.runs[0].run_id, "quickstart__layers-1__lr-1e-3");
    ck_assert_str_eq(cs.runs[5].run_id, "quickstart__layers-2__lr-1");
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_run_id_replaces_unsafe_characters) {
    char *y = base_plus("experiment: {name: q}\n"
                        "sweep:\n  experiment.output_dir: [\"a b/c_d\"]\n");
    ConfigSet cs;
    load_ok(y, NULL, 0, &cs);
    ck_assert_int_eq(cs.n, 1);
    ck_assert_str_eq(cs.runs[0].output_dir, "a b/c_d");
    ck_assert_str_eq(cs.runs[0].run_id, "q__output_dir-a_b_c_d");
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_sweep_over_mixer_name_and_its_options) {
    char *y = base_plus("experiment: {name: quickstart}\n"
                        "sweep:\n  model.layers: [1, 2]\n  model.mixer.name: [full]\n"
                        "  model.mixer.bias: [false, true]\n");
    ConfigSet cs;
    load_ok(y, NULL, 0, &cs);
    ck_assert_int_eq(cs.n, 4);
    ck_assert_str_eq(cs.runs[0].run_id, "quickstart__layers-1__name-full__bias-false");
    ck_assert_str_eq(cs.runs[3].run_id, "quickstart__layers-2__name-full__bias-true");
    const MixerSpec *m = mixer_get(cs.runs[3].mixer_index);
    ck_assert_str_eq(m->name, "full");
    ck_assert_int_eq(opt_bool(&cs.runs[3].mixer_opts, m->opts, m->n_opts, "bias"), 1);
    ck_assert_int_eq(opt_bool(&cs.runs[2].mixer_opts, m->opts, m->n_opts, "bias"), 0);
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_override_can_set_mixer_name_and_task_options) {
    const char *sets[] = {"model.mixer.name=full", "task.num_train=100", "model.mixer=full",
                          "experiment.name=x1", "train.checkpoint=false"};
    ConfigSet cs;
    load_ok(BASE, sets, 5, &cs);
    ck_assert_str_eq(cs.runs[0].name, "x1");
    ck_assert_str_eq(cs.runs[0].run_id, "x1");
    ck_assert_str_eq(cs.runs[0].output_dir, "results/x1");
    ck_assert_int_eq(cs.runs[0].checkpoint, 0);
    cfg_set_free(&cs);
}
END_TEST

/* ---- JSON and hash ---- */

START_TEST(test_to_json_holds_every_resolved_value_typed) {
    char *y = with_line("  layers: 2", "  layers: 3\n  pooling: mean\n  dropout: 0.1");
    ConfigSet cs;
    load_ok(y, NULL, 0, &cs);
    cJSON *j = cfg_to_json(&cs.runs[0]);
    char *text = cJSON_PrintUnformatted(j);
    cJSON *back = cJSON_Parse(text);
    ck_assert_ptr_nonnull(back);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(back, "experiment");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, "t");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(e, "seed")->valuedouble, 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "output_dir")->valuestring, "results/t");
    cJSON *t = cJSON_GetObjectItemCaseSensitive(back, "task");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(t, "name")->valuestring, "listops");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(t, "num_train")->valuedouble, 100);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(t, "source")->valuestring, "generate");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(t, "parens")));
    cJSON *m = cJSON_GetObjectItemCaseSensitive(back, "model");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(m, "layers")->valuedouble, 3);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(m, "dropout")->valuedouble, 0.1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "pooling")->valuestring, "mean");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(m, "positions")->valuestring, "sinusoidal");
    cJSON *mx = cJSON_GetObjectItemCaseSensitive(m, "mixer");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(mx, "name")->valuestring, "full");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(mx, "causal")));
    cJSON *tr = cJSON_GetObjectItemCaseSensitive(back, "train");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(tr, "steps")->valuedouble, 10);
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(tr, "lr")->valuedouble, 1e-3);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(tr, "schedule")->valuestring, "cosine");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tr, "checkpoint")));
    ck_assert_int_eq(cJSON_GetArraySize(e), 4);
    ck_assert_int_eq(cJSON_GetArraySize(m), 23);
    ck_assert_int_eq(cJSON_GetArraySize(tr), 15);
    cJSON_Delete(back);
    cJSON_free(text);
    cJSON_Delete(j);
    cfg_set_free(&cs);
    free(y);
}
END_TEST

START_TEST(test_hash_ignores_name_threads_and_output_dir) {
    ConfigSet a, b;
    char *ya = base_plus("experiment: {name: a, threads: 1, output_dir: x}\n");
    char *yb = base_plus("experiment: {name: b, threads: 4, output_dir: y}\n");
    load_ok(ya, NULL, 0, &a);
    load_ok(yb, NULL, 0, &b);
    ck_assert_uint_eq(cfg_hash(&a.runs[0]), cfg_hash(&b.runs[0]));
    cfg_set_free(&a);
    cfg_set_free(&b);
    free(ya);
    free(yb);
}
END_TEST

START_TEST(test_hash_differs_when_lr_or_seed_differs) {
    ConfigSet a, b, c;
    const char *lr[] = {"train.lr=0.002"};
    const char *seed[] = {"experiment.seed=2"};
    load_ok(BASE, NULL, 0, &a);
    load_ok(BASE, lr, 1, &b);
    load_ok(BASE, seed, 1, &c);
    ck_assert_uint_ne(cfg_hash(&a.runs[0]), cfg_hash(&b.runs[0]));
    ck_assert_uint_ne(cfg_hash(&a.runs[0]), cfg_hash(&c.runs[0]));
    /* a default written out equals the default left out */
    ConfigSet d;
    char *y = with_line("  steps: 10", "  steps: 10\n  lr: 0.001");
    load_ok(y, NULL, 0, &d);
    ck_assert_uint_eq(cfg_hash(&a.runs[0]), cfg_hash(&d.runs[0]));
    cfg_set_free(&a);
    cfg_set_free(&b);
    cfg_set_free(&c);
    cfg_set_free(&d);
    free(y);
}
END_TEST

START_TEST(test_enum_names) {
    ck_assert_str_eq(cfg_pool_name(POOL_MEAN), "mean");
    ck_assert_str_eq(cfg_pos_name(POS_LEARNED), "learned");
    ck_assert_str_eq(cfg_sched_name(SCHED_LINEAR), "linear");
}
END_TEST

/* 60000 keys in the task section took 27 s (each key is checked against the ones before it),
 * 40000 aliases 8 s (libyaml looks each up in the list of anchors): both are refused where they
 * pass their limit. */
START_TEST(test_many_keys_or_anchors_are_refused_at_once) {
    const int n = 60000;
    const size_t cap = (size_t)n * 24 + 64;
    char *y = malloc(cap);
    ck_assert_ptr_nonnull(y);
    size_t k = 0;
    appendf(y, cap, &k, "task:\n  name: listops\n");
    for (int i = 0; i < n; i++) appendf(y, cap, &k, "  k%d: 1\n", i);
    double t0 = now_s();
    expect_error(y, NULL, 0,
                 "t.yaml:258:3: task: more than 256 keys in one mapping (a section has a few "
                 "dozen)");
    ck_assert_double_lt(now_s() - t0, 1.0);
    k = 0;
    appendf(y, cap, &k, "task: {name: listops}\nsweep:\n  model.layers: [");
    for (int i = 0; i < n / 2; i++) appendf(y, cap, &k, "%s&a%d 1", i ? ", " : "", i);
    appendf(y, cap, &k, "]\n  model.heads: [");
    for (int i = 0; i < n / 2; i++) appendf(y, cap, &k, "%s*a%d", i ? ", " : "", i);
    appendf(y, cap, &k, "]\n");
    t0 = now_s();
    expect_error(y, NULL, 0, "t.yaml:3:2212: more than 256 anchors (&name) in one config");
    ck_assert_double_lt(now_s() - t0, 1.0);
    free(y);
}
END_TEST

/* A message is one line: a value's control characters are shown escaped, a long value cut. */
START_TEST(test_values_in_messages_are_one_line) {
    expect_line_error(
        "  layers: 2", "  layers: \"1\\n2\\x1b\"",
        "t.yaml:5:11: model.layers: expected an integer in [1, 64], got \"1\\n2\\x1b\"");
    char *y =
        with_line("  layers: 2", "  layers: "
                                 "123456789012345678901234567890123456789012345678901234567890"
                                 "1234567890");
    expect_error(y, NULL, 0,
                 "t.yaml:5:11: model.layers: "
                 "123456789012345678901234567890123456789012345678901234567890... is out of "
                 "range (an integer in [1, 64])");
    free(y);
}
END_TEST

/* A --set value that is not UTF-8 went into the report, which eval then could not read. */
START_TEST(test_override_value_must_be_utf8) {
    const char *sets[] = {"experiment.output_dir=r\xe9sultats"};
    expect_error(BASE, sets, 1,
                 "--set:1:23: experiment.output_dir: expected UTF-8 text (byte 0xe9 at column 24)");
    const char *bad[] = {"experiment.output_dir=\xc0\xaf", "experiment.output_dir=\xed\xa0\x80",
                         "experiment.output_dir=ab\xf4\x90\x80\x80",
                         "experiment.output_dir=\xe2\x82"};
    static const char *const msgs[] = {"byte 0xc0 at column 23", "byte 0xed at column 23",
                                       "byte 0xf4 at column 25", "byte 0xe2 at column 23"};
    for (int i = 0; i < 4; i++) {
        char want[256];
        snprintf(want, sizeof want, "--set:1:23: experiment.output_dir: expected UTF-8 text (%s)",
                 msgs[i]);
        expect_error(BASE, &bad[i], 1, want);
    }
    const char *good[] = {"experiment.output_dir=r\xc3\xa9sultats/\xe2\x82\xac/\xf0\x9f\x98\x80"};
    ConfigSet cs;
    load_ok(BASE, good, 1, &cs);
    ck_assert_str_eq(cs.runs[0].output_dir, "r\xc3\xa9sultats/\xe2\x82\xac/\xf0\x9f\x98\x80");
    cfg_set_free(&cs);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults_filled_for_minimal_config);
    tcase_add_test(tc, test_every_section_parses_given_values);
    tcase_add_test(tc, test_name_defaults_to_file_stem_without_directory_or_extension);
    tcase_add_test(tc, test_int_accepts_sign_and_float_accepts_integer_and_exponent);
    tcase_add_test(tc, test_mixer_given_as_plain_scalar);
    tcase_add_test(tc, test_empty_sections_count_as_absent);
    tcase_add_test(tc, test_missing_file_reports_strerror);
    tcase_add_test(tc, test_cfg_load_reads_a_file);
    tcase_add_test(tc, test_yaml_syntax_error_reports_problem_and_context);
    tcase_add_test(tc, test_empty_document_is_rejected_at_line_1);
    tcase_add_test(tc, test_top_level_not_a_mapping_is_rejected);
    tcase_add_test(tc, test_unknown_key_suggests_nearest_with_full_path);
    tcase_add_test(tc, test_unknown_section_suggests_nearest);
    tcase_add_test(tc, test_unknown_key_lists_valid_keys_when_none_is_near);
    tcase_add_test(tc, test_unknown_task_option_uses_the_task_table);
    tcase_add_test(tc, test_unknown_mixer_option_uses_the_mixer_table);
    tcase_add_test(tc, test_duplicate_key_reports_first_line);
    tcase_add_test(tc, test_section_not_a_mapping);
    tcase_add_test(tc, test_scalar_expected_but_collection_given);
    tcase_add_test(tc, test_int_rejects_words_fractions_exponents_and_quotes);
    tcase_add_test(tc, test_float_rejects_words_and_quotes);
    tcase_add_test(tc, test_bool_accepts_only_true_and_false);
    tcase_add_test(tc, test_bad_enum_lists_choices);
    tcase_add_test(tc, test_per_position_head_refuses_shortening_blocks_and_classification_tasks);
    tcase_add_test(tc, test_mechanism_checked_at_every_length_it_runs_at);
    tcase_add_test(tc, test_out_of_range_reports_text_and_range);
    tcase_add_test(tc, test_experiment_name_must_be_file_name_safe);
    tcase_add_test(tc, test_run_names_that_are_not_plain_file_names_are_refused);
    tcase_add_test(tc, test_a_second_yaml_document_is_an_error);
    tcase_add_test(tc, test_tags_are_refused_at_their_line_and_key);
    tcase_add_test(tc, test_a_nul_byte_is_an_error_not_the_end_of_the_config);
    tcase_add_test(tc, test_config_size_and_file_type_are_bounded);
    tcase_add_test(tc, test_deep_nesting_is_refused_at_once);
    tcase_add_test(tc, test_many_keys_or_anchors_are_refused_at_once);
    tcase_add_test(tc, test_values_in_messages_are_one_line);
    tcase_add_test(tc, test_override_value_must_be_utf8);
    tcase_add_test(tc, test_unknown_task_suggests_or_lists);
    tcase_add_test(tc, test_missing_task_name_at_task_key_or_line_1);
    tcase_add_test(tc, test_unknown_mechanism_suggests_or_lists);
    tcase_add_test(tc, test_heads_must_divide_d_model);
    tcase_add_test(tc, test_warmup_must_not_exceed_steps);
    tcase_add_test(tc, test_sweep_value_must_be_a_non_empty_list);
    tcase_add_test(tc, test_sweep_key_must_be_a_valid_dotted_key);
    tcase_add_test(tc, test_sweep_item_errors_point_at_the_item);
    tcase_add_test(tc, test_name_and_sweep_cannot_be_swept);
    tcase_add_test(tc, test_override_without_equals_or_key);
    tcase_add_test(tc, test_override_errors_report_position_and_column);
    tcase_add_test(tc, test_overrides_win_over_file_and_sweep);
    tcase_add_test(tc, test_sweep_is_cartesian_with_last_key_fastest_and_named_runs);
    tcase_add_test(tc, test_run_id_replaces_unsafe_characters);
    tcase_add_test(tc, test_sweep_over_mixer_name_and_its_options);
    tcase_add_test(tc, test_override_can_set_mixer_name_and_task_options);
    tcase_add_test(tc, test_to_json_holds_every_resolved_value_typed);
    tcase_add_test(tc, test_hash_ignores_name_threads_and_output_dir);
    tcase_add_test(tc, test_hash_differs_when_lr_or_seed_differs);
    tcase_add_test(tc, test_enum_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
