#!/usr/bin/env python3
"""Validates xformer-bench reports against src/report/report.schema.json (JSON Schema 2020-12).

    validate_report.py SCHEMA [--generate TEST_REPORT_EXE] [REPORT.json ...]

--generate runs the test_report suite with XB_REPORT_OUT set to a temporary directory, so it writes
the sample reports report_build produces there, and validates those too (at least one must be
written). For every valid report it also checks that the schema rejects a few broken copies
(a missing section, an unknown key, a wrong type, a NaN written as a string), so a schema that
accepts anything fails here. Exits 0 when everything is as expected, 1 otherwise."""

import copy
import glob
import json
import os
import subprocess
import sys
import tempfile

import jsonschema


def reject_constants(name):
    # Python's json accepts NaN/Infinity; reports must not contain them.
    raise ValueError("non-JSON constant %s" % name)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=reject_constants)


def broken_copies(doc):
    """(what was broken, document) pairs that the schema must reject."""
    out = []
    d = copy.deepcopy(doc)
    del d["measured"]
    out.append(("'measured' removed", d))
    d = copy.deepcopy(doc)
    d["environment"]["hostname"] = "box"
    out.append(("'environment.hostname' added", d))
    d = copy.deepcopy(doc)
    d["started_at"] = "2024-01-01T00:00:00"
    out.append(("top-level 'started_at' added", d))
    d = copy.deepcopy(doc)
    d["test"]["accuracy"] = "nan"
    out.append(("'test.accuracy' as a string", d))
    d = copy.deepcopy(doc)
    d["status"] = "finished"
    out.append(("'status' not in the enum", d))
    d = copy.deepcopy(doc)
    d["flops"]["counted_total"] = 1.5
    out.append(("'flops.counted_total' fractional", d))
    d = copy.deepcopy(doc)
    d["schema_version"] = 2
    out.append(("'schema_version' 2", d))
    if doc["measured"].get("calibration"):
        d = copy.deepcopy(doc)
        d["measured"]["calibration"]["core_share"] = 1.5
        out.append(("'calibration.core_share' above 1", d))
        d = copy.deepcopy(doc)
        del d["measured"]["calibration"]["sgemm_gflops_per_s"]
        out.append(("'calibration.sgemm_gflops_per_s' removed", d))
    if doc.get("evals"):
        d = copy.deepcopy(doc)
        del d["evals"][0]["val_loss"]
        out.append(("'evals[0].val_loss' removed", d))
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    schema = load(argv[1])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    args = argv[2:]
    reports = []
    tmp = None
    if args[:1] == ["--generate"]:
        if len(args) < 2:
            print("--generate needs the test_report executable", file=sys.stderr)
            return 2
        tmp = tempfile.TemporaryDirectory(prefix="xb-report-schema-")
        env = dict(os.environ, XB_REPORT_OUT=tmp.name, CK_FORK="no")
        run = subprocess.run([args[1]], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        if run.returncode != 0:
            print(run.stdout)
            print("%s failed (exit %d)" % (args[1], run.returncode), file=sys.stderr)
            return 1
        generated = sorted(glob.glob(os.path.join(tmp.name, "*.json")))
        if not generated:
            print("%s wrote no report into XB_REPORT_OUT" % args[1], file=sys.stderr)
            return 1
        reports += generated
        args = args[2:]
    reports += args
    failures = 0
    for path in reports:
        name = os.path.basename(path)
        try:
            doc = load(path)
        except (OSError, ValueError) as e:
            print("FAIL %s: %s" % (name, e))
            failures += 1
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errors:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            print("FAIL %s: %s: %s" % (name, where, e.message))
        failures += len(errors)
        if errors:
            continue
        print("ok   %s" % name)
        for what, bad in broken_copies(doc):
            if validator.is_valid(bad):
                print("FAIL %s: the schema accepts a copy with %s" % (name, what))
                failures += 1
    if tmp:
        tmp.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
