#!/usr/bin/env python3
"""End-to-end tests of the xformer-bench binary: bad input gives one exact line and exit 2 with
nothing written; the same config, seed and threads give the same report apart from `measured`."""
import json
import os
import re
import shutil
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


def run(args, cwd=None, env=None):
    return subprocess.run([BIN] + args, capture_output=True, text=True, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})


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
     "weight_decay, beta1, beta2, eps, clip_norm, eval_every, eval_batches, log_every, "
     "checkpoint, checkpoint_every)"),
    ("wrong_type_int", with_line("  layers: 2", "  layers: two"), [],
     '{path}:5:11: model.layers: expected an integer in [1, 64], got "two"'),
    ("fraction_for_int", with_line("  layers: 2", "  layers: 2.5"), [],
     '{path}:5:11: model.layers: expected an integer in [1, 64], got "2.5"'),
    ("int_out_of_range", with_line("  layers: 2", "  layers: 0"), [],
     "{path}:5:11: model.layers: 0 is out of range (an integer in [1, 64])"),
    ("float_out_of_range", with_line("  layers: 2", "  layers: 2\n  dropout: 1.5"), [],
     "{path}:6:12: model.dropout: 1.5 is out of range (a number in [0, 0.95])"),
    ("bad_enum", with_line("  layers: 2", "  layers: 2\n  pooling: max"), [],
     '{path}:6:12: model.pooling: expected one of: cls, mean, none, got "max"'),
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
SEQ = """\
task:
  name: selcopy
  num_train: 100
  min_length: 28
  max_length: 28
  tokens: 4
model:
  max_len: 32
train:
  steps: 10
"""
_CASES += [
    ("sequence_task_refuses_pooling", SEQ.replace("  max_len: 32", "  max_len: 32\n  pooling: mean"),
     [], "{path}:9:12: model.pooling: mean pools the sequence to one vector, but task selcopy "
     "has a target at some positions (valid: none)"),
    ("sequence_task_longer_than_max_len", SEQ.replace("max_len: 32", "max_len: 31"), [],
     "{path}: model.max_len: 31 is shorter than the task's longest example, 32 tokens: the "
     "positions past it would lose their targets (valid: 32 or more)"),
]
for _name, _text, _args, _expected in _CASES:
    _add_case(_name, _text, _args, _expected)


class ShippedConfigs(unittest.TestCase):
    """Every config the repository ships passes the checks that run applies before training."""

    def test_every_shipped_config_is_valid(self):
        root = os.environ.get("XB_SOURCE_ROOT", ".")
        paths = []
        for d, _, files in os.walk(os.path.join(root, "configs")):
            paths += [os.path.join(d, f) for f in files if f.endswith(".yaml")]
        self.assertGreater(len(paths), 10)
        for path in sorted(paths):
            p = run(["run", path, "--check"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"^" + path + r": valid, \d+ runs?\n$")

    def test_check_reports_a_bad_config_like_run(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.yaml")
            with open(path, "w") as f:
                f.write(TINY.replace("layers: 1", "layers: 0"))
            p = run(["run", path, "--check"])
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr, "xformer-bench: " + path +
                             ":13:11: model.layers: 0 is out of range (an integer in [1, 64])\n")
            self.assertEqual(os.listdir(d), ["bad.yaml"])


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


class SequenceTask(unittest.TestCase):
    def test_selective_copying_learns_above_chance_with_the_per_position_head(self):
        # L = 64 (60 blanks and data, 4 markers), 8 symbols: chance is 1/8 per target position.
        text = """\
experiment: {name: sc, seed: 1, threads: 1}
task: {name: selcopy, num_train: 3000, num_val: 200, num_test: 400, min_length: 60,
       max_length: 60, tokens: 4, symbols: 8}
model: {layers: 2, d_model: 32, heads: 2, d_ff: 64, dropout: 0.0, max_len: 64,
        positions: learned}
train: {batch_size: 32, steps: 100, lr: 0.005, warmup: 10, eval_every: 50, checkpoint: false}
"""
        schema = os.environ.get("XB_SCHEMA", "src/report/report.schema.json")
        validate = os.environ.get("XB_VALIDATE", "tests/validate_report.py")
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "sc.yaml")
            with open(cfg, "w") as f:
                f.write(text)
            p = run(["run", cfg, "-o", d, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            report = os.path.join(d, "sc.json")
            v = subprocess.run([sys.executable, validate, schema, report], capture_output=True,
                               text=True)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            with open(report) as f:
                doc = json.load(f)
            self.assertEqual(doc["config"]["model"]["pooling"], "none")  # the sequence default
            self.assertEqual(doc["dataset"]["targets"], "per-position")
            self.assertEqual(doc["dataset"]["identity"]["generator"], "selective-copying")
            self.assertLess(doc["test"]["majority_baseline"], 0.2)
            self.assertGreater(doc["test"]["accuracy"], 0.25)  # 2x chance; about 0.4 measured
            self.assertLessEqual(doc["test"]["exact_match"], doc["test"]["accuracy"])


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

    def test_a_sweep_writes_a_report_per_run_and_an_index(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY + "sweep:\n  model.d_model: [8, 16]\n")
            out = os.path.join(d, "out")
            p = run(["run", cfg, "-o", out, "--quiet", "--set", "train.steps=3"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out, "index.json")) as f:
                idx = json.load(f)
            self.assertEqual(idx["kind"], "sweep")
            self.assertEqual(len(idx["runs"]), 2)
            hashes = set()
            for r in idx["runs"]:
                self.assertEqual(r["outcome"], "ok")
                with open(os.path.join(out, r["report"])) as f:
                    doc = json.load(f)
                self.assertEqual(doc["run_id"], r["run_id"])
                self.assertEqual(doc["config_hash"], r["config_hash"])
                hashes.add(r["config_hash"])
            self.assertEqual(len(hashes), 2)
            p = run(["compare", out, out])  # the index is not taken for a report
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("2 matched", p.stdout)

    @unittest.skipIf(os.environ.get("XB_SANITIZED") == "1",
                     "AddressSanitizer's quarantine keeps freed memory resident")
    def test_each_run_of_a_sweep_reports_its_own_peak_rss(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY + "sweep:\n  train.batch_size: [256, 2]\n")
            out = os.path.join(d, "out")
            p = run(["run", cfg, "-o", out, "--quiet", "--set", "train.steps=2", "--set",
                     "model.d_model=64", "--set", "train.eval_every=2"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out, "index.json")) as f:
                runs = json.load(f)["runs"]
            rss = []
            for r in runs:
                with open(os.path.join(out, r["report"])) as f:
                    doc = json.load(f)
                rss.append(doc["measured"]["peak_rss"])
            # the big first run's peak would otherwise carry over to the small second one
            self.assertLess(rss[1], rss[0] - 20 * 2**20, rss)

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
        p = run(["list", "config"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"\n    compress +int +default 0 +an integer in \[0, 4096\]; "
                         r"Compressive Transformer")
        self.assertIn("\ntrain:\n    batch_size ", p.stdout)
        p = run(["frobnicate"])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr,
                         "xformer-bench: \"frobnicate\" is not a command (valid: run, list, data, eval, bench, compare, table, plot; see --help)\n")


def help_options(cmd):
    """{long name: (short form, value name)} of the options `cmd --help` lists."""
    label = re.compile(r"^  (?:-(\w), )?(--[\w-]+)(?: (\S+))?", re.M)
    return {m.group(2): (m.group(1), m.group(3))
            for m in label.finditer(run([cmd, "--help"]).stdout)}


class Options(unittest.TestCase):
    """Every subcommand's options come from one table (src/cli/opts.h): the same table gives the
    --help text, the options an unknown one lists, the message for a missing value and the
    message for a value of the wrong type or out of range, one line each, exit 2."""

    COMMANDS = ("run", "list", "data", "eval", "bench", "compare", "table", "plot")

    def help_options(self, cmd):
        p = run([cmd, "--help"])
        self.assertEqual((p.returncode, p.stderr), (0, ""), cmd)
        for line in p.stdout.splitlines():
            self.assertLessEqual(len(line), 96, (cmd, line))
        return help_options(cmd)

    def test_unknown_option_lists_every_option_of_the_help(self):
        for cmd in self.COMMANDS:
            opts = self.help_options(cmd)
            p = run([cmd, "--no-such-option"])
            m = re.fullmatch(r'xformer-bench %s: unknown option "--no-such-option" \(valid: '
                             r'(.*)\)\n' % cmd, p.stderr)
            self.assertTrue(m, p.stderr)
            self.assertEqual(p.returncode, 2)
            named = m.group(1).split(", ")
            self.assertEqual(named[-1], "--help")
            shown = ["-%s/%s" % (short, name) if short else name
                     for name, (short, _) in opts.items()]
            self.assertEqual(named[:-1], shown, cmd)

    def test_an_option_without_its_value_is_one_line(self):
        for cmd in self.COMMANDS:
            for name, (short, value) in self.help_options(cmd).items():
                if not value:
                    continue
                for form in [name] + (["-" + short] if short else []):
                    p = run([cmd, "x.yaml", form] if cmd != "compare" else [cmd, "a", "b", form])
                    self.assertEqual(p.returncode, 2, (cmd, form))
                    self.assertRegex(p.stderr, r"^xformer-bench %s: %s needs (a value|a directory|"
                                     r"a file name|a task name) \(see --help\)\n$"
                                     % (cmd, re.escape(form)))

    def test_values_of_the_wrong_type_or_range_name_what_is_valid(self):
        cases = [
            (["run", "x.yaml", "--threads", "2000"], "run", "--threads: expected an integer in "
             "[0, 1024], got \"2000\""),
            (["run", "x.yaml", "--seed", "-1"], "run", "--seed: expected an integer in "
             "[0, 2^53-1], got \"-1\""),
            (["eval", "r.json", "--threads", "two"], "eval", "--threads: expected an integer in "
             "[0, 1024], got \"two\""),
            (["bench", "x.yaml", "--steps", "0"], "bench", "--steps: expected an integer in "
             "[1, 1000000], got \"0\""),
            (["bench", "x.yaml", "--max-memory", "0"], "bench", "--max-memory: expected a number "
             "of MiB >= 1, got \"0\""),
            (["compare", "a", "b", "--max-acc-drop", "inf"], "compare", "--max-acc-drop: "
             "expected a number >= 0, got \"inf\""),
            (["table", "r", "--order", "size"], "table", "--order: expected given or class, got "
             "\"size\""),
            (["list", "--markdown", "keys"], "list", "expected mechanisms, tasks or config, got "
             "\"keys\""),
            (["run", "a.yaml", "b.yaml"], "run", "expected one CONFIG, got \"a.yaml\" and "
             "\"b.yaml\""),
            (["compare", "a", "b", "c"], "compare", "expected two paths, BASE and NEW, got one "
             "more: \"c\""),
        ]
        with tempfile.TemporaryDirectory() as d:
            for args, cmd, msg in cases:
                p = run(args, cwd=d)
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (2, "", "xformer-bench %s: %s\n" % (cmd, msg)), args)
            self.assertEqual(os.listdir(d), [])


class ListJson(unittest.TestCase):
    """`list --json` is the listing for scripts: it says what `list` says, every field of every
    line of it (so a script reads the JSON instead of parsing the text), and names each
    subcommand with the options its --help lists."""

    @staticmethod
    def num(x, integer):
        # core/options.c's fmt_num: integers, and whole numbers from 1 up, without a fraction
        if integer or (abs(x) < 1e15 and x == int(x) and abs(x) >= 1):
            return "%.0f" % x
        return "%g" % x

    def option_line(self, o):
        if o["type"] == "bool":
            default = "true" if o["default"] else "false"
        elif o["type"] in ("int", "float"):
            default = self.num(o["default"], o["type"] == "int")
        else:
            default = o["default"]
        if o["type"] in ("int", "float"):
            valid = "%s in [%s, %s]" % ("an integer" if o["type"] == "int" else "a number",
                                         self.num(o["min"], o["type"] == "int"),
                                         self.num(o["max"], o["type"] == "int"))
        elif o["type"] == "enum":
            valid = "one of: " + ", ".join(o["choices"])
        else:
            valid = {"bool": "true or false", "string": "a string"}[o["type"]]
        self.assertEqual(o["valid"], valid)
        return "    %-16s %-6s default %-10s %s; %s" % (o["name"], o["type"], default, valid,
                                                       o["help"] or "")

    def text_of(self, doc):
        """`list`'s text, rebuilt from the JSON document alone."""
        out = ["Mechanisms (%d):" % len(doc["mechanisms"])]
        for m in doc["mechanisms"]:
            out.append("%-20s class %-10s arXiv %-10s mask %-3s %s%s" % (
                m["name"], m["class"], m["arxiv"], "yes" if m["honours_mask"] else "no",
                m["title"], " [beyond the survey]" if m["beyond_survey"] else ""))
            pd = m["padding_dependence"]
            if pd:
                out.append("    padded length%s: %s" % (
                    " (with %s: true)" % pd["option"] if pd["option"] else "", pd["what"]))
            out += [self.option_line(o) for o in m["options"]]
        out += ["", "Tasks (%d):" % len(doc["tasks"])]
        for t in doc["tasks"]:
            out.append("%-20s %s" % (t["name"], t["description"]))
            out += [self.option_line(o) for o in t["options"]]
        out += ["", "Config keys:"]
        for section in ("experiment", "model", "train"):
            out.append(section + ":")
            out += [self.option_line(o) for o in doc["config"][section]]
        return "\n".join(out) + "\n"

    def test_json_says_what_the_text_says(self):
        p = run(["list", "--json"])
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        doc = json.loads(p.stdout)
        self.assertEqual((doc["schema_version"], doc["kind"]), (1, "list"))
        text = run(["list"]).stdout
        self.assertEqual(self.text_of(doc), text)
        self.assertGreaterEqual(len(doc["mechanisms"]), 28)
        for part, key in (("mechanisms", "mechanisms"), ("tasks", "tasks"), ("config", "config")):
            q = json.loads(run(["list", part, "--json"]).stdout)
            self.assertEqual(set(q) - {"schema_version", "kind"}, {key})
            self.assertEqual(q[key], doc[key])

    def test_json_names_every_subcommand_with_the_options_of_its_help(self):
        doc = json.loads(run(["list", "--json"]).stdout)
        top = run(["--help"]).stdout
        names = [c["name"] for c in doc["commands"]]
        self.assertEqual(names, ["run", "list", "data", "eval", "bench", "compare", "table",
                                 "plot"])
        for c in doc["commands"]:
            self.assertIn("\n  %-8s %s\n" % (c["name"], c["summary"]), top)
            helped = help_options(c["name"])
            self.assertEqual([o["name"] for o in c["options"]], list(helped), c["name"])
            for o in c["options"]:
                short, value = helped[o["name"]]
                self.assertEqual(o["short"], "-" + short if short else None)
                self.assertEqual(o["value"] or ("|".join(o["choices"]) if "choices" in o else None),
                                 value, (c["name"], o))
                if o["type"] in ("int", "real"):  # the range the errors say
                    self.assertIn("min", o)
                if o["default"] is not None and o["type"] != "flag":
                    h = " ".join(run([c["name"], "--help"]).stdout.split())
                    self.assertIn("(default %s)" % o["default"], h, (c["name"], o["name"]))

    def test_json_and_markdown_exclude_each_other(self):
        p = run(["list", "--json", "--markdown"])
        self.assertEqual((p.returncode, p.stdout, p.stderr), (2, "", "xformer-bench list: --json "
                         "and --markdown: expected one of them\n"))


class Data(unittest.TestCase):
    def test_data_prints_split_sizes_lengths_classes_and_checksum(self):
        p = run(["data", "parity", "--set", "task.num_train=400", "--set", "task.min_length=8",
                 "--set", "task.max_length=8"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^parity: Parity")
        self.assertIn("  vocabulary 3 tokens (0 = padding), 2 classes\n", p.stdout)
        self.assertIn("  train     400 examples  length min 8  p10 8  p50 8  p90 8  max 8\n",
                      p.stdout)
        self.assertRegex(p.stdout, r"  checksum [0-9a-f]{16}\n$")
        again = run(["data", "parity", "--set", "task.num_train=400", "--set",
                     "task.min_length=8", "--set", "task.max_length=8"])
        import re
        timing = re.compile(r"\(\d+\.\d s\)")  # the same data, apart from the load time
        self.assertEqual(timing.sub("", p.stdout), timing.sub("", again.stdout))
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            p = run(["data", cfg])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("  test       64 examples", p.stdout)
        p = run(["data", "parity", "--set", "task.min_length=9", "--set", "task.max_length=8"])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, "xformer-bench: TASK: task.max_length: 8 is shorter than "
                         "task.min_length = 9 (valid: 9 or more)\n")


class DataCache(unittest.TestCase):
    def test_generated_data_is_written_once_then_read_with_the_same_reports(self):
        import re
        with tempfile.TemporaryDirectory() as d:
            env = {"XB_CACHE_DIR": os.path.join(d, "cache")}
            args = ["data", "parity", "--set", "task.num_train=400"]
            first, second = run(args, env=env), run(args, env=env)
            self.assertEqual(first.returncode, 0, first.stderr)
            m = re.search(r"\n  cache    written to (\S+/parity-[0-9a-f]{16}\.xbd)\n$", first.stdout)
            self.assertTrue(m, first.stdout)
            self.assertTrue(second.stdout.endswith(f"  cache    read from {m.group(1)}\n"))
            strip = re.compile(r"\(\d+\.\d s\)|  cache .*\n")
            self.assertEqual(strip.sub("", first.stdout), strip.sub("", second.stdout))
            # a run reads the cache, says so, and writes the same report as without it
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            docs = []
            for i, cache in enumerate(["", env["XB_CACHE_DIR"], env["XB_CACHE_DIR"]]):
                out = os.path.join(d, f"out{i}")
                p = run(["run", cfg, "-o", out], env={"XB_CACHE_DIR": cache})
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual("from the data cache" in p.stderr, i == 2, p.stderr)
                with open(os.path.join(out, "tiny.json")) as f:
                    doc = json.load(f)
                del doc["measured"]
                doc["config"]["experiment"]["output_dir"] = ""
                docs.append(doc)
            self.assertEqual(docs[0], docs[1])
            self.assertEqual(docs[0], docs[2])
            # data read from files is not cached
            p = run(["data", "listops", "--set", "task.source=files", "--set",
                     "task.data_dir=" + os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "fixtures", "listops", "good")], env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("cache", p.stdout)
            self.assertEqual(len(os.listdir(env["XB_CACHE_DIR"])), 2)


class TinyReport(unittest.TestCase):
    """Base of the report-reading tests: one real report of the tiny config, as cls.doc."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cfg = os.path.join(d, "tiny.yaml")
        with open(cfg, "w") as f:
            f.write(TINY)
        p = run(["run", cfg, "-o", d, "--quiet"])
        assert p.returncode == 0, p.stderr
        with open(os.path.join(d, "tiny.json")) as f:
            cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()



class Compare(TinyReport):
    """compare's exit codes and messages on reports crafted from one real report."""

    def write(self, d, name, doc):
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return path

    def variant(self, **changes):
        doc = json.loads(json.dumps(self.doc))
        for path, value in changes.items():
            obj = doc
            keys = path.split("__")
            for k in keys[:-1]:
                obj = obj[k]
            if value is None:
                del obj[keys[-1]]
            else:
                obj[keys[-1]] = value
        return doc

    def compare(self, new_doc, *args, base_doc=None):
        with tempfile.TemporaryDirectory() as d:
            base = self.write(os.path.join(d, "base"), "tiny.json", base_doc or self.doc)
            new = self.write(os.path.join(d, "new"), "tiny.json", new_doc)
            p = run(["compare", base, new] + list(args))
            return p, base, new

    def test_identical_reports_pass(self):
        p, _, _ = self.compare(self.doc)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("| listops | full | tiny |", p.stdout)
        self.assertTrue(p.stdout.endswith("1 matched, 0 only in BASE, 0 only in NEW: "
                                          "within tolerances\n"))

    def test_improvement_passes(self):
        m = self.doc["measured"]
        acc = self.doc["test"]["accuracy"]
        p, _, _ = self.compare(self.variant(test__accuracy=min(1.0, acc + 0.05),
                                            measured__steps_per_s=2 * m["steps_per_s"],
                                            measured__peak_rss=m["peak_rss"] // 2))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_each_metric_regression_is_named_and_exits_1(self):
        m, acc = self.doc["measured"], self.doc["test"]["accuracy"]
        fl = self.doc["flops"]["analytic_train_step"]
        cases = [
            (dict(test__accuracy=acc - 0.02), [],
             "test accuracy fell 2.00 points, %.2f%% -> %.2f%% (limit 1.00)"
             % (100 * acc, 100 * (acc - 0.02))),
            (dict(measured__steps_per_s=m["steps_per_s"] / 2), [],
             "100.0% slower"),
            (dict(measured__peak_rss=int(m["peak_rss"] * 1.2)), [],
             "peak RSS grew 20.0%"),
            (dict(flops__analytic_train_step=fl + 2), [],
             "FLOPs per training step changed with the same config, %d -> %d" % (fl, fl + 2)),
            (dict(model__parameters=self.doc["model"]["parameters"] + 1), [],
             "parameter count changed with the same config"),
            (dict(status="diverged"), [], "status diverged (was ok)"),
        ]
        for changes, args, message in cases:
            p, _, _ = self.compare(self.variant(**changes), *args)
            self.assertEqual(p.returncode, 1, (changes, p.stdout, p.stderr))
            self.assertIn("regression: listops/full/tiny: " + message, p.stdout)
            self.assertIn("REGRESSION (acc: fixed limit 1.00) |", p.stdout)
        # within a wider tolerance the same drops pass
        p, _, _ = self.compare(self.variant(test__accuracy=acc - 0.02,
                                            measured__steps_per_s=m["steps_per_s"] / 1.2),
                               "--max-acc-drop", "2.5", "--max-slowdown", "30")
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_changed_config_matches_by_run_id_and_may_change_flops(self):
        fl = self.doc["flops"]["analytic_train_step"]
        p, _, _ = self.compare(self.variant(config_hash="0123456789abcdef",
                                            flops__analytic_train_step=2 * fl))
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("ok (config changed; acc: fixed limit 1.00)", p.stdout)

    def test_a_run_missing_from_new_is_a_regression(self):
        with tempfile.TemporaryDirectory() as d:
            other = self.variant(run_id="other", config_hash="0123456789abcdef")
            self.write(os.path.join(d, "base"), "tiny.json", self.doc)
            self.write(os.path.join(d, "base"), "other.json", other)
            self.write(os.path.join(d, "new"), "tiny.json", self.doc)
            p = run(["compare", os.path.join(d, "base"), os.path.join(d, "new")])
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("regression: listops/full/other: in BASE (%s) but not in NEW"
                          % os.path.join(d, "base", "other.json"), p.stdout)
            self.assertIn("1 matched, 1 only in BASE, 0 only in NEW", p.stdout)

    def seeds(self, d, accs, first=0):
        """Reports of the tiny run at seeds first, first + 1, ... with the given accuracies (%),
        as the same config at each seed (its own hash) would write them."""
        for k, acc in enumerate(accs):
            seed = first + k
            doc = self.variant(run_id="tiny-seed%d" % seed, config_hash="%016x" % (0xabc + seed),
                               test__accuracy=acc / 100.0)
            doc["config"]["experiment"]["seed"] = seed
            doc["config"]["experiment"]["name"] = "tiny-seed%d" % seed
            self.write(d, "tiny-seed%d.json" % seed, doc)
        return d

    def test_three_seeds_a_side_judge_accuracy_by_welchs_t_test(self):
        # Welch's t, df and one-sided p of these samples, computed with mpmath by integrating
        # the t density (as in tests/test_stats.c): 41.0 ± 1.0 -> 37.17 ± 1.26 (3 vs 3):
        # t = -4.1309, df = 3.806, p = 0.0080181; 36.4, 35.9, 36.9 -> 36.1, 37.2, 35.0, 35.8
        # (3 vs 4): t = -0.6956, df = 4.746, p = 0.25962.
        with tempfile.TemporaryDirectory() as d:
            base = self.seeds(os.path.join(d, "a"), [40.0, 42.0, 41.0])
            new = self.seeds(os.path.join(d, "b"), [37.0, 38.5, 36.0])
            p = run(["compare", base, new])
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            lines = p.stdout.splitlines()
            self.assertEqual([x for x in lines if x.startswith("regression")],
                             ["regression: listops/full: test accuracy fell 3.83 points over the "
                              "seeds, 41.00% -> 37.17% (mean of 3 -> 3 seeds; Welch's t-test, "
                              "one-sided p = 0.008 < 0.05)"])
            self.assertEqual(p.stdout.count("| REGRESSION (acc: Welch p=0.008, 3 vs 3 seeds) |"),
                             3)
            # at a stricter level the same drops pass, although each seed fell by 3 points or
            # more, beyond the fixed limit
            p = run(["compare", base, new, "--alpha", "0.005"])
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertEqual(p.stdout.count("| ok (acc: Welch p=0.008, 3 vs 3 seeds) |"), 3)
        with tempfile.TemporaryDirectory() as d:
            base = self.seeds(os.path.join(d, "a"), [36.4, 35.9, 36.9])
            new = self.seeds(os.path.join(d, "b"), [36.1, 37.2, 35.0, 35.8])
            p = run(["compare", base, new])  # seed 2 fell 1.9 points: within the seeds' spread
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertIn("| tiny-seed2 | 36.90 -> 35.00 (-1.90) |", p.stdout)
            self.assertEqual(p.stdout.count("| ok (acc: Welch p=0.26, 3 vs 4 seeds) |"), 3)
            self.assertIn("3 matched, 0 only in BASE, 1 only in NEW: within tolerances", p.stdout)

    def test_fewer_than_three_seeds_keep_the_fixed_drop(self):
        with tempfile.TemporaryDirectory() as d:
            base = self.seeds(os.path.join(d, "a"), [40.0, 42.0, 41.0])
            new = self.seeds(os.path.join(d, "b"), [37.0, 42.5])
            p = run(["compare", base, new])
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("regression: listops/full/tiny-seed0: test accuracy fell 3.00 points, "
                          "40.00% -> 37.00% (limit 1.00)\n", p.stdout)
            self.assertIn("| tiny-seed0 | 40.00 -> 37.00 (-3.00) |", p.stdout)
            self.assertIn("| REGRESSION (acc: fixed limit 1.00) |", p.stdout)
            self.assertIn("| ok (acc: fixed limit 1.00) |", p.stdout)  # seed 1 rose
            self.assertIn("| MISSING |", p.stdout)  # seed 2
            # three seeds without any spread on either side: no t statistic, the fixed drop
            base = self.seeds(os.path.join(d, "c"), [40.0, 40.0, 40.0])
            new = self.seeds(os.path.join(d, "e"), [39.5, 39.5, 39.5])
            p = run(["compare", base, new])
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertEqual(p.stdout.count("| ok (acc: fixed limit 1.00, the seeds have no "
                                            "spread) |"), 3)

    def test_bad_input_exits_2_with_one_line(self):
        text = json.dumps(self.doc, indent=2)
        cut = text[:text.index('"measured"')]
        cases = [
            (cut, "{new}:%d:%d: JSON syntax error: unexpected end of file"
             % (cut.count("\n") + 1, len(cut) - cut.rindex("\n"))),
            (self.variant(measured__steps_per_s=None),
             "{new}: measured.steps_per_s: missing (expected a number in [0, 1000000000])"),
            (self.variant(test__accuracy="high"),
             "{new}: test.accuracy: expected a number in [0, 1], or null, found a string"),
            (self.variant(schema_version=99),
             "{new}: schema_version: report schema_version 99 is not supported (this "
             "xformer-bench reads version 1)"),
        ]
        for doc, expected in cases:
            p, _, new = self.compare(doc)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertEqual(p.stderr, "xformer-bench compare: " + expected.format(new=new) + "\n")
            self.assertEqual(p.stdout, "")
        with tempfile.TemporaryDirectory() as d:
            base = self.write(d, "tiny.json", self.doc)
            empty = os.path.join(d, "empty")
            os.makedirs(empty)
            p = run(["compare", base, empty])
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr, "xformer-bench compare: %s: no reports in this directory "
                             "(expected RUN_ID.json files written by xformer-bench run)\n" % empty)
            p = run(["compare", base, base, "--max-slowdown", "-3"])
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr, 'xformer-bench compare: --max-slowdown: expected a number '
                             '>= 0, got "-3"\n')
            for v in ("0", "1", "1.5", "-0.1", "x", "nan"):
                p = run(["compare", base, base, "--alpha", v])
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (2, "", 'xformer-bench compare: --alpha: expected a number in '
                                  '(0, 1), got "%s"\n' % v))
            p = run(["compare", base])
            self.assertEqual(p.returncode, 2)


class Table(TinyReport):
    """table's Markdown, LaTeX and CSV for a fixed set of reports."""

    def report(self, d, mixer, classes, task, acc, max_len=40, sps=1.0, rss=1 << 20, seed=None,
               baseline=0.1):
        doc = json.loads(json.dumps(self.doc))
        doc["run_id"] = "%s-%s-%d" % (mixer, task, max_len)
        if seed is not None:
            doc["run_id"] += "-s%d" % seed
            doc["config"]["experiment"]["seed"] = seed
        doc["model"]["mixer"], doc["model"]["mixer_classes"] = mixer, classes
        doc["config"]["task"]["name"], doc["config"]["model"]["max_len"] = task, max_len
        doc["test"]["accuracy"], doc["test"]["majority_baseline"] = acc, baseline
        doc["measured"]["steps_per_s"], doc["measured"]["peak_rss"] = sps, rss
        doc["measured"]["step_s_median"] = 1.0 / sps
        path = os.path.join(d, doc["run_id"] + ".json")
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def accuracy_reports(self, d):
        return [self.report(d, "linear", "K", "listops", 0.30),
                self.report(d, "full", "baseline", "listops", 0.40),
                self.report(d, "full", "baseline", "text", 0.60),
                self.report(d, "local", "FP", "listops", 0.45),
                self.report(d, "local", "FP", "text", 0.55)]

    TIE_LEGEND = ("\nTest accuracy (%). **Bold**: the best of its column, its interval (mean ± sd) "
                  "meeting no other's. †: tied for the best of its column, the intervals of the "
                  "highest mean and of this cell meeting.\n")

    def test_accuracy_layout_in_every_format(self):
        with tempfile.TemporaryDirectory() as d:
            paths = self.accuracy_reports(d)
            p = run(["table"] + paths)
            self.assertEqual(p.returncode, 0, p.stderr)
            # single seeds print as they always did; the equal averages are a tie, not two bests
            self.assertEqual(p.stdout,
                             "| Model | listops | text | Avg |\n"
                             "|---|---:|---:|---:|\n"
                             "| linear | 30.00 | - | - |\n"
                             "| full | 40.00 | **60.00** | 50.00† |\n"
                             "| local | **45.00** | 55.00 | 50.00† |\n" + self.TIE_LEGEND)
            p = run(["table", "--format", "latex", "--order", "class"] + paths)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout,
                             "\\begin{tabular}{lrrr}\n\\toprule\n"
                             "Model & listops & text & Avg \\\\\n\\midrule\n"
                             "full & 40.00 & \\textbf{60.00} & 50.00$^\\dagger$ \\\\\n"
                             "local & \\textbf{45.00} & 55.00 & 50.00$^\\dagger$ \\\\\n"
                             "linear & 30.00 & - & - \\\\\n"
                             "\\bottomrule\n\\end{tabular}\n"
                             "\\par\\smallskip{\\footnotesize Test accuracy (\\%). \\textbf{Bold}: "
                             "the best of its column, its interval (mean $\\pm$ sd) meeting no "
                             "other's. $^\\dagger$: tied for the best of its column, the intervals "
                             "of the highest mean and of this cell meeting.}\n")
            p = run(["table", "--format", "csv", d])  # a directory: its reports by file name
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout,
                             "Model,listops_mean,listops_std,listops_n,listops_converged,"
                             "listops_mark,text_mean,text_std,text_n,text_converged,text_mark,"
                             "Avg_mean,Avg_std,Avg_mark\n"
                             "full,40.00,,1,1,,60.00,,1,1,best,50.00,,tie\n"
                             "linear,30.00,,1,1,,,,0,0,,,,\n"
                             "local,45.00,,1,1,best,55.00,,1,1,,50.00,,tie\n")

    def seed_reports(self, d):
        """Seeds with known answers: listops full 40, 42, 41 (41.00 ± 1.00), local 30, 31, 29
        (30.00 ± 1.00), linear one seed at 40.50 (inside full's interval: a tie); text (baseline
        50%) full 60, 62 (61.00 ± 1.41), local 50, 56, 53 (53.00 ± 3.00, only 56 beats the
        baseline by more than 3 points). Avg: full 51.00 ± sqrt(1 + 2)/2 = 0.87, local 41.50 ±
        sqrt(1 + 9)/2 = 1.58."""
        runs = [("full", "baseline", "listops", (0.40, 0.42, 0.41), 0.2),
                ("local", "FP", "listops", (0.30, 0.31, 0.29), 0.2),
                ("linear", "KR", "listops", (0.405,), 0.2),
                ("full", "baseline", "text", (0.60, 0.62), 0.5),
                ("local", "FP", "text", (0.50, 0.56, 0.53), 0.5)]
        return [self.report(d, m, c, t, acc, seed=s, baseline=b)
                for m, c, t, accs, b in runs for s, acc in enumerate(accs)]

    def test_seeds_give_mean_sd_count_convergence_and_marks_beyond_the_intervals(self):
        with tempfile.TemporaryDirectory() as d:
            paths = self.seed_reports(d)
            p = run(["table"] + paths)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout,
                             "| Model | listops | text | Avg |\n"
                             "|---|---:|---:|---:|\n"
                             "| full | 41.00 ± 1.00 (3)† | **61.00 ± 1.41 (2)** | "
                             "**51.00 ± 0.87** |\n"
                             "| local | 30.00 ± 1.00 (3) | 53.00 ± 3.00 (3, 1 conv.) | "
                             "41.50 ± 1.58 |\n"
                             "| linear | 40.50† | - | - |\n"
                             "\nTest accuracy (%): mean ± standard deviation over the seeds, their "
                             "number in parentheses; (n, k conv.): only k of the n seeds beat the "
                             "majority baseline by more than 3 points. Avg ±: the root of the sum "
                             "of the tasks' variances over the number of tasks. **Bold**: the "
                             "best of its column, its interval (mean ± sd) meeting no other's. "
                             "†: tied for the best of its column, the intervals of the highest "
                             "mean and of this cell meeting.\n")
            p = run(["table", "--format", "csv"] + paths)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.splitlines()[1:],
                             ["full,41.00,1.00,3,3,tie,61.00,1.41,2,2,best,51.00,0.87,best",
                              "local,30.00,1.00,3,3,,53.00,3.00,3,1,,41.50,1.58,",
                              "linear,40.50,,1,1,tie,,,0,0,,,,"])
            # a margin of 0: every text seed of local but the one at the baseline converged; the
            # same report twice is one seed, not two
            dup = os.path.join(d, "copy.json")
            shutil.copy(paths[0], dup)
            p = run(["table", "--format", "csv", "--converged-margin", "0"] + paths + [dup])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.splitlines()[2], "local,30.00,1.00,3,3,,53.00,3.00,3,2,,"
                             "41.50,1.58,")
            self.assertEqual(p.stdout.splitlines()[1].split(",")[1:5], ["41.00", "1.00", "3", "3"])
            p = run(["table", "--format", "latex"] + paths)
            self.assertIn("full & 41.00 $\\pm$ 1.00 (3)$^\\dagger$ & \\textbf{61.00 $\\pm$ 1.41 "
                          "(2)} & \\textbf{51.00 $\\pm$ 0.87} \\\\\n", p.stdout)

    def test_a_directory_of_task_directories_is_read_whole(self):
        # results/lra-small/TASK/*.json, as scripts/table1.sh writes them; an empty subdirectory
        # is not an error, a tree without any report is
        with tempfile.TemporaryDirectory() as d:
            for task, acc in (("listops", 0.40), ("text", 0.60)):
                os.makedirs(os.path.join(d, task))
                self.report(os.path.join(d, task), "full", "baseline", task, acc)
            os.makedirs(os.path.join(d, "image"))
            p = run(["table", d])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "| Model | listops | text | Avg |\n|---|---:|---:|---:|\n"
                             "| full | 40.00 | 60.00 | 50.00 |\n")
            p = run(["table", os.path.join(d, "image")])
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr, "xformer-bench table: %s: no reports in this directory "
                             "(expected RUN_ID.json files written by xformer-bench run)\n"
                             % os.path.join(d, "image"))

    def test_efficiency_layout_is_relative_to_full(self):
        with tempfile.TemporaryDirectory() as d:
            paths = [self.report(d, "local", "FP", "listops", 0.4, 2048, 12.0, 60 << 20),
                     self.report(d, "full", "baseline", "listops", 0.4, 2048, 4.0, 300 << 20),
                     self.report(d, "full", "baseline", "listops", 0.4, 1024, 10.0, 100 << 20),
                     self.report(d, "local", "FP", "listops", 0.4, 1024, 15.0, 50 << 20)]
            p = run(["table", "--layout", "efficiency"] + paths)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout,
                             "| Model | steps/s @1024 | steps/s @2048 | memory @1024 | "
                             "memory @2048 |\n"
                             "|---|---:|---:|---:|---:|\n"
                             "| full | 10.00 | 4.00 | 100.0 MiB | 300.0 MiB |\n"
                             "| local | 1.50x | 3.00x | 0.50x | 0.20x |\n")

    def test_plots_are_well_formed_svg_with_one_mark_per_point(self):
        import xml.etree.ElementTree as ET
        ns = "{http://www.w3.org/2000/svg}"
        with tempfile.TemporaryDirectory() as d:
            rep = os.path.join(d, "r")
            os.makedirs(rep)
            paths = self.accuracy_reports(rep)
            paths += [self.report(rep, m, c, "listops", 0.4, L, sps, rss)
                      for m, c in (("full", "baseline"), ("local", "FP"))
                      for L, sps, rss in ((1024, 10.0, 100 << 20), (4096, 2.0, 400 << 20))]
            for kind in ("frontier", "scaling"):
                svg = os.path.join(d, kind + ".svg")
                p = run(["plot", rep, "--kind", kind, "-o", svg])
                self.assertEqual(p.returncode, 0, p.stderr)
                root = ET.parse(svg).getroot()
                self.assertEqual(root.tag, ns + "svg")
                marks = [c for c in root.iter(ns + "circle") if c.get("class") == "mark"]
                texts = [t.text for t in root.iter(ns + "text")]
                if kind == "frontier":
                    # a point per mechanism with both tasks (linear has no text report)
                    self.assertEqual(len(marks), 2)
                    self.assertIn("test accuracy (%)", texts)
                    self.assertIn("baseline", texts)  # the legend's classes
                    self.assertIn("Not drawn (no report of text): linear", texts)
                else:
                    self.assertEqual(len(marks), len(paths))  # a point per report
                    self.assertIn("peak memory (MiB)", texts)
                    self.assertIn("local", texts)  # the legend's mechanisms
                    self.assertEqual(len(list(root.iter(ns + "polyline"))), 2 * 3)
            self.assertEqual(sorted(os.listdir(d)), ["frontier.svg", "r", "scaling.svg"])

    def frontier_reports(self, d):
        """Accuracy: full listops 40 and 42 (two seeds), text 60: 50.50 on average; local
        listops 45, text 55: 50.00; linear listops only. Bench (no test accuracy, batch 16):
        full 10 steps/s at 1024 and 4 at 2048 (300 MiB), local 15 and 12 (60 MiB), linear 20 at
        2048, hyena 30 at 2048 with no accuracy anywhere."""
        acc = [("full", "baseline", "listops", 0.40, 0), ("full", "baseline", "listops", 0.42, 1),
               ("full", "baseline", "text", 0.60, 0), ("local", "FP", "listops", 0.45, 0),
               ("local", "FP", "text", 0.55, 0), ("linear", "KR", "listops", 0.30, 0)]
        bench = [("full", "baseline", 1024, 10.0, 100), ("full", "baseline", 2048, 4.0, 300),
                 ("local", "FP", 1024, 15.0, 50), ("local", "FP", 2048, 12.0, 60),
                 ("linear", "KR", 2048, 20.0, 80), ("hyena", "LC", 2048, 30.0, 90)]
        for m, c, t, a, seed in acc:
            self.report(d, m, c, t, a, seed=seed)
        for m, c, L, sps, mib in bench:
            self.report(d, m, c, "listops", None, L, sps, mib << 20)

    def frontier(self, d, *args):
        import xml.etree.ElementTree as ET
        ns = "{http://www.w3.org/2000/svg}"
        svg = os.path.join(d, "f.svg")
        p = run(["plot", os.path.join(d, "r"), "-o", svg] + list(args))
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        root = ET.parse(svg).getroot()
        marks = sorted("".join(c.itertext()) for c in root.iter(ns + "circle")
                       if c.get("class") == "mark")
        texts = [t.text for t in root.iter(ns + "text")]
        return marks, texts

    def test_frontier_is_one_point_per_mechanism_with_bench_speed_and_mean_accuracy(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "r"))
            self.frontier_reports(os.path.join(d, "r"))
            marks, texts = self.frontier(d)  # the longest bench length, 2048
            self.assertEqual(marks, ["full: 50.50%, 64 examples/s (1.00x full), 300.0 MiB",
                                     "local: 50.00%, 192 examples/s (3.00x full), 60.0 MiB"])
            self.assertIn("training examples/s at L = 2048 (bench)", texts)
            self.assertIn("mean over 2 tasks", texts)
            self.assertIn("Not drawn (no report of text): linear", texts)
            self.assertIn("Not drawn (no test accuracy): hyena", texts)
            self.assertEqual(sorted(t for t in texts if t in ("full", "local")), ["full", "local"])
            marks, texts = self.frontier(d, "--length", "1024")
            self.assertEqual(marks, ["full: 50.50%, 160 examples/s (1.00x full), 100.0 MiB",
                                     "local: 50.00%, 240 examples/s (1.50x full), 50.0 MiB"])
            self.assertIn("training examples/s at L = 1024 (bench)", texts)
            self.assertIn("Not drawn (no report of text): linear", texts)
            marks, texts = self.frontier(d, "--length", "1024", "--task", "listops")
            self.assertIn("Not drawn (no bench report at L = 1024): linear", texts)
            marks, texts = self.frontier(d, "--task", "listops")  # seeds: 41.00 ± 1.41
            self.assertEqual(marks, ["full: 41.00% ± 1.41, 64 examples/s (1.00x full), 300.0 MiB",
                                     "linear: 30.00%, 320 examples/s (5.00x full), 80.0 MiB",
                                     "local: 45.00%, 192 examples/s (3.00x full), 60.0 MiB"])
            self.assertIn("bars: ± sd over seeds", texts)
            marks, texts = self.frontier(d, "--facet", "task")
            self.assertEqual(len(marks), 3 + 2)
            self.assertIn("listops", texts)
            self.assertIn("text", texts)
            self.assertIn("full: 60.00%, 64 examples/s (1.00x full), 300.0 MiB", marks)
            # without bench reports: the runs' own speed (16 examples a step at 1 step/s)
            for f in os.listdir(os.path.join(d, "r")):
                if "-1024" in f or "-2048" in f:
                    os.remove(os.path.join(d, "r", f))
            marks, texts = self.frontier(d)
            self.assertEqual(marks, ["full: 50.50%, 16 examples/s (1.00x full), 1.0 MiB",
                                     "local: 50.00%, 16 examples/s (1.00x full), 1.0 MiB"])
            self.assertIn("training examples/s (the runs' own)", texts)

    def test_frontier_labels_never_overlap_on_table_1s_reports(self):
        """Every label of the committed lra-small and efficiency reports, alone and faceted,
        in a box of its own inside its panel's frame, one per circle. The boxes use the width
        rule of the plot (DejaVu Sans's advances: 0.40 em narrow, 0.98 wide, 0.74 capitals,
        0.64 other characters), which the rendered figure was checked against by eye."""
        import xml.etree.ElementTree as ET
        ns = "{http://www.w3.org/2000/svg}"
        root_dir = os.environ.get("XB_SOURCE_ROOT", ".")
        results = [os.path.join(root_dir, "results", x) for x in ("lra-small", "efficiency")]

        def width(s):
            return 10 * sum(0.40 if c in "fijlrt.,:;!|()[]' " else 0.98 if c in "mwMW%@"
                            else 0.74 if c.isupper() else 0.64 for c in s)

        with tempfile.TemporaryDirectory() as d:
            for args in ([], ["--facet", "task"]):
                svg = os.path.join(d, "f.svg")
                p = run(["plot"] + results + ["--kind", "frontier", "-o", svg] + args)
                self.assertEqual(p.returncode, 0, p.stderr)
                root = ET.parse(svg).getroot()
                frames = [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
                          for r in root.iter(ns + "rect") if r.get("stroke") == "#333"]
                boxes = []
                for t in root.iter(ns + "text"):
                    if t.get("class") != "label":
                        continue
                    x, y = float(t.get("x")), float(t.get("y"))
                    boxes.append((x, y + 3 - 12.5, x + width(t.text), y + 3, t.text))
                marks = [c for c in root.iter(ns + "circle") if c.get("class") == "mark"]
                self.assertEqual(len(boxes), len(marks), args)
                self.assertGreaterEqual(len(marks), 20 if not args else 100)
                for i, a in enumerate(boxes):
                    self.assertTrue(any(fx <= a[0] and a[2] <= fx + fw and fy <= a[1]
                                        and a[3] <= fy + fh for fx, fy, fw, fh in frames), a)
                    for b in boxes[i + 1:]:
                        self.assertFalse(a[0] < b[2] and b[0] < a[2] and a[1] < b[3]
                                         and b[1] < a[3], (args, a, b))

    def test_frontier_bad_options_are_one_line_exit_2(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "r"))
            self.frontier_reports(os.path.join(d, "r"))
            rep, svg = os.path.join(d, "r"), os.path.join(d, "f.svg")
            cases = [
                (["--facet", "mechanism"], '--facet: expected task, got "mechanism"'),
                (["--facet"], "--facet needs a value (see --help)"),
                (["--kind", "bar"], '--kind: expected frontier or scaling, got "bar"'),
                (["--task", "image"], '--task: no report of task "image" with a test accuracy '
                 '(tasks: listops, text)'),
                (["--length", "4096"], "--length 4096: no bench report at this length "
                 "(lengths: 1024, 2048)"),
                (["--length", "x"], '--length: expected a sequence length (an integer in '
                 '[2, 1048576]), got "x"'),
                (["--length", "1"], '--length: expected a sequence length (an integer in '
                 '[2, 1048576]), got "1"'),
                (["--facet", "task", "--task", "text"], "--facet task draws every task: it "
                 "cannot be combined with --task"),
                (["--kind", "scaling", "--facet", "task"], "--facet applies only to --kind frontier "
                 "(see --help)"),
                (["--kind", "scaling", "--length", "1024"], "--length applies only to --kind "
                 "frontier (see --help)"),
            ]
            for args, expected in cases:
                p = run(["plot", rep, "-o", svg] + args)
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (2, "", "xformer-bench plot: " + expected + "\n"), args)
            only_runs = os.path.join(d, "runs")
            os.makedirs(only_runs)
            for f in os.listdir(rep):
                if "-40" in f:
                    shutil.copy(os.path.join(rep, f), only_runs)
            p = run(["plot", only_runs, "-o", svg, "--length", "1024"])
            self.assertEqual((p.returncode, p.stderr),
                             (2, "xformer-bench plot: --length: no bench reports among the inputs "
                              "(reports without a test accuracy, as xformer-bench bench writes "
                              "them)\n"))
            self.assertEqual(sorted(os.listdir(d)), ["r", "runs"])  # no figure, no temporary

    def test_frontier_labels_of_coinciding_marks_do_not_overlap(self):
        # Four mechanisms at the same accuracy and speed: each label takes its own side of the
        # circle instead of all four being written over each other.
        import xml.etree.ElementTree as ET
        ns = "{http://www.w3.org/2000/svg}"
        with tempfile.TemporaryDirectory() as d:
            paths = [self.report(d, m, c, "listops", 0.35, 1024, 5.0, 100 << 20)
                     for m, c in (("full", "baseline"), ("local", "FP"), ("linear", "KR"),
                                  ("sinkhorn", "LP"))]
            svg = os.path.join(d, "f.svg")
            p = run(["plot"] + paths + ["--kind", "frontier", "-o", svg])
            self.assertEqual(p.returncode, 0, p.stderr)
            labels = {t.text: (t.get("x"), t.get("y"), t.get("text-anchor"))
                      for t in ET.parse(svg).getroot().iter(ns + "text")
                      if t.text in ("full", "local", "linear", "sinkhorn")
                      and t.get("font-size") == "10"}
            self.assertEqual(len(labels), 4, labels)
            self.assertEqual(len(set(labels.values())), 4, labels)

    def test_bad_options_exit_2(self):
        p = run(["table", "--format", "html", "x.json"])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, 'xformer-bench table: --format: expected md, latex or csv, '
                         'got "html"\n')
        for v in ("-1", "x", "nan", "inf"):
            p = run(["table", "x.json", "--converged-margin", v])
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (2, "", 'xformer-bench table: --converged-margin: expected a number '
                              'of points >= 0, got "%s"\n' % v))
        p = run(["table", "x.json", "--converged-margin"])
        self.assertEqual(p.stderr, "xformer-bench table: --converged-margin needs a value (see "
                         "--help)\n")
        p = run(["table", "/nonexistent/r.json"])
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, "xformer-bench table: /nonexistent/r.json: cannot read: No "
                         "such file or directory\n")


class Table1Seeds(unittest.TestCase):
    """scripts/table1.sh --seeds N: the config's seed and N-1 more, reports that never collide,
    one-seed reports counting as the first seed, shards that split (task, mechanism, seed)."""

    ROOT = os.path.abspath(os.environ.get("XB_SOURCE_ROOT", "."))

    def repo(self, d, listops_yaml):
        """A copy of table1.sh beside a configs/lra-small holding one tiny ListOps config."""
        repo = os.path.join(d, "repo")
        os.makedirs(os.path.join(repo, "scripts"))
        os.makedirs(os.path.join(repo, "configs", "lra-small"))
        shutil.copy(os.path.join(self.ROOT, "scripts", "table1.sh"),
                    os.path.join(repo, "scripts", "table1.sh"))
        with open(os.path.join(repo, "configs", "lra-small", "listops.yaml"), "w") as f:
            f.write(listops_yaml)
        return repo

    def table1(self, repo, *args):
        return subprocess.run(["bash", os.path.join(repo, "scripts", "table1.sh")] + list(args),
                              capture_output=True, text=True,
                              env={**os.environ, "XB_BIN": os.path.abspath(BIN)})

    def test_seeds_follow_the_configs_seed_and_a_one_seed_report_is_the_first(self):
        for yaml, first in ((TINY, 3),  # block style, seed: 3
                            (TINY.replace("experiment:\n  name: tiny\n  seed: 3\n  threads: 2\n",
                                          "experiment: {name: tiny, seed: 7, threads: 2}\n"), 7),
                            (TINY.replace("  seed: 3\n", ""), 1)):  # the schema's default
            with tempfile.TemporaryDirectory() as d:
                repo = self.repo(d, yaml)
                out = os.path.join(d, "t1")
                os.makedirs(os.path.join(out, "listops"))
                with open(os.path.join(out, "listops", "lra-small-listops-full.json"), "w") as f:
                    f.write("{}")  # done: any report but an interrupted one
                p = self.table1(repo, "-o", out, "--tasks", "listops", "--mixers", "full,linear",
                                "--seeds", "3", "--dry-run")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout.splitlines(), [
                    "table1.sh: 5 runs to do in %s (2 at a time, 1 thread(s) each)" % out,
                    "listops linear --set experiment.name=lra-small-listops-linear "
                    "--set model.mixer.name=linear",
                    "listops full --set experiment.name=lra-small-listops-full-seed%d "
                    "--set model.mixer.name=full --set experiment.seed=%d" % (first + 1, first + 1),
                    "listops linear --set experiment.name=lra-small-listops-linear-seed%d "
                    "--set model.mixer.name=linear --set experiment.seed=%d" % (first + 1,
                                                                                first + 1),
                    "listops full --set experiment.name=lra-small-listops-full-seed%d "
                    "--set model.mixer.name=full --set experiment.seed=%d" % (first + 2, first + 2),
                    "listops linear --set experiment.name=lra-small-listops-linear-seed%d "
                    "--set model.mixer.name=linear --set experiment.seed=%d" % (first + 2,
                                                                                first + 2)])

    def test_shards_split_every_task_mechanism_and_seed_once(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "t1")
            opts = ["-o", out, "--tasks", "listops,image", "--mixers", "full,linear,local",
                    "--seeds", "3", "--dry-run"]
            script = os.path.join(self.ROOT, "scripts", "table1.sh")
            whole = subprocess.run(["bash", script] + opts, capture_output=True, text=True,
                                   env={**os.environ, "XB_BIN": os.path.abspath(BIN)})
            self.assertEqual(whole.returncode, 0, whole.stderr)
            everything = whole.stdout.splitlines()[1:]
            self.assertEqual(len(everything), 18)
            self.assertEqual(len(set(everything)), 18)
            got = []
            for i in range(4):
                p = subprocess.run(["bash", script] + opts + ["--shard", "%d/4" % i],
                                   capture_output=True, text=True,
                                   env={**os.environ, "XB_BIN": os.path.abspath(BIN)})
                self.assertEqual(p.returncode, 0, p.stderr)
                lines = p.stdout.splitlines()[1:]
                self.assertIn(len(lines), (4, 5))  # 18 points over 4 shards
                got += lines
            self.assertEqual(sorted(got), sorted(everything))

    def test_seeds_run_write_their_own_reports_and_the_table_shows_their_spread(self):
        with tempfile.TemporaryDirectory() as d:
            repo = self.repo(d, TINY.replace("threads: 2", "threads: 1"))
            out = os.path.join(d, "t1")
            p = self.table1(repo, "-o", out, "--tasks", "listops", "--mixers", "full",
                            "--seeds", "2")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("table1.sh: listops full done in", p.stdout)
            self.assertIn("table1.sh: listops full-seed4 done in", p.stdout)
            self.assertEqual(sorted(os.listdir(os.path.join(out, "listops"))),
                             ["lra-small-listops-full-seed4.json", "lra-small-listops-full.json"])
            seeds = []
            for name in ("lra-small-listops-full", "lra-small-listops-full-seed4"):
                with open(os.path.join(out, "listops", name + ".json")) as f:
                    doc = json.load(f)
                self.assertEqual(doc["run_id"], name)
                seeds.append(doc["config"]["experiment"]["seed"])
            self.assertEqual(seeds, [3, 4])
            self.assertRegex(p.stdout, r"\| full \| [0-9.]+ ± [0-9.]+ \(2(, [0-2] conv\.)?\) \|")
            again = self.table1(repo, "-o", out, "--tasks", "listops", "--mixers", "full",
                                "--seeds", "2")
            self.assertIn("table1.sh: 0 runs to do", again.stdout)

    def test_bad_seeds_are_one_line_exit_2(self):
        script = os.path.join(self.ROOT, "scripts", "table1.sh")
        for v in ("0", "-1", "x", "1.5", ""):
            p = subprocess.run(["bash", script, "--seeds", v], capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (2, "", "table1.sh: --seeds: expected a number of seeds >= 1, "
                              "got '%s'\n" % v))
        with tempfile.TemporaryDirectory() as d:
            repo = self.repo(d, TINY.replace("  seed: 3\n", "  seed: three\n"))
            p = self.table1(repo, "-o", os.path.join(d, "t1"), "--tasks", "listops", "--mixers",
                            "full", "--seeds", "2", "--dry-run")
            self.assertEqual((p.returncode, p.stderr),
                             (2, "table1.sh: configs/lra-small/listops.yaml: cannot read "
                              "experiment.seed (expected an integer, found 'three')\n"))

    def test_without_mixers_every_mechanism_of_list_is_a_point(self):
        # `read -a` of the list's newline-separated names once took the first one alone
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run(["bash", os.path.join(self.ROOT, "scripts", "table1.sh"), "-o", d,
                                "--tasks", "listops", "--dry-run"], capture_output=True,
                               text=True, env={**os.environ, "XB_BIN": os.path.abspath(BIN)})
            self.assertEqual(p.returncode, 0, p.stderr)
            listed = run(["list"]).stdout
            names = [line.split()[0] for line in listed.split("\n\n")[0].splitlines()[1:]
                     if line[:1].isalpha()]
            self.assertGreater(len(names), 20)
            self.assertEqual([x.split()[1] for x in p.stdout.splitlines()[1:]], names)


class Bench(unittest.TestCase):
    def test_points_reports_index_budget_and_lengths_a_mechanism_cannot_take(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            out = os.path.join(d, "bench")
            p = run(["bench", cfg, "--lengths", "32,48", "--mixers", "full,local,linformer",
                     "--steps", "3", "--warmup", "1", "-o", out, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out, "index.json")) as f:
                idx = json.load(f)
            pts = {(q["mixer"], q["length"]): q for q in idx["points"]}
            self.assertEqual(len(pts), 6)
            for m in ("full", "local"):
                for L in (32, 48):
                    q = pts[(m, L)]
                    self.assertEqual(q["status"], "ok")
                    with open(os.path.join(out, q["report"])) as f:
                        doc = json.load(f)
                    self.assertEqual(doc["config"]["model"]["max_len"], L)
                    self.assertEqual(doc["model"]["mixer"], m)
                    self.assertEqual(doc["training"]["steps"], 3)
                    self.assertEqual(doc["evals"], [])  # no evaluation in a benchmark
                    self.assertGreater(doc["measured"]["step_s_median"], 0)
                    self.assertEqual(q["flops_step"], doc["flops"]["analytic_train_step"])
                    self.assertAlmostEqual(q["gflops_per_s"], q["flops_step"] / 1e9
                                           / q["step_s_median"])
                    self.assertGreater(q["planned_bytes"], 0)
                    v = subprocess.run([sys.executable, os.environ.get("XB_VALIDATE",
                                        "tests/validate_report.py"),
                                        os.environ.get("XB_SCHEMA", "src/report/report.schema.json"),
                                        os.path.join(out, q["report"])],
                                       capture_output=True, text=True)
                    self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            self.assertEqual(pts[("full", 32)]["speed_vs_full"], 1.0)
            self.assertEqual(pts[("full", 32)]["memory_vs_full"], 1.0)
            self.assertEqual(pts[("linformer", 32)]["status"], "skipped")
            self.assertEqual(pts[("linformer", 32)]["reason"],
                             "model.mixer.k: 256 is longer than model.max_len = 32 (valid: 1 to "
                             "32: Linformer shortens the keys)")
            self.assertIn("| local | 48 |", p.stdout)
            # the reports are a directory that table reads
            t = run(["table", "--layout", "efficiency", out])
            self.assertEqual(t.returncode, 0, t.stderr)
            self.assertIn("| local |", t.stdout)
            # a budget below what a point plans skips it instead of running it
            out2 = os.path.join(d, "tight")
            p = run(["bench", cfg, "--lengths", "32", "--max-memory", "1", "-o", out2, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out2, "index.json")) as f:
                q = json.load(f)["points"][0]
            self.assertEqual(q["status"], "skipped")
            self.assertRegex(q["reason"], r"^needs \d+ MiB planned, above --max-memory 1$")
            self.assertEqual(sorted(os.listdir(out2)), ["index.json"])
            for args, msg in ((["--lengths", "3x"], '--lengths: expected up to 64 lengths in '
                               '[2, 1048576] separated by commas, got "3x"'),
                              (["--lengths", "1024,,8"], '--lengths: expected up to 64 lengths '
                               'in [2, 1048576] separated by commas, got "1024,,8"'),
                              (["--lengths", ",".join(["32"] * 65)], '--lengths: expected up '
                               'to 64 lengths in [2, 1048576] separated by commas, got "%s"'
                               % ",".join(["32"] * 65)),
                              (["--mixers", "fulll"], '--mixers: unknown mechanism "fulll" (see '
                               'xformer-bench list mechanisms)'),
                              (["--steps", "2", "--warmup", "2"], "--warmup 2 leaves no step of "
                               "--steps 2 to time")):
                p = run(["bench", cfg, "-o", out2] + args)
                self.assertEqual(p.returncode, 2)
                self.assertEqual(p.stderr, "xformer-bench bench: " + msg + "\n")


# ---- data --export, eval, and the PyTorch cross-check (issue 17) ----

def checksum(stdout):
    """The checksum line of `xformer-bench data`."""
    import re
    m = re.search(r"\n  checksum ([0-9a-f]{16})\n", stdout)
    assert m, stdout
    return m.group(1)


def read_npy(path):
    """(descr, shape, values) of a .npy file, parsed by the format's definition (version 1.0:
    magic, version, little-endian u16 header length, a Python dict literal, raw data)."""
    import ast
    import struct
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:8] == b"\x93NUMPY\x01\x00", raw[:8]
    (hl,) = struct.unpack("<H", raw[8:10])
    assert (10 + hl) % 64 == 0 and raw[10 + hl - 1:10 + hl] == b"\n"
    head = ast.literal_eval(raw[10:10 + hl].decode("latin-1"))
    assert head["fortran_order"] is False
    n = 1
    for d in head["shape"]:
        n *= d
    fmt = {"<i4": "i", "<f4": "f"}[head["descr"]]
    data = raw[10 + hl:]
    assert len(data) == 4 * n, (len(data), n)
    return head["descr"], head["shape"], struct.unpack("<%d%s" % (n, fmt), data)


def write_aan(d, rows=(40, 12, 12)):
    """LRA's AAN layout: rows label, id1, id2, text1, text2 whose label says whether the two texts
    share their word (a pattern a tiny model can pick up)."""
    import random
    rng = random.Random(5)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    for name, n in zip(("train", "eval", "test"), rows):
        with open(os.path.join(d, f"new_aan_pairs.{name}.tsv"), "w") as f:
            for i in range(n):
                a = rng.choice(words)
                b = a if i % 2 else rng.choice([w for w in words if w != a])
                t1 = " ".join([a] * rng.randint(2, 6)) + f" paper {i}"
                t2 = " ".join([b] * rng.randint(2, 6)) + " (cited)"
                f.write(f"{i % 2}\tA{i}\tB{i}\t{t1}\t{t2}\n")


class Export(unittest.TestCase):
    def test_listops_export_reads_back_through_source_files_with_the_same_checksum(self):
        with tempfile.TemporaryDirectory() as d:
            gen = ["listops", "--set", "task.num_train=300", "--set", "task.min_length=5",
                   "--set", "task.max_length=60"]
            out = os.path.join(d, "lra")
            p = run(["data"] + gen + ["--export", out])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(f"\n  export   {out} (LRA's ListOps TSV): basic_train.tsv, "
                          "basic_val.tsv, basic_test.tsv\n", p.stdout)
            with open(os.path.join(out, "basic_test.tsv")) as f:
                self.assertEqual(f.readline(), "Source\tTarget\n")
                self.assertRegex(f.readline(), r"^\( .* \)\t\d\n$")
            back = run(["data", "listops", "--set", "task.source=files", "--set",
                        "task.data_dir=" + out])
            self.assertEqual(back.returncode, 0, back.stderr)
            self.assertEqual(checksum(back.stdout), checksum(p.stdout))
            # an export never replaces a file, and says so before loading anything
            again = run(["data"] + gen + ["--export", out])
            self.assertEqual(again.returncode, 2)
            self.assertEqual(again.stdout, "")
            self.assertEqual(again.stderr, f"xformer-bench: {out}/basic_train.tsv: already exists "
                             "(export into a new or empty directory: an export never replaces a "
                             "file)\n")
            bad = os.path.join(out, "basic_val.tsv", "sub")
            p = run(["data"] + gen + ["--export", bad])
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr, f"xformer-bench: {bad}: cannot create directory: "
                             f"'{out}/basic_val.tsv' is not a directory\n")
            p = run(["data", "parity", "--export", os.path.join(d, "p")])
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr, f"xformer-bench: {d}/p: task parity has no export format "
                             "(valid: listops, text, retrieval, image, pathfinder, mqar, selcopy, "
                             "needle)\n")
            self.assertEqual(sorted(os.listdir(d)), ["lra"])
            self.assertEqual(sorted(os.listdir(out)), ["basic_test.tsv", "basic_train.tsv",
                                                       "basic_val.tsv"])

    def test_help_describes_export_and_eval(self):
        p = run(["data", "--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("[--export DIR]", p.stdout)
        for name in ("basic_{train,val,test}.tsv", "new_aan_pairs.{train,eval,test}.tsv",
                     "text_{train,val,test}.tsv", "TASK_{train,val,test}_{inputs,targets}.npy"):
            self.assertIn(name, p.stdout)
        self.assertIn("\n  mqar,       TASK_{train,val,test}_{inputs,targets}.npy, NumPy int32: "
                      "inputs (N, L) the\n  selcopy,    token ids padded with 0 to the split's "
                      "longest example, targets (N, L)\n  needle      each position's class, -1 "
                      "where it has none (padding included)\n", p.stdout)
        p = run(["help", "eval"])
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith("usage: xformer-bench eval REPORT.json [--split "
                                            "test|val] [--logits FILE.npy] [--threads N]\n"))
        p = run(["--help"])
        self.assertIn("\n  eval     evaluate a report's checkpoint again; write its logits\n",
                      p.stdout)

    def test_retrieval_export_reads_back_through_source_aan_with_the_same_checksum(self):
        with tempfile.TemporaryDirectory() as d:
            write_aan(d)
            src = ["data", "retrieval", "--set", "task.source=aan", "--set", "task.data_dir=" + d]
            out = os.path.join(d, "out")
            p = run(src + ["--export", out])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("written as spaces", p.stdout)
            back = run(["data", "retrieval", "--set", "task.source=aan", "--set",
                        "task.data_dir=" + out])
            self.assertEqual(back.returncode, 0, back.stderr)
            self.assertEqual(checksum(back.stdout), checksum(p.stdout))
            with open(os.path.join(out, "new_aan_pairs.eval.tsv")) as f, \
                    open(os.path.join(d, "new_aan_pairs.eval.tsv")) as g:
                for ours, theirs in zip(f, g):  # the same rows, ids aside
                    a, b = ours.split("\t"), theirs.split("\t")
                    self.assertEqual((a[0], a[3], a[4]), (b[0], b[3], b[4]))

    def test_mqar_export_pads_to_the_longest_and_targets_each_querys_value(self):
        keys, values = 16, 4
        with tempfile.TemporaryDirectory() as d:
            p = run(["data", "mqar", "--set", "task.num_train=40", "--set", "task.num_val=10",
                     "--set", "task.num_test=10", "--set", "task.min_pairs=2", "--set",
                     "task.max_pairs=5", "--set", "task.queries=2", "--set", f"task.keys={keys}",
                     "--set", f"task.values={values}", "--export", d])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(f"\n  export   {d} (NumPy int32 arrays, per-position targets): "
                          "mqar_train_inputs.npy, mqar_train_targets.npy, mqar_val_inputs.npy, "
                          "mqar_val_targets.npy, mqar_test_inputs.npy, mqar_test_targets.npy\n",
                          p.stdout)
            for split, n in (("train", 40), ("val", 10), ("test", 10)):
                descr, shape, x = read_npy(os.path.join(d, f"mqar_{split}_inputs.npy"))
                tdescr, tshape, y = read_npy(os.path.join(d, f"mqar_{split}_targets.npy"))
                self.assertEqual((descr, tdescr), ("<i4", "<i4"))
                self.assertEqual(shape, tshape)
                self.assertEqual(shape[0], n)
                L = shape[1]
                rows = [(x[i * L:(i + 1) * L], y[i * L:(i + 1) * L]) for i in range(n)]
                lengths = [sum(t != 0 for t in row) for row, _ in rows]
                self.assertEqual(max(lengths), L)  # padded to the longest example only
                self.assertGreater(L, min(lengths))
                for (row, tgt), length in zip(rows, lengths):
                    # tokens, then 0; no target before the queries nor on the padding
                    self.assertEqual(row[length:], (0,) * (L - length))
                    pairs = (length - 1 - 2) // 2
                    self.assertEqual(length, 2 * pairs + 1 + 2)
                    self.assertEqual(tgt[:2 * pairs + 1], (-1,) * (2 * pairs + 1))
                    self.assertEqual(tgt[length:], (-1,) * (L - length))
                    value = {row[2 * i]: row[2 * i + 1] for i in range(pairs)}
                    for t in range(2 * pairs + 1, length):  # each query's value, as a class
                        self.assertEqual(tgt[t], value[row[t]] - 1 - keys)
                        self.assertIn(tgt[t], range(values))

    @unittest.skipUnless(os.path.exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
                         "Debian's dataset-fashion-mnist is not installed")
    def test_image_export_arrays_hold_the_idx_files_pixels_plus_one_and_labels(self):
        import gzip
        import struct
        root = "/usr/share/datasets/fashion-mnist"

        def idx(name):
            with gzip.open(os.path.join(root, name)) as f:
                raw = f.read()
            dims = raw[3]
            shape = struct.unpack(">%dI" % dims, raw[4:4 + 4 * dims])
            return shape, raw[4 + 4 * dims:]

        with tempfile.TemporaryDirectory() as d:
            p = run(["data", "image", "--set", "task.num_train=30", "--set", "task.num_val=20",
                     "--set", "task.num_test=25", "--export", d])
            self.assertEqual(p.returncode, 0, p.stderr)
            (ntr, h, w), pix = idx("train-images-idx3-ubyte.gz")
            _, lab = idx("train-labels-idx1-ubyte.gz")
            _, tpix = idx("t10k-images-idx3-ubyte.gz")
            _, tlab = idx("t10k-labels-idx1-ubyte.gz")
            L = h * w
            # train: the first 30 training images; val: the last 20; test: the first 25 of t10k
            for split, first, n, px, lb in (("train", 0, 30, pix, lab),
                                            ("val", ntr - 20, 20, pix, lab),
                                            ("test", 0, 25, tpix, tlab)):
                descr, shape, x = read_npy(os.path.join(d, f"image_{split}_inputs.npy"))
                self.assertEqual((descr, shape), ("<i4", (n, L)))
                self.assertEqual(list(x), [b + 1 for b in px[first * L:(first + n) * L]])
                descr, shape, y = read_npy(os.path.join(d, f"image_{split}_targets.npy"))
                self.assertEqual((descr, shape), ("<i4", (n,)))
                self.assertEqual(list(y), list(lb[first:first + n]))


def torch_python():
    """A Python that imports torch (Debian's python3-torch is for /usr/bin/python3), or None."""
    for py in ("/usr/bin/python3", sys.executable):
        if os.path.exists(py) and subprocess.run([py, "-c", "import torch, numpy"],
                                                 capture_output=True).returncode == 0:
            return py
    return None


REFERENCE = os.path.join(os.environ.get("XB_SOURCE_ROOT", "."), "scripts", "reference",
                         "torch_encoder.py")


class Eval(unittest.TestCase):
    def test_eval_reproduces_the_reports_accuracies_and_its_logits_argmax_gives_them(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            p = run(["run", cfg, "-o", d, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "tiny.json")) as f:
                doc = json.load(f)
            report, logits = os.path.join(d, "tiny.json"), os.path.join(d, "logits.npy")
            p = run(["eval", report, "--logits", logits, "--threads", "1"])
            self.assertEqual(p.returncode, 0, p.stderr)
            import re
            m = re.match(r"tiny: test accuracy (\S+) \(\d+\.\d\d%\) of 64 examples, loss \S+; "
                         r"the report's: (\S+), equal\n  logits \(64, 10\) float32 -> (\S+)\n$",
                         p.stdout)
            self.assertTrue(m, p.stdout)
            self.assertEqual(float(m.group(1)), doc["test"]["accuracy"])
            self.assertEqual(m.group(3), logits)
            p = run(["eval", report, "--split", "val"])
            self.assertEqual(p.returncode, 0, p.stderr)
            m = re.match(r"tiny: validation accuracy (\S+) .* of 64 examples", p.stdout)
            self.assertEqual(float(m.group(1)), doc["training"]["best_val_accuracy"])
            # the logits' argmax against the labels exported by data gives the same accuracy
            p = run(["data", cfg, "--export", os.path.join(d, "lra")])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "lra", "basic_test.tsv")) as f:
                labels = [int(line.split("\t")[1]) for line in f.readlines()[1:]]
            descr, shape, x = read_npy(logits)
            self.assertEqual((descr, shape), ("<f4", (64, 10)))
            right = sum(max(range(10), key=lambda c: x[10 * i + c]) == labels[i]
                        for i in range(64))
            self.assertEqual(right / 64, doc["test"]["accuracy"])

    def test_eval_reads_back_the_largest_seed(self):
        # 2^53 - 1, the top of experiment.seed's range: 16 digits, which the report prints
        # exactly and eval must read back as the same number (tests/fuzz/regressions/config)
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            p = run(["run", cfg, "-o", d, "--quiet", "--set", "train.steps=5",
                     "--set", "experiment.seed=9007199254740991"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "tiny.json")) as f:
                doc = json.load(f)
            self.assertEqual(doc["config"]["experiment"]["seed"], 9007199254740991)
            p = run(["eval", os.path.join(d, "tiny.json"), "--threads", "1"])
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            self.assertRegex(p.stdout, r"^tiny: test accuracy \S+ \(\d+\.\d\d%\) of 64 "
                             r"examples, loss \S+; the report's: \S+, equal\n$")

    def test_bad_input_exits_2_with_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "tiny.yaml")
            with open(cfg, "w") as f:
                f.write(TINY)
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            for out, extra in ((a, []), (b, ["--set", "model.d_model=8"])):
                p = run(["run", cfg, "-o", out, "--quiet", "--set", "train.steps=5"] + extra)
                self.assertEqual(p.returncode, 0, p.stderr)
            report = os.path.join(a, "tiny.json")
            with open(report) as f:
                doc = json.load(f)

            def variant(name, change):
                v = json.loads(json.dumps(doc))
                change(v)
                path = os.path.join(a, name)
                with open(path, "w") as f:
                    json.dump(v, f)
                return path

            bad_layers = variant("layers.json",
                                 lambda v: v["config"]["model"].__setitem__("layers", 0))
            no_config = variant("noconfig.json", lambda v: v.pop("config"))
            other_data = variant("data.json",
                                 lambda v: v["dataset"].__setitem__("checksum", "0" * 16))
            truncated = os.path.join(a, "truncated.json")
            with open(report) as f, open(truncated, "w") as g:
                text = f.read()
                g.write(text[:text.rindex("}")])  # the last brace cut off
            lines = text[:text.rindex("}")].split("\n")
            ck = os.path.join(a, "tiny.safetensors")
            cases = [
                (bad_layers, f"{bad_layers}: config.model.layers: 0 is out of range (an integer "
                 "in [1, 64])"),
                (no_config, f"{no_config}: config: missing (expected an object)"),
                (other_data, f"{other_data}: dataset.checksum: the run's data had checksum "
                 f"0000000000000000, the task's data now has {doc['dataset']['checksum']} (its "
                 "files or its generator changed): the run cannot be evaluated again"),
                (truncated, f"{truncated}:{len(lines)}:{len(lines[-1]) + 1}: JSON syntax "
                 "error: unexpected end of file"),
            ]
            for path, msg in cases:
                p = run(["eval", path])
                self.assertEqual((p.returncode, p.stdout, p.stderr),
                                 (2, "", "xformer-bench: " + msg + "\n"), path)
            # a checkpoint of another model: the report's record of its checkpoint's hash says so
            # (tests/test_cli_runs.py); a report older than that record reaches the shapes
            os.replace(os.path.join(b, "tiny.safetensors"), ck)
            old = variant("old.json", lambda v: v.pop("checkpoint"))
            p = run(["eval", old])
            self.assertEqual((p.returncode, p.stderr), (2, f"xformer-bench: {ck}: tensor "
                             "'embed.tokens.weight' has shape [20, 8] in the file, the model "
                             "expects [20, 16]\n"))
            os.remove(ck)
            p = run(["eval", report, "--logits", os.path.join(d, "l.npy")])
            self.assertEqual((p.returncode, p.stderr), (2, f"xformer-bench: {ck}: cannot read "
                             "the checkpoint: No such file or directory (run writes "
                             "RUN_ID.safetensors beside the report when train.checkpoint is "
                             "true)\n"))
            self.assertFalse(os.path.exists(os.path.join(d, "l.npy")))
            p = run(["eval", report, "--split", "train"])
            self.assertEqual((p.returncode, p.stderr), (2, "xformer-bench eval: --split: "
                             'expected test or val, got "train"\n'))


class TorchCrossCheck(unittest.TestCase):
    """scripts/reference/torch_encoder.py rebuilds a report's encoder from PyTorch's modules and
    must reproduce its test accuracy within 0.1 points and our logits within 1e-4."""

    def cross_check(self, d, report, data_args, threads="1"):
        py = torch_python()
        if py is None:  # the script says so and exits 77 (meson's skip code)
            p = subprocess.run([sys.executable, REFERENCE, report, d], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 77, p.stdout + p.stderr)
            self.assertRegex(p.stdout, r"^torch_encoder.py: PyTorch is not installed .*: "
                             r"cross-check skipped\n$")
            self.skipTest("PyTorch is not installed (Debian: python3-torch)")
        data = os.path.join(d, "lra")
        p = run(["data"] + data_args + ["--export", data])
        self.assertEqual(p.returncode, 0, p.stderr)
        logits = os.path.join(d, "logits.npy")
        p = run(["eval", report, "--logits", logits, "--threads", threads])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(", equal\n", p.stdout)
        p = subprocess.run([py, REFERENCE, report, data, "--logits", logits], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(p.stdout.endswith("\nPASS\n"), p.stdout)
        return p.stdout

    def test_quickstart_rebuilt_in_pytorch_gives_its_accuracy_and_logits(self):
        root = os.environ.get("XB_SOURCE_ROOT", ".")
        quick = os.path.join(root, "configs", "quickstart.yaml")
        with tempfile.TemporaryDirectory() as d:
            # 200 of its 1500 steps: the same model, a few seconds of training
            short = ["--set", "train.steps=200", "--set", "train.eval_every=100"]
            p = run(["run", quick, "-o", d, "--quiet", "--threads", "2"] + short)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = self.cross_check(d, os.path.join(d, "quickstart.json"), [quick])
            self.assertRegex(out, r"difference 0\.\d+ points \(limit 0\.1\)")

    def test_retrieval_dual_encoder_with_biases_and_mean_pooling_rebuilt_in_pytorch(self):
        text = """\
experiment: {name: pairs, seed: 2, threads: 1}
task: {name: retrieval, source: aan, data_dir: DIR}
model: {layers: 2, d_model: 16, heads: 2, d_ff: 32, max_len: 40, pooling: mean,
        positions: learned, head_hidden: 24, mixer: {name: full, bias: true}}
train: {batch_size: 8, steps: 30, lr: 0.01, warmup: 5, eval_every: 10}
"""
        with tempfile.TemporaryDirectory() as d:
            write_aan(d)
            cfg = os.path.join(d, "pairs.yaml")
            with open(cfg, "w") as f:
                f.write(text.replace("DIR", d))
            p = run(["run", cfg, "-o", d, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.cross_check(d, os.path.join(d, "pairs.json"), [cfg])


    def test_mamba_per_position_rebuilt_from_the_authors_code_in_both_forms(self):
        # MQAR of 3 to 6 pairs: rows of several lengths, which the authors' Mamba (no padding
        # mask) runs cut to their real length
        text = """\
experiment: {name: NAME, seed: 3, threads: 1}
task: {name: mqar, num_train: 400, num_val: 64, num_test: 64, min_pairs: 3, max_pairs: 6,
       queries: 2, keys: 12, values: 5}
model: {layers: 2, d_model: 16, d_ff: 32, max_len: 15, pooling: none, positions: learned,
        dropout: 0.0, mixer: {name: mamba, d_state: 4, bidirectional: BI}}
train: {batch_size: 16, steps: 40, lr: 0.01, warmup: 5, eval_every: 20}
"""
        for name, bi in (("causal", "false"), ("bi", "true")):
            with self.subTest(bidirectional=bi), tempfile.TemporaryDirectory() as d:
                cfg = os.path.join(d, name + ".yaml")
                with open(cfg, "w") as f:
                    f.write(text.replace("NAME", name).replace("BI", bi))
                p = run(["run", cfg, "-o", d, "--quiet"])
                self.assertEqual(p.returncode, 0, p.stderr)
                out = self.cross_check(d, os.path.join(d, name + ".json"), [cfg])
                self.assertRegex(out, r"\nlogits: max \|torch - xformer-bench\| = \S+ absolute "
                                 r"over 64 examples' \d+ real positions x 5 ")


def run_limited(args, timeout=30, mem=1 << 30, fsize=64 << 20, **kw):
    """run() in a process that cannot take more than mem bytes of address space or write a file
    larger than fsize bytes, killed after timeout seconds: an input that makes it read or write
    without end fails the test instead of the machine. (AddressSanitizer reserves terabytes of
    address space for its shadow memory: a sanitized build goes without the first limit.)"""
    import resource

    def limits():
        if os.environ.get("XB_SANITIZED") != "1":
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limits, **kw)


class EndlessInput(unittest.TestCase):
    """A file that never ends (/dev/zero) or never opens (a FIFO) given as data, report or config
    stops at once with exit 2 and the file named, in bounded memory."""

    def check(self, args, expected):
        import time
        t0 = time.monotonic()
        p = run_limited(args, timeout=20)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual((p.returncode, p.stderr), (2, expected))
        self.assertEqual(p.stdout, "")

    def test_dev_zero_as_a_listops_file(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
                os.symlink("/dev/zero", os.path.join(d, name))
            self.check(["data", "listops", "--set", "task.source=files", "--set",
                        "task.data_dir=" + d],
                       f"xformer-bench: {d}/basic_train.tsv: task.data_dir: cannot read: it is a "
                       "character device, not a regular file\n")

    def test_dev_zero_and_a_fifo_as_reports(self):
        for cmd in (["table"], ["plot", "-o", "/tmp/never-written.svg"], ["compare", "/dev/zero"]):
            self.check(cmd + ["/dev/zero"], f"xformer-bench {cmd[0]}: /dev/zero: cannot read the "
                       "report: it is a character device, not a regular file\n")
        self.assertFalse(os.path.exists("/tmp/never-written.svg"))
        with tempfile.TemporaryDirectory() as d:
            fifo = os.path.join(d, "r.json")
            os.mkfifo(fifo)
            self.check(["table", fifo], f"xformer-bench table: {fifo}: cannot read the report: "
                       "it is a FIFO, not a regular file\n")

    def test_dev_zero_as_a_config(self):
        self.check(["run", "/dev/zero", "--check"], "xformer-bench: /dev/zero: cannot read: it is "
                   "a character device, not a regular file\n")


class ConfigShape(unittest.TestCase):
    """What libyaml accepts but a config cannot mean: one line, exit 2, nothing written."""

    def check(self, text, expected):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.yaml")
            with open(path, "wb") as f:
                f.write(text)
            p = run(["run", path, "-o", os.path.join(d, "out")])
            self.assertEqual((p.returncode, p.stderr), (2, "xformer-bench: " + path + expected))
            self.assertEqual(os.listdir(d), ["c.yaml"])

    def test_second_document_tags_nul_bytes_and_run_names(self):
        base = TINY.encode()
        self.check(base + b"---\nmodel: {layers: 4}\n",
                   ":22:1: a second YAML document (a config is one document: remove this '---' "
                   "and what follows, or split them into two files)\n")
        self.check(base.replace(b"layers: 1", b"layers: !!str 1"),
                   ":13:11: model.layers: YAML tags are not supported, got !!str (a config's "
                   "values take their type from their key: write the value without the tag)\n")
        self.check(base.replace(b"name: tiny", b"name: ti\0ny"),
                   ":2:11: a NUL byte (a config is text: UTF-8 without NUL bytes)\n")
        for name in ("..", ".", "-rf"):
            self.check(base.replace(b"name: tiny", b'name: "' + name.encode() + b'"'),
                       ":2:9: experiment.name: expected a name of 1 to 100 characters from A-Z "
                       "a-z 0-9 . _ -, not starting with . or - (it names the run's files), got "
                       f'"{name}"\n')


class DamagedCache(unittest.TestCase):
    def test_a_changed_vocabulary_in_a_cache_file_is_regenerated_with_one_line(self):
        import re
        import struct
        with tempfile.TemporaryDirectory() as d:
            env = {"XB_CACHE_DIR": d}
            args = ["data", "parity", "--set", "task.num_train=400"]
            first = run(args, env=env)
            self.assertEqual(first.returncode, 0, first.stderr)
            path = re.search(r"cache    written to (\S+)\n", first.stdout).group(1)
            with open(path, "r+b") as f:  # vocab_size: after magic, marker, key length and key
                f.seek(12)
                key_len = struct.unpack("<q", f.read(8))[0]
                f.seek(20 + key_len + 8)
                self.assertEqual(struct.unpack("<q", f.read(8))[0], 3)
                f.seek(20 + key_len + 8)
                f.write(struct.pack("<q", 2))
            again = run(args, env=env)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(again.stderr, f"warning: the data cache file {path} cannot be used "
                             "(its CRC-32 does not match its bytes): generating the data again\n")
            self.assertIn(f"  cache    written to {path}\n", again.stdout)
            self.assertIn("  vocabulary 3 tokens (0 = padding), 2 classes\n", again.stdout)
            self.assertEqual(checksum(again.stdout), checksum(first.stdout))


class ReportRanges(TinyReport):
    """Numbers a report of this tool cannot hold are refused when the report is read, naming the
    file and the key, by every command that reads reports."""

    def write(self, d, **changes):
        doc = json.loads(json.dumps(self.doc))
        for path, value in changes.items():
            obj = doc
            keys = path.split("__")
            for k in keys[:-1]:
                obj = obj[k]
            obj[keys[-1]] = value
        path = os.path.join(d, "r.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def test_absurd_numbers_exit_2_naming_file_and_key(self):
        cases = [
            ({"config__model__max_len": 1e300},
             "config.model.max_len: 1e+300 is out of range (an integer in [2, 1048576])"),
            ({"config__model__max_len": 40.5},
             "config.model.max_len: expected an integer in [2, 1048576], found 40.5"),
            ({"config__train__batch_size": -3},
             "config.train.batch_size: -3 is out of range (an integer in [1, 65536])"),
            ({"test__accuracy": 1e308},
             "test.accuracy: 1e+308 is out of range (a number in [0, 1], or null)"),
            ({"test__majority_baseline": 1.5},
             "test.majority_baseline: 1.5 is out of range (a number in [0, 1], or null)"),
            ({"measured__steps_per_s": 1e300},
             "measured.steps_per_s: 1e+300 is out of range (a number in [0, 1000000000])"),
            ({"measured__peak_rss": 1e300},
             "measured.peak_rss: 1e+300 is out of range (a number in [0, 9007199254740992])"),
            ({"flops__analytic_train_step": 2.5},
             "flops.analytic_train_step: expected an integer in [0, 9007199254740992], found 2.5"),
        ]
        with tempfile.TemporaryDirectory() as d:
            base = self.write(os.path.join(d))
            os.rename(base, os.path.join(d, "base.json"))
            base = os.path.join(d, "base.json")
            for changes, expected in cases:
                path = self.write(d, **changes)
                for cmd in (["table", path], ["plot", path, "-o", os.path.join(d, "f.svg")],
                            ["compare", base, path]):
                    p = run(cmd)
                    self.assertEqual((p.returncode, p.stderr),
                                     (2, f"xformer-bench {cmd[0]}: {path}: {expected}\n"))
            self.assertEqual(sorted(os.listdir(d)), ["base.json", "r.json"])


class PlotAxes(TinyReport):
    """plot ends on any range of values: one ulp, subnormal numbers, zero, huge; its figure has no
    NaN, and its exit status is the one --help gives."""

    def report(self, d, name, **measured):
        doc = json.loads(json.dumps(self.doc))
        doc["run_id"] = name
        doc["measured"].update(measured)
        path = os.path.join(d, name + ".json")
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def test_degenerate_ranges_end_with_a_well_formed_figure(self):
        import xml.etree.ElementTree as ET
        tiny, ulp = 5e-324, 1.0000000000000002
        sets = [
            [dict(steps_per_s=1.0, step_s_median=1.0), dict(steps_per_s=ulp, step_s_median=ulp)],
            [dict(steps_per_s=tiny, step_s_median=tiny), dict(steps_per_s=2 * tiny,
                                                              step_s_median=2 * tiny)],
            [dict(steps_per_s=tiny, step_s_median=None), dict(steps_per_s=1e9)],
            [dict(steps_per_s=0.0, peak_rss=0)],
            [dict(steps_per_s=3.0, peak_rss=tiny), dict(steps_per_s=3.0, peak_rss=1)],
        ]
        with tempfile.TemporaryDirectory() as d:
            for i, measured in enumerate(sets):
                rep = os.path.join(d, f"set{i}")
                os.makedirs(rep)
                for k, m in enumerate(measured):
                    self.report(rep, f"run{k}", **m)
                for kind in ("frontier", "scaling"):
                    svg = os.path.join(d, f"{kind}{i}.svg")
                    p = run_limited(["plot", rep, "--kind", kind, "-o", svg], timeout=20)
                    self.assertEqual(p.returncode, 0, (i, kind, p.stderr))
                    with open(svg) as f:
                        text = f.read()
                    self.assertLess(len(text), 50000, (i, kind))
                    self.assertNotRegex(text.lower(), r"nan|inf", (i, kind))
                    ET.fromstring(text)
            self.assertFalse([f for f in os.listdir(d) if f.endswith(".tmp")])

    def test_names_with_markup_and_control_characters_give_well_formed_svg(self):
        import xml.etree.ElementTree as ET
        with tempfile.TemporaryDirectory() as d:
            path = self.report(d, "run0", steps_per_s=2.0)
            with open(path) as f:
                doc = json.load(f)
            doc["run_id"], doc["model"]["mixer"] = "a\u0001<b>&\"c", "m\u001b[31m<i>"
            with open(path, "w") as f:
                json.dump(doc, f)
            for kind in ("frontier", "scaling"):
                svg = os.path.join(d, kind + ".svg")
                p = run(["plot", path, "--kind", kind, "-o", svg])
                self.assertEqual(p.returncode, 0, p.stderr)
                ET.parse(svg)

    def test_a_figure_that_cannot_be_written_exits_2_as_help_says(self):
        import re
        p = run(["plot", "--help"])
        self.assertIn("Exit status: 0, or 2 bad input (a report, an option) or a figure that "
                      "cannot be written.\n", p.stdout)
        with tempfile.TemporaryDirectory() as d:
            rep = self.report(d, "run0", steps_per_s=2.0)
            blocker = os.path.join(d, "file")
            open(blocker, "w").close()
            out = os.path.join(blocker, "f.svg")
            p = run(["plot", rep, "-o", out])
            self.assertEqual(p.returncode, 2, p.stderr)  # the temporary's name is the writer's
            self.assertRegex(p.stderr, "^xformer-bench plot: " + re.escape(out) + r": cannot "
                             r"write the figure \(" + re.escape(out) + r"\.\S+\): Not a directory\n$")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        BIN = sys.argv.pop(1)
    unittest.main(verbosity=2)
