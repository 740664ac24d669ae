#!/usr/bin/env python3
"""On a cluster (issue 19), end to end: the Slurm recipes run valid commands (their dry runs are
`run ... --check`-valid, the job array's shards split Table 1 exactly), and under a fake `srun` and
`scontrol` a job stopped by SIGTERM requeues itself and its requeued run ends with the report of a
run never stopped; table1.sh --shard; bench --allreduce's timings and fit; scaling-model.py's
projection. The parts that need mpirun are skipped when the build has no MPI."""
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli  # noqa: E402
from test_cli import run  # noqa: E402
from test_mpi import MPIRUN, NP2, comparable, mpi, write  # noqa: E402

ROOT = os.path.abspath(os.environ.get("XB_SOURCE_ROOT",
                                      os.path.join(os.path.dirname(__file__), "..")))
HAVE_MPI = os.environ.get("XB_MPI") == "1" and MPIRUN is not None
NO_MPI = "the build has no MPI (meson -Dmpi=enabled, libopenmpi-dev)"

TINY = """\
experiment: {name: tiny, seed: 3, threads: 1}
task: {name: listops, num_train: 300, num_val: 64, num_test: 64, min_length: 5, max_length: 40}
model: {layers: 1, d_model: 16, heads: 2, d_ff: 32, max_len: 40, dropout: 0.1}
train: {batch_size: 16, steps: 300, eval_every: 50, warmup: 2}
"""

# TINY in block style, as the configs that scaling-model.py reads are written
TINY_BLOCK = """\
experiment:
  name: tiny
  seed: 3
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
  steps: 20
"""

# Stands in for Slurm's srun: drops srun's own options and runs the command (under mpirun with
# FAKE_NP processes when it is more than 1), as the one task of the step.
FAKE_SRUN = """#!/usr/bin/env bash
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
if [ "${FAKE_NP:-1}" -gt 1 ]; then
    exec mpirun --oversubscribe --allow-run-as-root -np "$FAKE_NP" "$@"
fi
exec "$@"
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo "$*" >>"$FAKE_SCONTROL_LOG"
"""


def slurm_env(d, **extra):
    """A batch job's environment, with the fake srun and scontrol first on PATH."""
    fake = os.path.join(d, "fakebin")
    if not os.path.isdir(fake):
        os.makedirs(fake)
        for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
            path = write(fake, name, text)
            os.chmod(path, 0o755)
    env = {**os.environ, "PATH": fake + os.pathsep + os.environ["PATH"],
           "XB_BIN": os.path.abspath(test_cli.BIN), "SLURM_SUBMIT_DIR": ROOT,
           "SLURM_JOB_ID": "77", "SLURM_JOB_NAME": "xformer-bench", "SLURM_CPUS_PER_TASK": "1",
           "FAKE_SCONTROL_LOG": os.path.join(d, "scontrol.log"),
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    env.update(extra)
    return env


def descendants(pid):
    out = []
    for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                            text=True).stdout.split():
        out += [int(c)] + descendants(int(c))
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid) as f:
            return f.read().split("\0")
    except FileNotFoundError:
        return [""]


def ranks(pid):
    """The xformer-bench processes under pid (the tasks of a step, under the fake srun)."""
    return [c for c in descendants(pid) if cmdline(c)[0].endswith("xformer-bench")]


def wait_for(path, p, timeout=120):
    t0 = time.time()
    while not os.path.exists(path) and p.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.01)
    return os.path.exists(path)


def xb_argv(line):
    """The xformer-bench command in a dry run's srun line: from the binary on."""
    argv = shlex.split(line)
    assert argv[0] == "srun", line
    k = next(i for i, a in enumerate(argv) if a.endswith("xformer-bench"))
    return argv[k:]


class Recipes(unittest.TestCase):
    def test_scripts_are_valid_bash(self):
        for s in ("scripts/slurm/train.sbatch", "scripts/slurm/table1-array.sbatch",
                  "scripts/table1.sh"):
            p = subprocess.run(["bash", "-n", os.path.join(ROOT, s)], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, s + ": " + p.stderr)

    def test_train_dry_run_is_a_valid_resumable_run(self):
        with tempfile.TemporaryDirectory() as d:
            env = slurm_env(d, XB_DRY_RUN="1", SLURM_CPUS_PER_TASK="4",
                            XB_OUT=os.path.join(d, "out"))
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch"),
                                "configs/quickstart.yaml", "--set", "model.layers=1"],
                               capture_output=True, text=True, env=env, cwd=d)
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            self.assertEqual(len(lines), 1, p.stdout)
            self.assertIn("--cpus-per-task=4", shlex.split(lines[0]))
            argv = xb_argv(lines[0])
            self.assertEqual(argv[1:3], ["run", "configs/quickstart.yaml"])
            for want in (["--threads", "4"], ["-o", os.path.join(d, "out")],
                         ["--set", "train.checkpoint_every=500"], ["--set", "model.layers=1"]):
                self.assertTrue(any(argv[i:i + 2] == want for i in range(len(argv))), want)
            self.assertIn("--resume", argv)
            q = subprocess.run(argv + ["--check"], capture_output=True, text=True, cwd=ROOT,
                               env={**os.environ, "PATH": env["PATH"]})
            self.assertEqual((q.returncode, q.stdout),
                             (0, "configs/quickstart.yaml: valid, 1 run\n"), q.stderr)

    def test_array_shards_split_table1_into_valid_runs(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "t1")
            opts = ["-o", out, "--tasks", "listops,image", "--mixers",
                    "full,linear,local,sliding,performer"]
            whole = subprocess.run(["bash", os.path.join(ROOT, "scripts/table1.sh")] + opts +
                                   ["--dry-run"], capture_output=True, text=True,
                                   env=slurm_env(d))
            self.assertEqual(whole.returncode, 0, whole.stderr)
            everything = whole.stdout.splitlines()[1:]
            self.assertEqual(len(everything), 10)
            got = []
            for i in range(3):
                env = slurm_env(d, XB_DRY_RUN="1", SLURM_ARRAY_TASK_ID=str(i + 4),
                                SLURM_ARRAY_TASK_MIN="4", SLURM_ARRAY_TASK_MAX="6",
                                SLURM_ARRAY_TASK_COUNT="3", SLURM_CPUS_PER_TASK="2")
                p = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/table1-array.sbatch")]
                                   + opts, capture_output=True, text=True, env=env)
                self.assertEqual(p.returncode, 0, p.stderr)
                lines = p.stdout.splitlines()
                argv = shlex.split(lines[0])
                self.assertEqual(argv[:4], ["srun", "--ntasks=1", "--cpus-per-task=2",
                                            "scripts/table1.sh"])
                self.assertEqual(argv[4:12], ["-j", "2", "--threads", "1", "--shard", "%d/3" % i,
                                              "--checkpoint-every", "200"])
                self.assertEqual(lines[1], "table1.sh: %d runs to do in %s, shard %d of 3 (2 at "
                                 "a time, 1 thread(s) each)" % (len(lines) - 2, out, i))
                self.assertIn(len(lines) - 2, (3, 4))  # 10 points over 3 shards
                # each shard gets listops and image points, and a mechanism goes to two shards
                self.assertEqual({x.split()[0] for x in lines[2:]}, {"listops", "image"})
                got += [x.replace(" --set train.checkpoint_every=200", "") for x in lines[2:]]
            self.assertEqual(sorted(got), sorted(everything))  # every point once
            for line in everything:
                t, m, *sets = line.split()
                q = run(["run", os.path.join(ROOT, "configs/lra-small/%s.yaml" % t)] + sets +
                        ["--check"], cwd=ROOT)
                self.assertEqual(q.returncode, 0, line + ": " + q.stderr)
                self.assertIn("experiment.name=lra-small-%s-%s" % (t, m), sets)

    def test_bad_arrays_and_shards_are_one_line_exit_2(self):
        with tempfile.TemporaryDirectory() as d:
            env = slurm_env(d, SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_TASK_MIN="0",
                            SLURM_ARRAY_TASK_MAX="14", SLURM_ARRAY_TASK_COUNT="8")
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/table1-array.sbatch")],
                               capture_output=True, text=True, env=env)
            self.assertEqual((p.returncode, p.stderr), (2, (
                "table1-array.sbatch: the array 0-14 has 8 tasks; it must be one contiguous "
                "range (e.g. --array=0-7)\n")))
            for arg in ("3/3", "1", "a/b"):
                p = subprocess.run(["bash", os.path.join(ROOT, "scripts/table1.sh"), "--shard",
                                    arg], capture_output=True, text=True)
                self.assertEqual((p.returncode, p.stderr), (2, (
                    "table1.sh: --shard: expected I/N with 0 <= I < N, got '%s'\n" % arg)))
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch")],
                               capture_output=True, text=True, env=slurm_env(d))
            self.assertEqual((p.returncode, p.stderr), (2, (
                "train.sbatch: usage: sbatch scripts/slurm/train.sbatch CONFIG [run options]\n")))


class Requeue(unittest.TestCase):
    """A job that Slurm signals before its time limit requeues itself; the requeued job resumes
    and ends with the report of a run that was never stopped."""

    def check_train(self, np):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "l.yaml", TINY)
            full = os.path.join(d, "full")
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch"), cfg],
                               capture_output=True, text=True,
                               env=slurm_env(d, XB_OUT=full, FAKE_NP=str(np),
                                             XB_CHECKPOINT_EVERY="25"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "scontrol.log")))
            want = comparable(os.path.join(full, "tiny.json"))
            out = os.path.join(d, "out")
            env = slurm_env(d, XB_OUT=out, FAKE_NP=str(np), XB_CHECKPOINT_EVERY="25")
            job = subprocess.Popen(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch"),
                                    cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env)
            self.assertTrue(wait_for(os.path.join(out, "tiny.state"), job))
            for pid in ranks(job.pid):  # Slurm's --signal: every task of the step
                os.kill(pid, signal.SIGTERM)
            _, err = job.communicate(timeout=120)
            self.assertEqual(job.returncode, 3, err)
            self.assertIn("train.sbatch: stopped with a resumable state in %s; requeueing job 77"
                          % out, err)
            with open(os.path.join(d, "scontrol.log")) as f:
                self.assertEqual(f.read(), "requeue 77\n")
            with open(os.path.join(out, "tiny.json")) as f:
                self.assertEqual(json.load(f)["status"], "interrupted")
            # the requeued job
            again = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch"),
                                    cfg], capture_output=True, text=True,
                                   env={**env, "SLURM_RESTART_COUNT": "1"})
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "tiny.state")))
            self.assertEqual(comparable(os.path.join(out, "tiny.json")), want)

    def test_train_job_requeues_after_sigterm_and_resumes(self):
        self.check_train(1)

    @unittest.skipUnless(HAVE_MPI, NO_MPI)
    def test_two_rank_train_job_requeues_after_sigterm_and_resumes(self):
        self.check_train(2)

    def test_no_requeue_past_the_limit_or_after_bad_input(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "l.yaml", TINY)
            out = os.path.join(d, "out")
            env = slurm_env(d, XB_OUT=out, XB_MAX_REQUEUES="2", SLURM_RESTART_COUNT="2",
                            XB_CHECKPOINT_EVERY="25")
            job = subprocess.Popen(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch"),
                                    cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env)
            self.assertTrue(wait_for(os.path.join(out, "tiny.state"), job))
            for pid in ranks(job.pid):
                os.kill(pid, signal.SIGTERM)
            _, err = job.communicate(timeout=120)
            self.assertEqual(job.returncode, 3, err)
            self.assertIn("train.sbatch: stopped with a resumable state in %s, but requeued 2 "
                          "times already (XB_MAX_REQUEUES); resubmit to go on\n" % out, err)
            self.assertFalse(os.path.exists(os.path.join(d, "scontrol.log")))
            # a state of another config: bad input, which no requeue would mend
            other = write(d, "o.yaml", TINY.replace("d_model: 16", "d_model: 8"))
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts/slurm/train.sbatch"), other],
                               capture_output=True, text=True, env=slurm_env(d, XB_OUT=out))
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("was saved by a run of another config", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "scontrol.log")))

    def test_a_signal_during_an_evaluation_then_resume_ends_with_the_uninterrupted_report(self):
        """Slurm's signal can come while the validation split is evaluated: the run stops without
        that evaluation, and the resumed run must do it before its next step."""
        long_eval = TINY.replace("num_val: 64", "num_val: 60000").replace(
            "steps: 300, eval_every: 50", "steps: 200, eval_every: 100, checkpoint_every: 50")
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "e.yaml", long_eval)
            p = run(["run", cfg, "-o", os.path.join(d, "full"), "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            want = comparable(os.path.join(d, "full", "tiny.json"))
            out = os.path.join(d, "out")
            job = subprocess.Popen([test_cli.BIN, "run", cfg, "-o", out], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            for line in job.stderr:  # progress lines every 10 steps; then 10 steps, then the
                if "step 90/200" in line:  # evaluation of step 100 (1-4 s of this split)
                    break
            time.sleep(0.4)
            job.send_signal(signal.SIGTERM)
            job.communicate(timeout=120)
            self.assertEqual(job.returncode, 3)
            with open(os.path.join(out, "tiny.json")) as f:
                cut = json.load(f)
            self.assertEqual((cut["status"], cut["training"]["steps"], cut["evals"]),
                             ("interrupted", 100, []))  # inside the evaluation of step 100
            q = run(["run", cfg, "-o", out, "--quiet", "--resume"])
            self.assertEqual(q.returncode, 0, q.stderr)
            got = comparable(os.path.join(out, "tiny.json"))
            self.assertEqual([e["step"] for e in got["evals"]], [100, 200])
            self.assertEqual(got, want)

    def test_table1_array_task_requeues_after_sigterm_and_resumes(self):
        """The signal reaches table1.sh alone (as `kill` or --signal=B: would send it): it passes
        it on to its runs, waits for their reports and ends by it; the requeued task resumes."""
        with tempfile.TemporaryDirectory() as d:
            repo = os.path.join(d, "repo")  # table1.sh and its scripts, with a tiny ListOps
            os.makedirs(os.path.join(repo, "scripts", "slurm"))
            os.makedirs(os.path.join(repo, "configs", "lra-small"))
            for s in ("scripts/table1.sh", "scripts/slurm/table1-array.sbatch"):
                shutil.copy(os.path.join(ROOT, s), os.path.join(repo, s))
            write(os.path.join(repo, "configs", "lra-small"), "listops.yaml",
                  TINY.replace("steps: 300", "steps: 400"))
            opts = ["--tasks", "listops", "--mixers", "full,linear"]
            p = subprocess.run(["bash", os.path.join(repo, "scripts/table1.sh"), "-o", "plain",
                                "--checkpoint-every", "25"] + opts,
                               capture_output=True, text=True, env=slurm_env(d))
            self.assertEqual(p.returncode, 0, p.stderr)
            env = slurm_env(d, SLURM_SUBMIT_DIR=repo, SLURM_ARRAY_TASK_ID="0",
                            SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_MAX="0",
                            SLURM_ARRAY_TASK_COUNT="1", SLURM_CPUS_PER_TASK="2",
                            XB_CHECKPOINT_EVERY="25")
            array = os.path.join(repo, "scripts/slurm/table1-array.sbatch")
            job = subprocess.Popen(["bash", array, "-o", "arr"] + opts, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
            arr = os.path.join(repo, "arr", "listops")
            for m in ("full", "linear"):
                self.assertTrue(wait_for(os.path.join(arr, "lra-small-listops-%s.state" % m),
                                         job))
            table1 = [pid for pid in descendants(job.pid)
                      if any(a.endswith("table1.sh") for a in cmdline(pid))]
            self.assertEqual(len(table1), 1)
            os.kill(table1[0], signal.SIGTERM)
            _, err = job.communicate(timeout=120)
            self.assertEqual(job.returncode, 128 + signal.SIGTERM, err)
            for m in ("full", "linear"):
                self.assertIn("table1.sh: listops %s interrupted after" % m, err)
                with open(os.path.join(arr, "lra-small-listops-%s.json" % m)) as f:
                    self.assertEqual(json.load(f)["status"], "interrupted")
            self.assertIn("table1-array.sbatch: stopped by a signal; requeueing 77\n", err)
            with open(os.path.join(d, "scontrol.log")) as f:
                self.assertEqual(f.read(), "requeue 77\n")
            again = subprocess.run(["bash", array, "-o", "arr"] + opts, capture_output=True,
                                   text=True, env={**env, "SLURM_RESTART_COUNT": "1"})
            self.assertEqual(again.returncode, 0, again.stderr)
            for m in ("full", "linear"):
                self.assertIn("table1.sh: listops %s done in" % m, again.stdout)
                name = "lra-small-listops-%s" % m
                self.assertFalse(os.path.exists(os.path.join(arr, name + ".state")))
                self.assertEqual(comparable(os.path.join(arr, name + ".json")),
                                 comparable(os.path.join(repo, "plain", "listops",
                                                         name + ".json")))
            with open(os.path.join(d, "scontrol.log")) as f:
                self.assertEqual(f.read(), "requeue 77\n")  # no second requeue


def ring_fit(points, key, P):
    """bench --allreduce's fit, written again: weighted least squares (1/T^2) with c, b >= 0."""
    x = [2.0 * (P - 1) / P * q["bytes"] for q in points]
    t = [q[key] for q in points]
    w = [1 / v ** 2 for v in t]
    s0, s1 = sum(w), sum(a * b for a, b in zip(w, x))
    s2 = sum(a * b * b for a, b in zip(w, x))
    sy, sxy = sum(a * b for a, b in zip(w, t)), sum(a * b * c for a, b, c in zip(w, x, t))
    det = s0 * s2 - s1 * s1
    c, b = (s2 * sy - s1 * sxy) / det, (s0 * sxy - s1 * sy) / det
    if c < 0:
        c, b = 0.0, sxy / s2
    if b < 0:
        b, c = 0.0, sy / s0
    return c / (2 * (P - 1)), b


class Allreduce(unittest.TestCase):
    @unittest.skipUnless(HAVE_MPI, NO_MPI)
    def test_timings_fit_and_json(self):
        with tempfile.TemporaryDirectory() as d:
            p = mpi(["bench", "--allreduce", "--sizes", "4K,64K,1M", "--repeats", "5", "-o", d,
                     "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.count("| 4096 |"), 1, p.stdout)  # rank 0 alone prints
            with open(os.path.join(d, "allreduce.json")) as f:
                doc = json.load(f)
            self.assertEqual((doc["kind"], doc["processes"], doc["repeats"]), ("allreduce", 2, 5))
            self.assertEqual([q["bytes"] for q in doc["points"]], [4096, 65536, 1048576])
            for q in doc["points"]:
                self.assertTrue(0 < q["min_s"] <= q["median_s"] <= q["max_s"] < 10, q)
                self.assertAlmostEqual(q["algbw_bytes_per_s"], q["bytes"] / q["median_s"],
                                       delta=1e-9 * q["algbw_bytes_per_s"])
            for key, fit in (("median_s", doc["fit"]), ("min_s", doc["fit_min"])):
                self.assertEqual(fit["of"], key)
                alpha, beta = ring_fit(doc["points"], key, 2)
                self.assertGreaterEqual(fit["alpha_s"], 0)
                self.assertGreaterEqual(fit["beta_s_per_byte"], 0)
                self.assertAlmostEqual(fit["alpha_s"], alpha, delta=1e-9 * max(alpha, 1e-12))
                self.assertAlmostEqual(fit["beta_s_per_byte"], beta,
                                       delta=1e-9 * max(beta, 1e-18))
            for q in doc["points"]:  # T(n) = 2 alpha + n beta at P = 2
                model = 2 * doc["fit"]["alpha_s"] + q["bytes"] * doc["fit"]["beta_s_per_byte"]
                self.assertAlmostEqual(q["model_s"], model, delta=1e-9 * model)

    def test_bad_input_is_one_line_exit_2(self):
        cases = [
            (["--allreduce", "--sizes", "6"], '--sizes: expected buffer sizes separated by commas, '
             'at most 64 (bytes, a multiple of 4 from 4 to 2G; K, M, G for KiB, MiB, GiB), got "6"'),
            (["--allreduce", "--sizes", "4K,3G"], '--sizes: expected buffer sizes separated by '
             'commas, at most 64 (bytes, a multiple of 4 from 4 to 2G; K, M, G for KiB, MiB, GiB), '
             'got "3G"'),
            (["--allreduce", "--repeats", "0"], '--repeats: expected an integer in [1, 100000], '
             'got "0"'),
            (["--allreduce", "--lengths", "64"], "--lengths does not apply to --allreduce (see "
             "--help)"),
            (["--allreduce", "x.yaml"], '--allreduce takes no CONFIG (got "x.yaml"; see --help)'),
            (["x.yaml", "--sizes", "4K"], "--sizes applies only to --allreduce (see --help)"),
        ]
        if HAVE_MPI:
            cases.append((["--allreduce"], "--allreduce times a collective between processes: "
                          "start it under mpirun or srun with 2 or more (e.g. mpirun -np 2 "
                          "xformer-bench bench --allreduce)"))
        else:
            cases.append((["--allreduce"], "--allreduce needs a build with MPI (libopenmpi-dev; "
                          "meson setup -Dmpi=enabled)"))
        with tempfile.TemporaryDirectory() as d:
            for args, msg in cases:
                p = run(["bench"] + args + ["-o", os.path.join(d, "o")], cwd=d)
                self.assertEqual((p.returncode, p.stderr), (2, "xformer-bench bench: %s\n" % msg),
                                 args)
            self.assertEqual(os.listdir(d), [])

    @unittest.skipUnless(HAVE_MPI, NO_MPI)
    def test_bench_config_under_mpirun_is_one_line_exit_2(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write(d, "t.yaml", TINY)
            p = mpi(["bench", cfg, "--lengths", "32", "-o", os.path.join(d, "o")])
            self.assertNotEqual(p.returncode, 0)
            line = ("xformer-bench bench: under mpirun only --allreduce applies; bench CONFIG "
                    "times each point in a process of its own (run it without mpirun)\n")
            self.assertEqual(p.stderr.count(line), 1, p.stderr)  # once, not once per rank
            self.assertFalse(os.path.exists(os.path.join(d, "o")))


class ScalingModel(unittest.TestCase):
    SCRIPT = os.path.join(ROOT, "scripts", "scaling-model.py")

    def test_projection_follows_the_model(self):
        """Inputs planted where the script looks: it times nothing, and its numbers are the
        formula's."""
        with tempfile.TemporaryDirectory() as d:
            ar = {"processes": 2, "load_average": [1.0, 1.0, 1.0],
                  "fit": {"alpha_s": 3e-6, "beta_s_per_byte": 4e-10},
                  "fit_min": {"alpha_s": 1e-6, "beta_s_per_byte": 2e-10}}
            write(d, "allreduce.json", json.dumps(ar))
            cfg = write(d, "m.yaml", "task:\n  name: listops\nmodel:\n  max_len: 100\n"
                        "train:\n  batch_size: 32\n")
            inputs = os.path.join(d, "inputs", "m")
            os.makedirs(inputs)
            report = {"model": {"parameters": 1000000}, "measured": {"step_s_median": 0.5},
                      "environment": {"threads": 1},
                      "flops": {"analytic_forward_step": 1e9, "analytic_backward_step": 2e9,
                                "analytic_train_step": 3e9}}
            write(inputs, "full-100.json", json.dumps(report))
            p = subprocess.run([sys.executable, self.SCRIPT, os.path.join(d, "allreduce.json"),
                                cfg, "--nodes", "8,24,64", "-o", d], capture_output=True,
                               text=True, env={**os.environ, "XB_BIN": "/nonexistent"})
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "scaling-model.json")) as f:
                doc = json.load(f)
            x = doc["configs"][0]
            self.assertEqual((x["timing_batch"], x["parameters"]), (2, 1000000))
            self.assertAlmostEqual(x["T_c"], 0.5 * 32 / 2)
            self.assertEqual(len(doc["networks"]), 3)
            here = doc["networks"][0]
            self.assertEqual((here["alpha_s"], here["beta_s_per_byte"]), (3e-6, 4e-10))
            pr = here["projections"][0]
            P, a, b = 8, 3e-6, 4e-10
            comm = (2 * (P - 1) * a + 2 * (P - 1) / P * 4e6 * b) + (2 * (P - 1) * a +
                                                                     2 * (P - 1) / P * 24 * b)
            tc = 8.0 / P
            self.assertAlmostEqual(pr["8"]["comm_s"], comm, delta=1e-12)
            self.assertAlmostEqual(pr["8"]["efficiency"], tc / (tc + comm), delta=1e-12)
            grad = 2 * (P - 1) * a + 2 * (P - 1) / P * 4e6 * b
            self.assertAlmostEqual(pr["8"]["efficiency_overlap"],
                                   tc / (tc / 3 + max(2 * tc / 3, grad) + comm - grad),
                                   delta=1e-12)
            self.assertIsNone(pr["24"])  # 24 does not divide the batch of 32
            self.assertIsNone(pr["64"])  # more processes than examples
            self.assertIn("| m.yaml | 1000000 | 3.81 | 32 | 8 |", p.stdout)

    def test_it_times_a_config_with_bench(self):
        with tempfile.TemporaryDirectory() as d:
            write(d, "allreduce.json", json.dumps({
                "processes": 2, "load_average": [1.0, 1.0, 1.0],
                "fit": {"alpha_s": 3e-6, "beta_s_per_byte": 4e-10},
                "fit_min": {"alpha_s": 1e-6, "beta_s_per_byte": 2e-10}}))
            cfg = write(d, "tiny.yaml", TINY_BLOCK)
            p = subprocess.run([sys.executable, self.SCRIPT, os.path.join(d, "allreduce.json"),
                                cfg, "--nodes", "2,4", "-o", d], capture_output=True, text=True,
                               env={**os.environ, "XB_BIN": os.path.abspath(test_cli.BIN)})
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(d, "inputs", "tiny", "full-40.json")) as f:
                r = json.load(f)
            self.assertEqual(r["config"]["train"]["batch_size"], 1)  # 16 / 16
            self.assertEqual(r["config"]["model"]["max_len"], 40)
            with open(os.path.join(d, "scaling-model.json")) as f:
                x = json.load(f)["configs"][0]
            self.assertEqual(x["parameters"], r["model"]["parameters"])
            self.assertAlmostEqual(x["T_c"], 16 * r["measured"]["step_s_median"])
            self.assertTrue(math.isfinite(x["T_c"]) and x["T_c"] > 0)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        test_cli.BIN = sys.argv.pop(1)
    unittest.main(verbosity=2)
