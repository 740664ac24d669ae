/* The config module: defaults, precedence (file < sweep < --set), sweep expansion and run ids,
 * the resolved JSON and its hash, and exact messages for what test_cli does not reach. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "mixers/mixer.h"
#include "tasks/task.h"

static const char *MIN_YAML = "task:\n  name: listops\n";

static const char *err_str(const XbError *e) {
    static char buf[2048];
    xb_error_format(e, buf, sizeof buf);
    return buf;
}

static ConfigSet load_ok(const char *yaml, const char *const *sets, int n) {
    ConfigSet cs;
    XbError err;
    xb_error_clear(&err);
    const int rc = cfg_load_string(yaml, "dir/exp.yaml", sets, n, &cs, &err);
    ck_assert_msg(rc == 0, "unexpected error: %s", err_str(&err));
    return cs;
}

static void expect_error(const char *yaml, const char *const *sets, int n, const char *want) {
    ConfigSet cs;
    XbError err;
    xb_error_clear(&err);
    ck_assert_int_eq(cfg_load_string(yaml, "t.yaml", sets, n, &cs, &err), -1);
    ck_assert_int_eq(err.code, XB_EXIT_USAGE);
    ck_assert_str_eq(err_str(&err), want);
    ck_assert_int_eq(cs.n, 0);
    ck_assert_ptr_null(cs.runs);
}

START_TEST(test_defaults_are_filled_and_name_comes_from_the_file_stem) {
    ConfigSet cs = load_ok(MIN_YAML, NULL, 0);
    ck_assert_int_eq(cs.n, 1);
    const ExperimentConfig *c = &cs.runs[0];
    ck_assert_str_eq(c->name, "exp");
    ck_assert_str_eq(c->run_id, "exp");
    ck_assert_str_eq(c->output_dir, "results/exp");
    ck_assert_str_eq(c->source, "dir/exp.yaml");
    ck_assert_int_eq(c->seed, 1);
    ck_assert_int_eq(c->threads, 0);
    ck_assert_int_eq(c->layers, 2);
    ck_assert_int_eq(c->d_model, 64);
    ck_assert_int_eq(c->heads, 2);
    ck_assert_int_eq(c->d_ff, 128);
    ck_assert_float_eq_tol(c->dropout, 0.1f, 1e-7);
    ck_assert_int_eq(c->max_len, 512);
    ck_assert_int_eq(c->pooling, POOL_CLS);
    ck_assert_int_eq(c->positions, POS_SINUSOIDAL);
    ck_assert_str_eq(mixer_get(c->mixer_index)->name, "full");
    ck_assert_str_eq(task_get(c->task_index)->name, "listops");
    ck_assert_int_eq(c->batch_size, 32);
    ck_assert_int_eq(c->steps, 1000);
    ck_assert_double_eq(c->lr, 1e-3);
    ck_assert_int_eq(c->schedule, SCHED_COSINE);
    ck_assert_double_eq(c->beta2, 0.999);
    ck_assert_double_eq(c->clip_norm, 1.0);
    ck_assert_int_eq(c->eval_every, 100);
    ck_assert_int_eq(c->checkpoint, 1);
    const TaskSpec *t = task_get(c->task_index);
    ck_assert_int_eq(opt_int(&c->task_opts, t->opts, t->n_opts, "num_train"), 96000);
    ck_assert_int_eq(c->task_opts.set[opt_index(t->opts, t->n_opts, "num_train")], 0);
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_every_section_parses_including_mixer_shorthand) {
    const char *y = "experiment: {name: e1, seed: 7, threads: 2, output_dir: out/x}\n"
                    "task: {name: listops, num_train: 10, parens: true, source: generate}\n"
                    "model: {layers: 3, d_model: 32, heads: 4, dropout: 0, pooling: mean,\n"
                    "        positions: learned, mixer: full}\n"
                    "train: {lr: 2e-4, schedule: rsqrt, warmup: 10, steps: 20, checkpoint: false,\n"
                    "        eval_batches: 3, beta1: 0.8, eps: 1e-9, clip_norm: 0}\n";
    ConfigSet cs = load_ok(y, NULL, 0);
    const ExperimentConfig *c = &cs.runs[0];
    ck_assert_str_eq(c->name, "e1");
    ck_assert_str_eq(c->output_dir, "out/x");
    ck_assert_int_eq(c->seed, 7);
    ck_assert_int_eq(c->threads, 2);
    ck_assert_int_eq(c->layers, 3);
    ck_assert_int_eq(c->heads, 4);
    ck_assert_int_eq(c->pooling, POOL_MEAN);
    ck_assert_int_eq(c->positions, POS_LEARNED);
    ck_assert_double_eq(c->lr, 2e-4);
    ck_assert_int_eq(c->schedule, SCHED_RSQRT);
    ck_assert_int_eq(c->checkpoint, 0);
    ck_assert_double_eq(c->eps, 1e-9);
    const TaskSpec *t = task_get(c->task_index);
    ck_assert_int_eq(opt_bool(&c->task_opts, t->opts, t->n_opts, "parens"), 1);
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_overrides_win_over_the_file_and_the_sweep) {
    const char *y = "task: {name: listops}\nmodel: {layers: 3}\nsweep:\n  model.d_model: [8, 16]\n";
    const char *sets[] = {"model.layers=5", "model.d_model=32", "model.mixer=full",
                          "task.num_train=77"};
    ConfigSet cs = load_ok(y, sets, 4);
    ck_assert_int_eq(cs.n, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cs.runs[i].layers, 5);
        ck_assert_int_eq(cs.runs[i].d_model, 32);
        const TaskSpec *t = task_get(cs.runs[i].task_index);
        ck_assert_int_eq(opt_int(&cs.runs[i].task_opts, t->opts, t->n_opts, "num_train"), 77);
    }
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_sweep_is_a_cartesian_product_with_the_last_key_fastest) {
    const char *y = "experiment: {name: sw}\ntask: {name: listops}\n"
                    "sweep:\n  model.layers: [1, 2]\n  train.lr: [0.1, 1e-3, 0.5]\n"
                    "  model.mixer.name: [full]\n";
    ConfigSet cs = load_ok(y, NULL, 0);
    ck_assert_int_eq(cs.n, 6);
    const int layers[6] = {1, 1, 1, 2, 2, 2};
    const double lr[6] = {0.1, 1e-3, 0.5, 0.1, 1e-3, 0.5};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(cs.runs[i].layers, layers[i]);
        ck_assert_double_eq(cs.runs[i].lr, lr[i]);
        ck_assert_int_eq(cs.runs[i].sweep_index, i);
        ck_assert_int_eq(cs.runs[i].sweep_size, 6);
        ck_assert_str_eq(cs.runs[i].output_dir, "results/sw");
    }
    ck_assert_str_eq(cs.runs[0].run_id, "sw__layers-1__lr-0.1__name-full");
    ck_assert_str_eq(cs.runs[4].run_id, "sw__layers-2__lr-1e-3__name-full");
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_sweep_values_are_validated_against_the_swept_mechanism) {
    /* options of the mechanism are checked per run, after its name is known */
    expect_error("task: {name: listops}\nmodel:\n  mixer: {name: full, window: 4}\n", NULL, 0,
                 "t.yaml:3:23: model.mixer.window: unknown key (valid: name, causal, bias)");
    expect_error("task: {name: listops}\nsweep:\n  model.mixer.name: [full, fool]\n", NULL, 0,
                 "t.yaml:3:28: model.mixer.name: unknown mechanism \"fool\" (did you mean full?)");
}
END_TEST

START_TEST(test_hash_ignores_name_threads_and_output_dir_only) {
    ConfigSet a = load_ok("experiment: {name: a, threads: 1, output_dir: x}\ntask: {name: listops}\n", NULL, 0);
    ConfigSet b = load_ok("experiment: {name: b, threads: 2, output_dir: y}\ntask: {name: listops}\n", NULL, 0);
    const char *lr[] = {"train.lr=0.002"};
    ConfigSet c = load_ok("experiment: {name: a, threads: 1, output_dir: x}\ntask: {name: listops}\n", lr, 1);
    const char *seed[] = {"experiment.seed=2"};
    ConfigSet d = load_ok("experiment: {name: a, threads: 1, output_dir: x}\ntask: {name: listops}\n", seed, 1);
    ck_assert_uint_eq(cfg_hash(&a.runs[0]), cfg_hash(&b.runs[0]));
    ck_assert_uint_ne(cfg_hash(&a.runs[0]), cfg_hash(&c.runs[0]));
    ck_assert_uint_ne(cfg_hash(&a.runs[0]), cfg_hash(&d.runs[0]));
    cfg_set_free(&a), cfg_set_free(&b), cfg_set_free(&c), cfg_set_free(&d);
}
END_TEST

START_TEST(test_json_holds_every_resolved_value) {
    ConfigSet cs = load_ok("task: {name: listops, max_depth: 7}\nmodel: {pooling: mean}\n"
                           "train: {schedule: linear, checkpoint: false}\n", NULL, 0);
    cJSON *j = cfg_to_json(&cs.runs[0]);
    char *s = cJSON_PrintUnformatted(j);
    ck_assert_ptr_nonnull(strstr(s, "\"max_depth\":7"));
    ck_assert_ptr_nonnull(strstr(s, "\"pooling\":\"mean\""));
    ck_assert_ptr_nonnull(strstr(s, "\"schedule\":\"linear\""));
    ck_assert_ptr_nonnull(strstr(s, "\"checkpoint\":false"));
    ck_assert_ptr_nonnull(strstr(s, "\"mixer\":{\"name\":\"full\",\"causal\":false,\"bias\":false}"));
    ck_assert_ptr_nonnull(strstr(s, "\"source\":\"generate\""));
    ck_assert_ptr_nonnull(strstr(s, "\"lr\":0.001"));
    cJSON_free(s);
    cJSON_Delete(j);
    cfg_set_free(&cs);
}
END_TEST

START_TEST(test_quoted_numbers_and_structures_are_wrong_types) {
    expect_error("task: {name: listops}\nmodel:\n  layers: \"4\"\n", NULL, 0,
                 "t.yaml:3:11: model.layers: expected an integer in [1, 64], got \"4\"");
    expect_error("task: {name: listops}\nmodel:\n  layers: [4]\n", NULL, 0,
                 "t.yaml:3:11: model.layers: expected an integer in [1, 64], got a sequence");
    expect_error("task: {name: listops}\ntrain:\n  lr: nan\n", NULL, 0,
                 "t.yaml:3:7: train.lr: expected a number in [1e-10, 10], got \"nan\"");
    expect_error("task: {name: listops}\nmodel: 3\n", NULL, 0,
                 "t.yaml:2:8: model: expected a mapping, got a scalar");
}
END_TEST

START_TEST(test_missing_task_is_reported_where_it_belongs) {
    expect_error("model: {layers: 2}\n", NULL, 0, "t.yaml:1:1: task.name: missing (one of: listops)");
    expect_error("model: {layers: 2}\ntask:\n  num_train: 5\n", NULL, 0,
                 "t.yaml:2:1: task.name: missing (one of: listops)");
    expect_error("", NULL, 0,
                 "t.yaml:1:1: expected a mapping with sections experiment, task, model, train, sweep");
}
END_TEST

START_TEST(test_task_option_suggestion_and_name_rules) {
    expect_error("task: {name: listops, num_tran: 5}\n", NULL, 0,
                 "t.yaml:1:23: task.num_tran: unknown key (did you mean task.num_train?)");
    expect_error("experiment: {name: \"a b\"}\ntask: {name: listops}\n", NULL, 0,
                 "t.yaml:1:20: experiment.name: \"a b\" is not a valid name (letters, digits, '.', '_' "
                 "and '-', 1 to 100 characters)");
    expect_error("task: {name: listops}\nsweep:\n  experiment.name: [a, b]\n", NULL, 0,
                 "t.yaml:3:3: sweep.experiment.name: cannot be swept (run names are made from the "
                 "swept values)");
    expect_error("task: {name: listops}\nsweep:\n  model.layer: [1]\n", NULL, 0,
                 "t.yaml:3:3: sweep.model.layer: unknown key (did you mean sweep.model.layers?)");
}
END_TEST

START_TEST(test_override_errors_are_located_on_the_command_line) {
    const char *s1[] = {"model.layers=2", "train.steps=-1"};
    expect_error(MIN_YAML, s1, 2, "--set:2:13: train.steps: -1 is out of range (an integer in [1, 1000000000])");
    const char *s2[] = {"=3"};
    expect_error(MIN_YAML, s2, 1, "--set:1:1: expected KEY=VALUE, got \"=3\"");
    const char *s3[] = {"modle.layers=3"};
    expect_error(MIN_YAML, s3, 1, "--set:1:1: modle.layers: unknown key (did you mean model?)");
    const char *s4[] = {"model.heads=5"};
    expect_error(MIN_YAML, s4, 1,
                 "--set:1:13: model.heads: 5 does not divide model.d_model = 64 (valid: a divisor "
                 "of 64, e.g. 1, 2, 4, 8, 16)");
}
END_TEST

START_TEST(test_missing_file_is_reported) {
    ConfigSet cs;
    XbError err;
    ck_assert_int_eq(cfg_load("/nonexistent/x.yaml", NULL, 0, &cs, &err), -1);
    ck_assert_str_eq(err_str(&err), "/nonexistent/x.yaml: cannot read: No such file or directory");
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("all");
    tcase_add_test(tc, test_defaults_are_filled_and_name_comes_from_the_file_stem);
    tcase_add_test(tc, test_every_section_parses_including_mixer_shorthand);
    tcase_add_test(tc, test_overrides_win_over_the_file_and_the_sweep);
    tcase_add_test(tc, test_sweep_is_a_cartesian_product_with_the_last_key_fastest);
    tcase_add_test(tc, test_sweep_values_are_validated_against_the_swept_mechanism);
    tcase_add_test(tc, test_hash_ignores_name_threads_and_output_dir_only);
    tcase_add_test(tc, test_json_holds_every_resolved_value);
    tcase_add_test(tc, test_quoted_numbers_and_structures_are_wrong_types);
    tcase_add_test(tc, test_missing_task_is_reported_where_it_belongs);
    tcase_add_test(tc, test_task_option_suggestion_and_name_rules);
    tcase_add_test(tc, test_override_errors_are_located_on_the_command_line);
    tcase_add_test(tc, test_missing_file_is_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
