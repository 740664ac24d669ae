#!/usr/bin/env python3
"""End-to-end tests of the xformer-bench binary: bad input gives one exact line and exit 2 with
nothing written; the same config, seed and threads give the same report apart from `measured`."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("XB_BIN", "build/src/xformer-bench")

TINY = """\
experiment:
  name: tiny
  seed: 3
  threads: 2
task:
  name: listops
  num_train: 300
  num_val: 64
  num_test: 64
  min_length: 5
  max_length: 40
model:
  layers: 1
  d_model: 16
  heads: 2
  d_ff: 32
  max_len: 40
train:
  batch_size: 16
  steps: 12
  eval_every: 5
"""


def run(args, cwd=None):
    return subprocess.run([BIN] + args, capture_output=True, text=True, cwd=cwd)


class BadInput(unittest.TestCase):
    """Each case: a config text (or None for a missing file), extra args, and the exact error line
    ({path} stands for the config path)."""


    def check(self, text, args, expected):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            if text is not None:
                with open(path, "w") as f:
                    f.write(text)
            out = os.path.join(d, "out")
            p = run(["run", path, "-o", out, "--quiet"] + args)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stderr, "xformer-bench: " + expected.format(path=path) + "\n")
            self.assertFalse(os.path.exists(out), "a bad config must not create the output")
            leftovers = [f for f in os.listdir(d) if f != "bad.yaml"]
            self.assertEqual(leftovers, [])


def _add_case(name, text, args, expected):
    def t(self):
        self.check(text, args, expected)
    t.__name__ = "test_" + name
    setattr(BadInput, t.__name__, t)


BASE = """\
task:
  name: listops
  num_train: 100
model:
  layers: 2
train:
  steps: 10
"""


def with_line(old, new):
    assert old in BASE
    return BASE.replace(old, new)


# (name, config text or None for a missing file, extra arguments, the exact message)
_CASES = [
    ("missing_file", None, [], "{path}: cannot read: No such file or directory"),
    ("unknown_key_suggests_nearest", with_line("  layers: 2", "  layer: 2"), [],
     "{path}:5:3: model.layer: unknown key (did you mean model.layers?)"),
    ("unknown_section_suggests_nearest", with_line("model:", "modle:"), [],
     "{path}:4:1: modle: unknown key (did you mean model?)"),
    ("unknown_key_lists_valid_keys", with_line("  steps: 10", "  steps: 10\n  foo: 1"), [],
     "{path}:8:3: train.foo: unknown key (valid: batch_size, steps, lr, schedule, warmup, "
     "weight_decay, beta1, beta2, eps, clip_norm, eval_every, eval_batches, log_every, checkpoint)"),
    ("wrong_type_int", with_line("  layers: 2", "  layers: two"), [],
     '{path}:5:11: model.layers: expected an integer in [1, 64], got "two"'),
    ("fraction_for_int", with_line("  layers: 2", "  layers: 2.5"), [],
     '{path}:5:11: model.layers: expected an integer in [1, 64], got "2.5"'),
    ("int_out_of_range", with_line("  layers: 2", "  layers: 0"), [],
     "{path}:5:11: model.layers: 0 is out of range (an integer in [1, 64])"),
    ("float_out_of_range", with_line("  layers: 2", "  layers: 2\n  dropout: 1.5"), [],
     "{path}:6:12: model.dropout: 1.5 is out of range (a number in [0, 0.95])"),
    ("bad_enum", with_line("  layers: 2", "  layers: 2\n  pooling: max"), [],
     '{path}:6:12: model.pooling: expected one of: cls, mean, got "max"'),
    ("bad_bool", with_line("  steps: 10", "  steps: 10\n  checkpoint: maybe"), [],
     '{path}:8:15: train.checkpoint: expected true or false, got "maybe"'),
    ("heads_must_divide_d_model", with_line("  layers: 2", "  layers: 2\n  heads: 3"), [],
     "{path}:6:10: model.heads: 3 does not divide model.d_model = 64 "
     "(valid: a divisor of 64, e.g. 1, 2, 4, 8, 16)"),
    ("unknown_task", with_line("  name: listops", "  name: listop"), [],
     '{path}:2:9: task.name: unknown task "listop" (did you mean listops?)'),
    ("unknown_mechanism", with_line("  layers: 2", "  layers: 2\n  mixer:\n    name: ful"), [],
     '{path}:7:11: model.mixer.name: unknown mechanism "ful" (did you mean full?)'),
    ("task_option_out_of_range", with_line("  num_train: 100", "  num_train: -5"), [],
     "{path}:3:14: task.num_train: -5 is out of range (an integer in [1, 10000000])"),
    ("duplicate_key", with_line("  layers: 2", "  layers: 2\n  layers: 3"), [],
     "{path}:6:3: model.layers: duplicate key (first given at line 5)"),
    ("yaml_syntax_error", with_line("  layers: 2", "  layers: [2"), [],
     "{path}:6:6: YAML syntax error: did not find expected ',' or ']' "
     "(while parsing a flow sequence)"),
    ("top_level_not_a_mapping", "- a\n- b\n", [],
     "{path}:1:1: expected a mapping with sections experiment, task, model, train, sweep"),
    ("warmup_longer_than_training", with_line("  steps: 10", "  steps: 10\n  warmup: 20"), [],
     "{path}:8:11: train.warmup: 20 is greater than train.steps = 10 (valid: 0 to 10)"),
    ("sweep_needs_a_list", BASE + "sweep:\n  model.layers: 3\n", [],
     "{path}:9:17: sweep.model.layers: expected a non-empty list of values"),
    ("sweep_item_out_of_range", BASE + "sweep:\n  model.layers: [1, 99]\n", [],
     "{path}:9:21: model.layers: 99 is out of range (an integer in [1, 64])"),
    ("funnel_must_divide_layers", with_line("  layers: 2", "  layers: 2\n  funnel: 3"), [],
     "{path}:6:11: model.funnel: 3 stages cannot share model.layers = 2 blocks "
     "(valid: 0, or a divisor of 2)"),
    ("latents_need_mean_pooling", with_line("  layers: 2", "  layers: 2\n  latents: 16"), [],
     "{path}:6:12: model.latents: the Perceiver averages its latents (valid: model.pooling: "
     "mean with model.latents = 16, or model.latents: 0)"),
    ("compress_needs_the_recurrence", with_line("  layers: 2", "  layers: 2\n  compress: 2"), [],
     "{path}:6:13: model.compress: compresses the memory of the segment recurrence, which is off "
     "(valid: model.compress: 0, or model.segment > 0)"),
    ("compress_must_divide_segment_and_memory",
     with_line("  layers: 2", "  layers: 2\n  segment: 8\n  memory: 6\n  compress: 4"), [],
     "{path}:8:13: model.compress: 4 does not divide model.segment = 8 and the memory of 6 "
     "(valid: 0, or a common divisor of the two)"),
    ("compressed_memory_needs_compress",
     with_line("  layers: 2", "  layers: 2\n  segment: 8\n  compressed_memory: 4"), [],
     "{path}:7:22: model.compressed_memory: 4 slots, but model.compress is 0 (valid: "
     "model.compressed_memory: 0, or model.compress > 0)"),
    ("override_bad_value", BASE, ["--set", "model.layers=abc"],
     '--set:1:14: model.layers: expected an integer in [1, 64], got "abc"'),
    ("override_unknown_key", BASE, ["--set", "model.layres=2"],
     "--set:1:1: model.layres: unknown key (did you mean model.layers?)"),
    ("override_without_equals", BASE, ["--set", "model.layers"],
     '--set:1:1: expected KEY=VALUE, got "model.layers"'),
    ("listops_lengths_inconsistent", with_line("  num_train: 100",
     "  num_train: 100\n  min_length: 50\n  max_length: 40"), [],
     "{path}: task.max_length: must be greater than task.min_length + 1 "
     "(got min_length 50, max_length 40)"),
    ("listops_files_need_data_dir", with_line("  num_train: 100", "  source: files"), [],
     "{path}: task.data_dir: is required when task.source is files"),
]
for _name, _text, _args, _expected in _CASES:
    _add_case(_name, _text, _args, _expected)


class Determinism(unittest.TestCase):
    def test_same_config_seed_threads_give_identical_reports_apart_from_measured(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            docs = []
            for i in range(2):
                out = os.path.join(d, f"out{i}")
                p = run(["run", cfg, "-o", out, "--quiet"])
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(os.path.join(out, "tiny.json")) as f:
                    doc = json.load(f)
                self.assertEqual(doc["status"], "ok")
                del doc["measured"]
                doc["config"]["experiment"]["output_dir"] = ""
                docs.append(doc)
            self.assertEqual(docs[0], docs[1])
            # and a different seed changes the outcome
            out = os.path.join(d, "out2")
            p = run(["run", cfg, "-o", out, "--quiet", "--seed", "4"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out, "tiny.json")) as f:
                other = json.load(f)
            self.assertNotEqual(other["evals"], docs[0]["evals"])

    def test_counted_flops_of_a_step_equal_the_analytic_count(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            p = run(["run", cfg, "-o", d, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "tiny.json")) as f:
                fl = json.load(f)["flops"]
            self.assertEqual(fl["counted_train_step"], fl["analytic_train_step"])
            self.assertGreater(fl["counted_total"], 12 * fl["analytic_train_step"])


class Outputs(unittest.TestCase):
    def test_report_validates_against_schema_and_checkpoint_is_safetensors(self):
        schema = os.environ.get("XB_SCHEMA", "src/report/report.schema.json")
        validate = os.environ.get("XB_VALIDATE", "tests/validate_report.py")
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            p = run(["run", cfg, "-o", d, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            report = os.path.join(d, "tiny.json")
            v = subprocess.run([sys.executable, validate, schema, report], capture_output=True,
                               text=True)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            with open(report) as f:
                doc = json.load(f)
            self.assertEqual(doc["run_id"], "tiny")
            self.assertGreaterEqual(doc["test"]["accuracy"], 0.0)
            self.assertEqual(doc["dataset"]["splits"]["train"], 300)
            with open(os.path.join(d, "tiny.safetensors"), "rb") as f:
                raw = f.read()
            n = int.from_bytes(raw[:8], "little")
            header = json.loads(raw[8:8 + n])
            total = 0
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                self.assertEqual(t["dtype"], "F32")
                begin, end = t["data_offsets"]
                count = 1
                for dim in t["shape"]:
                    count *= dim
                self.assertEqual(end - begin, 4 * count, name)
                total += end - begin
            self.assertEqual(len(raw), 8 + n + total)
            self.assertEqual(total, 4 * doc["model"]["parameters"])
            self.assertFalse([f for f in os.listdir(d) if f.endswith(".tmp")])

    def test_nan_stops_the_run_with_a_message_and_a_report_that_says_so(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            # weight decay of lr * wd = 100 multiplies the weights by -99 each step: overflow
            p = run(["run", cfg, "-o", d, "--quiet", "--set", "train.lr=10", "--set",
                     "train.weight_decay=10", "--set", "train.clip_norm=0"])
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertRegex(p.stderr, r"xformer-bench: tiny: training diverged at step \d+: the "
                             r"(loss|gradient norm) is (NaN|infinite) \(try a lower train.lr or "
                             r"train.clip_norm\)\n$")
            with open(os.path.join(d, "tiny.json")) as f:
                doc = json.load(f)
            self.assertEqual(doc["status"], "diverged")
            self.assertIn("training diverged", doc["status_message"])
            self.assertLess(doc["training"]["steps"], 12)

    def test_help_version_and_list(self):
        p = run(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith("xformer-bench "))
        p = run(["run", "--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("usage: xformer-bench run CONFIG", p.stdout)
        p = run(["list"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("full", p.stdout)
        self.assertIn("listops", p.stdout)
        p = run(["frobnicate"])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr,
                         "xformer-bench: 'frobnicate' is not a command (valid: run, list; see --help)\n")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        BIN = sys.argv.pop(1)
    unittest.main(verbosity=2)
