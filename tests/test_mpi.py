#!/usr/bin/env python3
"""Across processes (issue 19), end to end: data-parallel training under mpirun follows the
one-process trajectory; sweeps spread over ranks (or --shard) write the reports and the index of
the plain sweep; a run stopped by SIGKILL or SIGTERM and started again with --resume ends with the
report of the run that was never stopped. Skipped (exit 77) when the build has no MPI."""
import glob
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli  # noqa: E402
from test_cli import run  # noqa: E402

MPIRUN = shutil.which("mpirun")
NP2 = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", "2"] if MPIRUN else []

TINY = """\
experiment: {name: tiny, seed: 3, threads: 1}
task: {name: listops, num_train: 300, num_val: 64, num_test: 64, min_length: 5, max_length: 40}
model: {layers: 1, d_model: 16, heads: 2, d_ff: 32, max_len: 40, dropout: 0.1}
train: {batch_size: 16, steps: 20, eval_every: 1, warmup: 2}
"""


def mpi(args, np2=True):
    env = {**os.environ, "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    return subprocess.run((NP2 if np2 else []) + [test_cli.BIN] + args, capture_output=True,
                          text=True, env=env)


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def comparable(path):
    """A report without what may differ between identical runs: measured, the output directory,
    the threads and the processes (the reports of one run in one or two processes differ there)."""
    with open(path) as f:
        d = json.load(f)
    d.pop("measured")
    d["config"]["experiment"].pop("output_dir")
    d["environment"].pop("processes", None)
    return d


def tensors(path):
    """The float32 tensors of a safetensors file, by name, as tuples."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
    return out


@unittest.skipUnless(os.environ.get("XB_MPI") == "1" and MPIRUN,
                     "the build has no MPI (meson -Dmpi=enabled, libopenmpi-dev)")
class DataParallel(unittest.TestCase):
    def test_two_ranks_follow_the_trajectory_of_one(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "t.yaml", TINY)
            p = run(["run", cfg, "-o", os.path.join(d, "one"), "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            p = mpi(["run", cfg, "-o", os.path.join(d, "two"), "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "one", "tiny.json")) as f:
                one = json.load(f)
            with open(os.path.join(d, "two", "tiny.json")) as f:
                two = json.load(f)
            self.assertEqual(two["environment"]["processes"], 2)
            self.assertEqual(len(one["evals"]), 20)
            for a, b in zip(one["evals"], two["evals"]):  # the loss of every step
                self.assertLessEqual(abs(a["train_loss"] - b["train_loss"]),
                                     1e-4 * abs(a["train_loss"]), a["step"])
                self.assertLessEqual(abs(a["val_loss"] - b["val_loss"]), 1e-4 * abs(a["val_loss"]))
            self.assertEqual(one["training"]["best_step"], two["training"]["best_step"])
            # the parameters after those steps (the best step's checkpoint)
            ta = tensors(os.path.join(d, "one", "tiny.safetensors"))
            tb = tensors(os.path.join(d, "two", "tiny.safetensors"))
            self.assertEqual(sorted(ta), sorted(tb))
            for name in ta:
                for x, y in zip(ta[name], tb[name]):
                    self.assertLessEqual(abs(x - y), 1e-4 * max(1.0, abs(x)), name)
            self.assertEqual(one["flops"], two["flops"])
            self.assertGreater(two["measured"]["comm_s"], 0)

    def test_two_runs_on_two_ranks_give_the_same_report(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "t.yaml", TINY)
            for out in ("a", "b"):
                p = mpi(["run", cfg, "-o", os.path.join(d, out), "--quiet"])
                self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(comparable(os.path.join(d, "a", "tiny.json")),
                             comparable(os.path.join(d, "b", "tiny.json")))

    def test_a_sweep_over_two_ranks_or_two_shards_writes_the_plain_sweeps_reports(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "s.yaml", TINY.replace("eval_every: 1", "eval_every: 5") +
                        "sweep:\n  model.d_model: [8, 16]\n  train.lr: [0.001, 0.002, 0.004]\n")
            plain, ranks, shards = (os.path.join(d, x) for x in ("plain", "ranks", "shards"))
            p = run(["run", cfg, "-o", plain, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            p = mpi(["run", cfg, "-o", ranks, "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            procs = [subprocess.Popen([test_cli.BIN, "run", cfg, "-o", shards, "--quiet",
                                       "--shard", "%d/2" % i], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for i in (0, 1)]
            for q in procs:
                _, err = q.communicate()
                self.assertEqual(q.returncode, 0, err)
            with open(os.path.join(plain, "index.json")) as f:
                index = json.load(f)
            self.assertEqual(len(index["runs"]), 6)
            for out in (ranks, shards):
                with open(os.path.join(out, "index.json")) as f:
                    self.assertEqual(json.load(f)["runs"], index["runs"])
                for r in index["runs"]:
                    self.assertEqual(r["outcome"], "ok")
                    self.assertEqual(comparable(os.path.join(plain, r["report"])),
                                     comparable(os.path.join(out, r["report"])), r["run_id"])


@unittest.skipUnless(os.environ.get("XB_MPI") == "0", "the build has MPI")
class NoMpi(unittest.TestCase):
    def test_a_build_without_mpi_refuses_to_run_as_one_of_several_processes(self):
        """mpirun -np 2 of a build without MPI would start two runs that each train alone."""
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "t.yaml", TINY)
            for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
                p = run(["run", cfg, "-o", os.path.join(d, "out")], env={var: "2"})
                self.assertEqual(p.returncode, 2)
                self.assertEqual(p.stderr, "xformer-bench: this build has no MPI, but it was "
                                 "started as one of 2 processes (mpirun or srun), each of which "
                                 "would run alone (valid: one process, or a build with MPI: "
                                 "apt-get install libopenmpi-dev, then meson configure build "
                                 "-Dmpi=enabled)\n")
                self.assertEqual(os.listdir(d), ["t.yaml"])
            p = run(["run", cfg, "-o", os.path.join(d, "out"), "--quiet"],
                    env={"OMPI_COMM_WORLD_SIZE": "1"})  # mpirun -np 1: one run, as without it
            self.assertEqual(p.returncode, 0, p.stderr)


@unittest.skipUnless(os.environ.get("XB_MPI") == "1" and MPIRUN,
                     "the build has no MPI (meson -Dmpi=enabled, libopenmpi-dev)")
class Resume(unittest.TestCase):
    # long enough (about 2 s) that the signal, sent at most 0.3 s after the first state, lands
    # inside training rather than after the report is written
    LONG = TINY.replace("steps: 20, eval_every: 1", "steps: 3000, eval_every: 200, "
                        "checkpoint_every: 250")

    # evaluations that take most of the time (about 1 s each, 100 training steps 0.1 s): a signal
    # 0.3 s after the state of step 100 stops the evaluation after step 200
    EVAL = TINY.replace("num_val: 64", "num_val: 60000").replace(
        "steps: 20, eval_every: 1", "steps: 400, eval_every: 200, checkpoint_every: 100")

    def interrupted_then_resumed(self, d, np2, how, text=None, delay=None):
        cfg = write(d, "l.yaml", text or self.LONG)
        out = os.path.join(d, "out")
        cmd = (NP2 if np2 else []) + [test_cli.BIN, "run", cfg, "-o", out, "--quiet"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        state = os.path.join(out, "tiny.state")
        t0 = time.time()
        while not os.path.exists(state) and time.time() - t0 < 60 and p.poll() is None:
            time.sleep(0.01)
        time.sleep(random.uniform(0.0, 0.3) if delay is None else delay)
        if how == signal.SIGKILL and np2:  # a node lost: every rank killed, then mpirun ends
            for pid in subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                                      text=True).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
        else:
            p.send_signal(how)
        p.communicate(timeout=120)
        self.assertNotEqual(p.returncode, 0)
        if how == signal.SIGTERM:
            with open(os.path.join(out, "tiny.json")) as f:
                self.assertEqual(json.load(f)["status"], "interrupted")
        q = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
        self.assertEqual(q.returncode, 0, q.stderr)
        self.assertFalse(os.path.exists(state))  # a finished run keeps no state
        return os.path.join(out, "tiny.json")

    def check(self, np2, how, text=None, delay=None):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "l.yaml", text or self.LONG)
            cmd = (NP2 if np2 else []) + [test_cli.BIN, "run", cfg, "-o", os.path.join(d, "full"),
                                          "--quiet"]
            p = subprocess.run(cmd, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            want = comparable(os.path.join(d, "full", "tiny.json"))
            with tempfile.TemporaryDirectory() as e:
                got = comparable(self.interrupted_then_resumed(e, np2, how, text, delay))
            self.assertEqual(got, want)

    def test_sigkill_then_resume_ends_with_the_uninterrupted_report(self):
        self.check(False, signal.SIGKILL)

    def test_sigterm_then_resume_ends_with_the_uninterrupted_report(self):
        self.check(False, signal.SIGTERM)

    def test_two_ranks_sigkill_then_resume(self):
        self.check(True, signal.SIGKILL)

    def test_two_ranks_sigterm_then_resume(self):
        self.check(True, signal.SIGTERM)

    def test_a_signal_during_an_evaluation_leaves_it_due_and_resume_does_it(self):
        for np2 in (False, True):
            self.check(np2, signal.SIGTERM, self.EVAL, 0.3)


@unittest.skipUnless(os.environ.get("XB_MPI") == "1" and MPIRUN,
                     "the build has no MPI (meson -Dmpi=enabled, libopenmpi-dev)")
class BadInput(unittest.TestCase):
    def test_each_is_one_line_exit_2_and_writes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "t.yaml", TINY.replace("steps: 20", "steps: 60").replace(
                "eval_every: 1", "eval_every: 20, checkpoint_every: 10"))
            out = os.path.join(d, "out")
            p = subprocess.Popen([test_cli.BIN, "run", cfg, "-o", out, "--quiet"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            state = os.path.join(out, "tiny.state")
            while not os.path.exists(state) and p.poll() is None:
                time.sleep(0.01)
            p.send_signal(signal.SIGTERM)
            p.communicate()
            listing = sorted(os.listdir(out))
            # a state of another config: the hashes named
            with open(cfg) as f:
                other = write(d, "o.yaml", f.read().replace("d_model: 16", "d_model: 8"))
            q = run(["run", other, "-o", out, "--quiet", "--resume"])
            self.assertEqual(q.returncode, 2, q.stderr)
            self.assertRegex(q.stderr, r"^xformer-bench: %s: was saved by a run of another config "
                             r"\(config hash [0-9a-f]{16}; this run's is [0-9a-f]{16}\) \(valid: "
                             r"the state of this config's run; remove it to start over\)\n$"
                             % state)
            self.assertEqual(sorted(os.listdir(out)), listing)
            # truncated, then damaged
            with open(state, "rb") as f:
                blob = f.read()
            for bad, why in ((blob[:len(blob) // 2], "it is truncated, or its size does not "
                              "match this run's model and data"),
                             (blob[:-9] + bytes([blob[-9] ^ 1]) + blob[-8:],
                              "its checksum does not match its contents")):
                with open(state, "wb") as f:
                    f.write(bad)
                q = run(["run", cfg, "-o", out, "--quiet", "--resume"])
                self.assertEqual(q.returncode, 2, q.stderr)
                self.assertEqual(q.stderr, "xformer-bench: %s: not a resumable state of "
                                 "xformer-bench, or a damaged one: %s (valid: a state written by "
                                 "run with train.checkpoint_every; remove it to start over)\n"
                                 % (state, why))
            # a world size that does not divide the batch
            q = subprocess.run([MPIRUN, "--oversubscribe", "--allow-run-as-root", "-np", "3",
                                test_cli.BIN, "run", cfg, "-o", os.path.join(d, "w"), "--quiet"],
                               capture_output=True, text=True)
            self.assertNotEqual(q.returncode, 0)
            self.assertIn("xformer-bench: %s: train.batch_size: 16 examples do not split evenly "
                          "over the 3 processes of mpirun (valid: a multiple of 3)\n" % cfg,
                          q.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "w")))
            # --shard out of range, and under mpirun
            for arg in ("2/2", "x"):
                msg = ('--shard: expected I/N with 0 <= I < N (shard I of N, from 0), got "%s"'
                       % arg)
                q = run(["run", cfg, "--shard", arg])
                self.assertEqual((q.returncode, q.stderr), (2, "xformer-bench run: %s\n" % msg))
            q = mpi(["run", cfg, "--shard", "0/2", "-o", os.path.join(d, "s")])
            self.assertNotEqual(q.returncode, 0)
            self.assertIn("--shard splits a sweep between separate processes", q.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        test_cli.BIN = sys.argv.pop(1)
    unittest.main(verbosity=2)
