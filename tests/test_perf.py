#!/usr/bin/env python3
"""End-to-end tests of the performance tools (issue 20): bench --profile, the calibration in every
report, compare's judgement of speed relative to it, and the PyTorch peers script."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli import BIN, TINY, run  # noqa: E402  (the binary's path, the tiny config, a run)

ROOT = os.environ.get("XB_SOURCE_ROOT", ".")


def write_tiny(d):
    cfg = os.path.join(d, "tiny.yaml")
    with open(cfg, "w") as f:
        f.write(TINY)
    return cfg


PROFILE_HEAD = re.compile(r"^profile of (\S+) at L = (\d+): (\d+) steps, ([0-9.]+) ms per step "
                          r"\(mean\), (\d+) timed regions per step$")
PROFILE_ROW = re.compile(r"^  (\S+) +(forward|backward) +([0-9.]+) +([0-9.]+)$")
PROFILE_REST = re.compile(r"^  (\d+ more entries|not in any kernel) +([0-9.]+) +([0-9.]+)$")


def profile_blocks(stdout):
    """{(mixer, L): (head match, [(family, direction, ms, pct)], {label: (ms, pct)})}."""
    blocks, cur = {}, None
    for line in stdout.splitlines():
        m = PROFILE_HEAD.match(line)
        if m:
            cur = (m, [], {})
            blocks[(m.group(1), int(m.group(2)))] = cur
            continue
        if cur is None:
            continue
        r = PROFILE_ROW.match(line)
        if r:
            cur[1].append((r.group(1), r.group(2), float(r.group(3)), float(r.group(4))))
            continue
        r = PROFILE_REST.match(line)
        if r:
            key = "none" if r.group(1) == "not in any kernel" else "more"
            cur[2][key] = (float(r.group(2)), float(r.group(3)))
            continue
        if line.strip() and not line.startswith("  kernel family"):
            cur = None
    return blocks


class BenchProfile(unittest.TestCase):
    def test_profile_prints_the_largest_entries_and_the_time_in_no_kernel_per_point(self):
        with tempfile.TemporaryDirectory() as d:
            cfg = write_tiny(d)
            out = os.path.join(d, "b")
            p = run(["bench", cfg, "--lengths", "32,40", "--mixers", "full,linear", "--steps", "3",
                     "--warmup", "1", "-o", out, "--quiet", "--profile"])
            self.assertEqual(p.returncode, 0, p.stderr)
            blocks = profile_blocks(p.stdout)
            self.assertEqual(sorted(blocks), [("full", 32), ("full", 40), ("linear", 32),
                                              ("linear", 40)])
            for (mixer, L), (head, rows, rest) in blocks.items():
                with open(os.path.join(out, "%s-%d.json" % (mixer, L))) as f:
                    doc = json.load(f)
                m, steps = doc["measured"], doc["training"]["steps"]
                self.assertEqual(int(head.group(3)), steps)
                self.assertAlmostEqual(float(head.group(4)), 1e3 * m["train_s"] / steps, places=3)
                prof = m["profile"]
                self.assertEqual(int(head.group(5)), prof["regions"] // steps)
                entries = sorted(((v[k], f, k.split("_")[0]) for f, v in prof.items()
                                  if isinstance(v, dict) for k in ("forward_s", "backward_s")
                                  if v[k] > 0), reverse=True)
                # the eight largest, largest first, each as the report has it
                self.assertEqual(len(rows), min(8, len(entries)))
                self.assertEqual([r[2] for r in rows], sorted((r[2] for r in rows), reverse=True))
                for (fam, dirn, ms, pct) in rows:
                    s = prof[fam][dirn + "_s"]
                    self.assertAlmostEqual(ms, 1e3 * s / steps, places=3)
                    self.assertAlmostEqual(pct, 100 * s / m["train_s"], places=1)
                self.assertEqual(rows[0][2], round(1e3 * entries[0][0] / steps, 3))
                # the rest summed, and the time in no kernel: together the whole step
                self.assertEqual(rest.get("more", (0, 0)) != (0, 0), len(entries) > 8)
                if len(entries) > 8:
                    self.assertIn("  %d more entries" % (len(entries) - 8), p.stdout)
                self.assertAlmostEqual(rest["none"][0], 1e3 * prof["other_s"] / steps, places=3)
                total = sum(r[2] for r in rows) + rest.get("more", (0, 0))[0] + rest["none"][0]
                self.assertAlmostEqual(total, float(head.group(4)), delta=0.002 * (len(rows) + 2))
            # the index states each point's GFLOP/s against the sgemm of its calibration
            with open(os.path.join(out, "index.json")) as f:
                for q in json.load(f)["points"]:
                    with open(os.path.join(out, q["report"])) as g:
                        c = json.load(g)["measured"]["calibration"]
                    self.assertEqual(q["sgemm_gflops_per_s"], c["sgemm_gflops_per_s"])
                    self.assertAlmostEqual(q["fraction_of_sgemm"],
                                           q["gflops_per_s"] / c["sgemm_gflops_per_s"])
                    self.assertIn("| %.1f | %.1f |" % (q["gflops_per_s"],
                                                       100 * q["fraction_of_sgemm"]), p.stdout)
            # with the profile off the point says so
            p = run(["bench", cfg, "--lengths", "32", "--steps", "2", "--warmup", "1", "-o",
                     os.path.join(d, "off"), "--quiet", "--profile"], env={"XB_PROFILE": "0"})
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("\nprofile of full at L = 32: none recorded (XB_PROFILE=0 turns it "
                          "off)\n", p.stdout)
            # without --profile, no profile
            p = run(["bench", cfg, "--lengths", "32", "--steps", "2", "--warmup", "1", "-o",
                     os.path.join(d, "plain"), "--quiet"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("profile of", p.stdout)
            p = run(["bench", "--allreduce", "--profile"])
            self.assertEqual((p.returncode, p.stderr), (2, "xformer-bench bench: --profile does "
                                                           "not apply to --allreduce (see --help)\n"))


def validate(path):
    return subprocess.run([sys.executable, os.environ.get("XB_VALIDATE", "tests/validate_report.py"),
                           os.environ.get("XB_SCHEMA", "src/report/report.schema.json"), path],
                          capture_output=True, text=True)


class Calibration(unittest.TestCase):
    """The calibration in every report, and compare judging speed relative to it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        p = run(["run", write_tiny(d), "-o", d, "--quiet"])
        assert p.returncode == 0, p.stderr
        cls.path = os.path.join(d, "tiny.json")
        with open(cls.path) as f:
            cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_a_run_reports_its_share_of_the_cores_and_a_probe_on_its_threads(self):
        m = self.doc["measured"]
        c = m["calibration"]
        self.assertEqual(c["threads"], 2)
        self.assertEqual((c["sgemm_n"], c["triad_bytes"]), (512, 3 * 2 << 20))
        for k in ("sgemm_gflops_per_s", "triad_gb_per_s", "probe_s", "cpu_s", "on_core_s"):
            self.assertGreater(c[k], 0, k)
        self.assertGreaterEqual(c["waiting_s"], 0)
        self.assertAlmostEqual(c["core_share"], c["on_core_s"] / (c["on_core_s"] + c["waiting_s"]))
        self.assertGreater(c["probe_core_share"], 0)
        self.assertLessEqual(c["probe_core_share"], 1)
        # the window is training and evaluation: the run's wall time, no more
        self.assertAlmostEqual(c["window_s"], m["wall_s"], delta=0.05 * m["wall_s"] + 0.01)
        self.assertLess(c["window_s"], m["wall_s"] + c["probe_s"])
        # threads that run have CPU time; the process cannot run on more cores than it has
        self.assertLessEqual(c["on_core_s"], c["window_s"] * os.cpu_count() * 1.05 + 0.05)
        v = validate(self.path)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_a_process_competing_for_the_core_lowers_the_share(self):
        # the run and a busy loop pinned to one core: runnable, the run's threads wait for it
        core = min(os.sched_getaffinity(0))
        pin = lambda: os.sched_setaffinity(0, {core})
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin)
        try:
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.run([BIN, "run", write_tiny(d), "-o", d, "--quiet"],
                                   capture_output=True, text=True, preexec_fn=pin)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(os.path.join(d, "tiny.json")) as f:
                    c = json.load(f)["measured"]["calibration"]
        finally:
            busy.kill()
            busy.wait()
        self.assertGreater(c["waiting_s"], 0)
        self.assertLess(c["core_share"], 0.7)

    def variant(self, sps=1.0, share=1.0, drop=False):
        doc = json.loads(json.dumps(self.doc))
        m = doc["measured"]
        m["steps_per_s"] *= sps
        if drop:
            del m["calibration"]
        else:
            m["calibration"]["core_share"] = share
        return doc

    def compare(self, base, new, *args, more=()):
        with tempfile.TemporaryDirectory() as d:
            for name, docs in (("base", [base] + [x[0] for x in more]),
                               ("new", [new] + [x[1] for x in more])):
                os.makedirs(os.path.join(d, name))
                for i, doc in enumerate(docs):
                    if i:
                        doc = json.loads(json.dumps(doc))
                        doc["run_id"] = "tiny%d" % i
                        doc["config_hash"] = "%016x" % i
                    with open(os.path.join(d, name, "tiny%s.json" % (i or "")), "w") as f:
                        json.dump(doc, f)
            return run(["compare", os.path.join(d, "base"), os.path.join(d, "new")] + list(args))

    def test_a_run_that_got_less_of_the_cores_is_not_a_regression_calibrated(self):
        # a third of the steps/s with a third of the cores: the other jobs, not the code
        p = self.compare(self.variant(share=0.9), self.variant(sps=1 / 3, share=0.3),
                         "--max-calibrated-slowdown", "10")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("(-66.7%; calibrated +0.0%)", p.stdout)
        # raw, it is one
        p = self.compare(self.variant(share=0.9), self.variant(sps=1 / 3, share=0.3))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("regression: listops/full/tiny: 200.0% slower, ", p.stdout)

    def test_a_calibrated_slowdown_is_named_and_exits_1(self):
        sps = self.doc["measured"]["steps_per_s"]
        p = self.compare(self.variant(share=0.5), self.variant(sps=1 / 1.3, share=0.5),
                         "--max-calibrated-slowdown", "20")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("regression: listops/full/tiny: 30.0%% slower calibrated, %.3g -> %.3g "
                      "steps/s at a full share of the cores (raw %.3g -> %.3g steps/s, core "
                      "share 0.50 -> 0.50; limit 20.0%%)\n"
                      % (2 * sps, 2 * sps / 1.3, sps, sps / 1.3), p.stdout)
        self.assertRegex(p.stdout, r"\| REGRESSION( \([^|]*\))? \|")  # the verdict column
        # even when the raw figure rose: the run had the cores to itself this time
        p = self.compare(self.variant(share=0.4), self.variant(sps=1.5, share=1.0),
                         "--max-calibrated-slowdown", "20")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("66.7% slower calibrated", p.stdout)
        p = self.compare(self.variant(share=0.5), self.variant(sps=1 / 1.3, share=0.5),
                         "--max-calibrated-slowdown", "35")
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_a_slowdown_common_to_all_runs_is_held_by_their_mean(self):
        # three runs, each 12% slower calibrated: within a per-run limit of 30, above a mean of 10
        slow = (self.variant(share=0.8), self.variant(sps=1 / 1.12, share=0.8))
        args = ("--max-calibrated-slowdown", "30", "--max-mean-calibrated-slowdown", "10")
        p = self.compare(*slow, *args, more=[slow, slow])
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("regression: all 3 runs with a calibration: 12.0% slower calibrated steps/s "
                      "(the geometric mean of their ratios; limit 10.0%)\n", p.stdout)
        self.assertNotIn("regression: listops/", p.stdout)
        # one run 12% slower, two as fast: 1.12^(-1/3) - 1 = -3.7%, within the mean's limit
        same = (self.variant(share=0.8), self.variant(share=0.8))
        p = self.compare(*slow, *args, more=[same, same])
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("\ncalibrated steps/s of the 3 runs with a calibration: -3.7% (the geometric "
                      "mean of their ratios; 10.0% slower is a regression)\n", p.stdout)
        # and the mean alone, without a per-run calibrated limit, judges each run raw
        p = self.compare(self.variant(share=0.9), self.variant(sps=1 / 3, share=0.3),
                         "--max-mean-calibrated-slowdown", "10")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("regression: listops/full/tiny: 200.0% slower, ", p.stdout)
        self.assertNotIn("regression: all", p.stdout)

    def cpu(self, factor):
        doc = self.variant()
        doc["measured"]["calibration"]["cpu_s"] *= factor
        return doc

    def test_more_cpu_time_per_step_over_all_runs_is_a_regression(self):
        steps, cpu = self.doc["training"]["steps"], self.doc["measured"]["calibration"]["cpu_s"]
        self.assertGreater(cpu, 0)
        more = (self.doc, self.cpu(1.2))
        p = self.compare(*more, "--max-mean-cpu-growth", "15", more=[more])
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("regression: all 2 runs with a calibration: 20.0% more CPU seconds per step "
                      "(the geometric mean of their ratios; limit 15.0%)\n", p.stdout)
        # one of two 20% more: 1.2^(1/2) - 1 = 9.5%
        p = self.compare(*more, "--max-mean-cpu-growth", "15", more=[(self.doc, self.doc)])
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("\nCPU seconds per step of the 2 runs with a calibration: +9.5% (the "
                      "geometric mean of their ratios; 15.0% more is a regression)\n", p.stdout)
        # less is no regression, and a report without the calibration does not count
        p = self.compare(self.doc, self.cpu(0.5), "--max-mean-cpu-growth", "15",
                         more=[(self.doc, self.variant(drop=True))])
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("CPU seconds per step of the 1 run with a calibration: -50.0%", p.stdout)
        self.assertGreater(steps, 0)

    def test_a_report_without_a_core_share_is_judged_raw_with_a_note(self):
        old = self.variant(drop=True)
        unknown = self.variant()
        unknown["measured"]["calibration"]["core_share"] = None  # no schedstat
        for base, new, which in ((old, self.doc, "BASE"), (self.doc, old, "NEW"),
                                 (old, unknown, "BASE and NEW")):
            p = self.compare(base, new, "--max-calibrated-slowdown", "10", "--max-slowdown",
                             "300")
            self.assertEqual(p.returncode, 0, p.stdout)
            self.assertIn("note: listops/full/tiny: no core share in %s (a report older than the "
                          "calibration, or a kernel without schedstat): steps/s judged raw (limit "
                          "300.0%%)\n" % which, p.stdout)
        p = self.compare(old, self.variant(sps=1 / 5), "--max-calibrated-slowdown", "10",
                         "--max-slowdown", "300")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("regression: listops/full/tiny: 400.0% slower", p.stdout)
        # without the options, nothing about the calibration
        p = self.compare(old, self.doc)
        self.assertNotIn("note:", p.stdout)
        self.assertNotIn("calibrated", p.stdout)

    def test_bad_calibration_or_limit_exits_2_with_one_line(self):
        for value, found in (("fast", "found a string"), (1.5, "1.5 is out of range")):
            doc = self.variant()
            doc["measured"]["calibration"]["core_share"] = value
            p = self.compare(self.doc, doc, "--max-calibrated-slowdown", "10")
            self.assertEqual(p.returncode, 2)
            self.assertRegex(p.stderr, r"^xformer-bench compare: .*/new/tiny.json: "
                             r"measured.calibration.core_share: .*" + found)
        for opt in ("--max-calibrated-slowdown", "--max-mean-calibrated-slowdown",
                    "--max-mean-cpu-growth"):
            p = self.compare(self.doc, self.doc, opt, "-1")
            self.assertEqual((p.returncode, p.stderr), (2, 'xformer-bench compare: %s: expected '
                             'a number >= 0, got "-1"\n' % opt))


def have_torch():
    return subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0


class Peers(unittest.TestCase):
    @unittest.skipUnless(have_torch(), "PyTorch is not installed (Debian: python3-torch)")
    def test_peers_time_the_same_models_side_by_side(self):
        # two of the six (each takes PyTorch's start-up, seconds): the two whose parameters
        # depend on the length and on the options beyond the projections
        p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "peers.sh"), "--lengths", "256",
                            "--steps", "2", "--warmup", "1", "--threads", "1", "--mechanisms",
                            "linformer,nystrom"],
                           capture_output=True, text=True, cwd=ROOT, env={**os.environ,
                           "XB_BIN": os.path.abspath(BIN)})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rows = {}
        for line in p.stdout.splitlines():
            m = re.match(r"^\| (\w+) \| 256 \| ([0-9.,]+) \| ([0-9.,]+) \| ([0-9.]+)x \| (\d+) "
                         r"\| (\d+) \| ([0-9,]+), ([0-9,]+) \|$", line)
            if m:
                rows[m.group(1)] = m.groups()[1:]
        self.assertEqual(sorted(rows), ["linformer", "nystrom"], p.stdout)
        for mech, (ours, theirs, ratio, _, _, p_ours, p_theirs) in rows.items():
            # the same model on both sides: the same parameters, to the last one
            self.assertEqual(p_ours, p_theirs, mech)
            ours, theirs = float(ours.replace(",", "")), float(theirs.replace(",", ""))
            # the times are printed to 0.1 ms and the ratio to 0.01, from the unrounded times
            r = theirs / ours
            self.assertAlmostEqual(float(ratio), r, delta=0.006 + r * (0.05 / ours + 0.05 / theirs))
        for args, msg in ((["--mechanisms", "bogus"], "peers.sh: unknown mechanism 'bogus' "
                           "(valid: full, local, linformer, linear, performer, nystrom)\n"),
                          (["--lengths", "1x"], "peers.sh: --lengths: '1x' is not a length\n"),
                          (["--steps", "2", "--warmup", "2"], "peers.sh: --warmup 2 must be "
                           "below --steps 2\n")):
            q = subprocess.run(["bash", os.path.join(ROOT, "scripts", "peers.sh")] + args,
                               capture_output=True, text=True, cwd=ROOT)
            self.assertEqual((q.returncode, q.stderr), (2, msg))


if __name__ == "__main__":
    unittest.main(verbosity=2)
