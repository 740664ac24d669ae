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

BIN = os.environ.get("XB_BIN", "build/src/xformer-bench")
ROOT = os.environ.get("XB_SOURCE_ROOT", ".")

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


def run(args, env=None, cwd=None):
    return subprocess.run([BIN] + args, capture_output=True, text=True, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
