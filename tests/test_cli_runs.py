#!/usr/bin/env python3
"""Run directories and signals, end to end (issue 18): processes that share an output directory
never write one run id at once; a report always names the checkpoint beside it; temporary files
are never followed through a planted symlink and never left behind; SIGINT, SIGTERM and SIGHUP stop
`run` in every phase with exit 3; an unwritable output directory stops a run before any work."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli  # noqa: E402  (the binary's path and the tiny config)
from test_cli import TINY, run  # noqa: E402

# A run long enough to be caught mid-training: 400 steps of the tiny model, evaluated every 20.
LONG = TINY.replace("steps: 12", "steps: 400").replace("eval_every: 5", "eval_every: 20")


def fnv1a64(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def start(args, env=None):
    return subprocess.Popen([test_cli.BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=None if env is None else {**os.environ, **env})


def wait_for(pred, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.02)
    return False


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def leftovers(out):
    """Names in out that are neither a report, an index nor a checkpoint."""
    return sorted(f for f in os.listdir(out)
                  if not (f.endswith(".json") or f.endswith(".safetensors")))


class RunDirectories(unittest.TestCase):
    def check_consistent(self, out, run_id):
        with open(os.path.join(out, run_id + ".json")) as f:
            doc = json.load(f)
        c = doc["checkpoint"]
        self.assertEqual(c["file"], run_id + ".safetensors")
        self.assertEqual(fnv1a64(os.path.join(out, c["file"])), c["fnv1a64"])
        self.assertEqual(c["step"], doc["training"]["best_step"])
        return doc

    def test_a_second_run_of_the_same_id_is_refused_and_the_first_stays_whole(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "tiny.yaml", LONG)
            out = os.path.join(d, "out")
            a = start(["run", cfg, "-o", out, "--quiet"])
            self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(out, "tiny.lock"))))
            b = run(["run", cfg, "-o", out, "--quiet", "--set", "train.steps=3"])
            self.assertEqual(b.returncode, 2, b.stderr)
            self.assertRegex(
                b.stderr, r"^xformer-bench: .*/out/tiny\.lock: run 'tiny' is already running in "
                r"this directory \(pid %d on .* since .* UTC\) \(valid: wait for it to finish, "
                r"another experiment\.name or output directory, or run --unique-id\)\n$" % a.pid)
            # --unique-id takes the next free id instead
            c = run(["run", cfg, "-o", out, "--quiet", "--unique-id", "--set", "train.steps=3"])
            self.assertEqual(c.returncode, 0, c.stderr)
            self.assertIn("tiny-2: ok", c.stdout)
            self.assertEqual(a.wait(timeout=300), 0, a.stderr.read())
            self.check_consistent(out, "tiny")
            self.check_consistent(out, "tiny-2")
            self.assertEqual(leftovers(out), [])

    def test_a_rerun_killed_midway_leaves_the_old_report_and_checkpoint_together(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "tiny.yaml", TINY)
            out = os.path.join(d, "out")
            p = run(["run", cfg, "-o", out, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            old = self.check_consistent(out, "tiny")
            # the same id, another architecture, killed after it has saved a checkpoint
            cfg2 = write(d, "tiny2.yaml", LONG.replace("layers: 1", "layers: 2"))
            b = start(["run", cfg2, "-o", out, "--quiet", "--set", "experiment.name=tiny"])
            partial = os.path.join(out, "tiny.safetensors.partial")
            self.assertTrue(wait_for(lambda: os.path.exists(partial)))
            b.send_signal(signal.SIGKILL)
            b.wait()
            self.assertEqual(self.check_consistent(out, "tiny")["config_hash"], old["config_hash"])
            # a rerun to the end replaces both
            p = run(["run", cfg2, "-o", out, "--quiet", "--set", "experiment.name=tiny",
                     "--set", "train.steps=40"])
            self.assertEqual(p.returncode, 0, p.stderr)
            new = self.check_consistent(out, "tiny")
            self.assertNotEqual(new["config_hash"], old["config_hash"])
            self.assertEqual(leftovers(out), [])

    def test_eval_refuses_a_checkpoint_the_report_does_not_name(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "tiny.yaml", TINY)
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            for out, seed in ((a, "1"), (b, "2")):
                p = run(["run", cfg, "-o", out, "--quiet", "--seed", seed])
                self.assertEqual(p.returncode, 0, p.stderr)
            os.replace(os.path.join(b, "tiny.safetensors"), os.path.join(a, "tiny.safetensors"))
            p = run(["eval", os.path.join(a, "tiny.json")])
            self.assertEqual(p.returncode, 2, p.stderr)
            with open(os.path.join(a, "tiny.json")) as f:
                named = json.load(f)["checkpoint"]["fnv1a64"]
            have = fnv1a64(os.path.join(a, "tiny.safetensors"))
            self.assertEqual(
                p.stderr, "xformer-bench: %s: is not the checkpoint of %s: its FNV-1a 64 is %s, "
                "the report names %s (a later run of the same id, or a damaged file)\n"
                % (os.path.join(a, "tiny.safetensors"), os.path.join(a, "tiny.json"), have, named))

    def test_sweep_members_whose_ids_collide_get_unique_ids(self):
        with tempfile.TemporaryDirectory() as d:
            # the same value twice, and ids cut at 200 characters (the learning rates' texts
            # differ only past it)
            lr = "0.001" + "0" * 150
            cfg = write(d, "s.yaml", TINY.replace("name: tiny", "name: " + "n" * 100) +
                        "sweep:\n  model.layers: [1, 1]\n  train.lr: [%s1, %s2]\n" % (lr, lr))
            out = os.path.join(d, "out")
            p = run(["run", cfg, "-o", out, "--quiet", "--set", "train.steps=2"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(out, "index.json")) as f:
                runs = json.load(f)["runs"]
            ids = [r["run_id"] for r in runs]
            self.assertEqual(len(ids), 4)
            self.assertEqual(len(set(ids)), 4, ids)
            self.assertEqual(len(set(r["report"] for r in runs)), 4)
            for r in runs:
                self.assertLessEqual(len(r["run_id"]), 200)
                with open(os.path.join(out, r["report"])) as f:
                    self.assertEqual(json.load(f)["run_id"], r["run_id"])

    def test_a_symlink_planted_at_a_temporary_name_is_not_followed(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "tiny.yaml", TINY)
            out = os.path.join(d, "out")
            os.mkdir(out)
            victim = write(d, "victim", "keep")
            for name in ("tiny.json.tmp", "tiny.safetensors.tmp", "tiny.safetensors.partial.tmp",
                         "index.json.tmp"):
                os.symlink(victim, os.path.join(out, name))
            p = run(["run", cfg, "-o", out, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(victim) as f:
                self.assertEqual(f.read(), "keep")
            self.check_consistent(out, "tiny")

    def test_an_unwritable_output_directory_stops_the_run_before_any_work(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "tiny.yaml", TINY)
            plain = write(d, "plain", "")
            out = os.path.join(plain, "out")
            for extra in ([], ["--check"]):
                t0 = time.time()
                p = run(["run", cfg, "-o", out, "--quiet"] + extra)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(
                    p.stderr, "xformer-bench: %s: cannot create the output directory: '%s' is not "
                    "a directory (valid: a directory, set by experiment.output_dir or -o)\n"
                    % (out, plain))
                self.assertLess(time.time() - t0, 2.0)
            self.assertEqual(sorted(os.listdir(d)), ["plain", "tiny.yaml"])
            if os.geteuid() != 0:  # root may write anywhere
                ro = os.path.join(d, "ro")
                os.mkdir(ro, 0o555)
                p = run(["run", cfg, "-o", ro, "--quiet"])
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("cannot create files in the output directory: Permission denied",
                              p.stderr)

    def test_bad_data_found_after_the_id_was_taken_leaves_no_directory(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "bad.yaml", TINY.replace("name: listops", "name: listops\n  source: files\n"
                                                    "  data_dir: " + os.path.join(d, "none")))
            out = os.path.join(d, "a", "b")
            p = run(["run", cfg, "-o", out, "--quiet"])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(sorted(os.listdir(d)), ["bad.yaml"])


class MemoryPlan(unittest.TestCase):
    def test_a_model_too_large_to_plan_names_its_line_and_leaves_no_directory(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "big.yaml", TINY.replace("layers: 1", "layers: 8").replace(
                "d_model: 16", "d_model: 4096").replace("d_ff: 32", "d_ff: 16384").replace(
                "max_len: 40", "max_len: 65536").replace("batch_size: 16", "batch_size: 512"))
            # AddressSanitizer aborts on an allocation this size unless told to return NULL
            p = run(["run", cfg, "-o", os.path.join(d, "out", "x"), "--quiet"],
                    env={"XB_CACHE_DIR": "", "ASAN_OPTIONS": "allocator_may_return_null=1"})
            self.assertEqual(p.returncode, 2, p.stderr)
            err = "".join(x for x in p.stderr.splitlines(True) if not x.startswith("=="))
            self.assertRegex(err, r"^xformer-bench: %s:12:1: model: cannot allocate [0-9.]+ "
                             r"MiB of activations and [0-9.]+ MiB of scratch \(reduce "
                             r"train.batch_size, model.max_len or model.d_model\)\n$" % cfg)
            self.assertEqual(sorted(os.listdir(d)), ["big.yaml"])


class Signals(unittest.TestCase):
    def test_a_signal_during_data_generation_exits_3_within_a_second_leaving_nothing(self):
        big = TINY.replace("num_train: 300", "num_train: 3000000").replace("max_length: 40",
                                                                        "max_length: 300")
        big = big.replace("max_len: 40", "max_len: 301")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with tempfile.TemporaryDirectory() as d:
                cfg = write(d, "big.yaml", big)
                out, cache = os.path.join(d, "out"), os.path.join(d, "cache")
                p = start(["run", cfg, "-o", out], env={"XB_CACHE_DIR": cache})
                time.sleep(1.0)  # generating 3M trees takes far longer
                self.assertIsNone(p.poll(), "the generation ended before the signal")
                t0 = time.time()
                p.send_signal(sig)
                p.wait(timeout=30)
                took = time.time() - t0
                err = p.stderr.read()
                self.assertEqual(p.returncode, 3, err)
                self.assertLess(took, 1.0, "exit took %.2f s" % took)
                self.assertIn("xformer-bench: interrupted by %s before a run had started; "
                              "nothing was written\n" % signal.Signals(sig).name, err)
                self.assertEqual(os.listdir(out) if os.path.exists(out) else [], [])
                self.assertEqual(os.listdir(cache) if os.path.exists(cache) else [], [])

    def test_a_signal_during_training_ends_the_run_with_an_interrupted_report(self):
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            with tempfile.TemporaryDirectory() as d:
                cfg = write(d, "tiny.yaml", LONG)
                out = os.path.join(d, "out")
                p = start(["run", cfg, "-o", out, "--quiet"])
                partial = os.path.join(out, "tiny.safetensors.partial")
                self.assertTrue(wait_for(lambda: os.path.exists(partial)))  # trained a while
                p.send_signal(sig)
                p.wait(timeout=60)
                err = p.stderr.read()
                self.assertEqual(p.returncode, 3, err)
                with open(os.path.join(out, "tiny.json")) as f:
                    doc = json.load(f)
                self.assertEqual(doc["status"], "interrupted")
                self.assertRegex(doc["status_message"],
                                 r"^interrupted by %s after \d+ of 400 steps$"
                                 % signal.Signals(sig).name)
                self.assertIsNone(doc["test"]["accuracy"])
                c = doc["checkpoint"]
                self.assertEqual(fnv1a64(os.path.join(out, c["file"])), c["fnv1a64"])
                self.assertEqual(leftovers(out), ["tiny.state"])  # for run --resume


if __name__ == "__main__":
    if len(sys.argv) > 1:
        test_cli.BIN = sys.argv.pop(1)
    unittest.main(verbosity=2)
