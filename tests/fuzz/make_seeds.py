#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora, tests/fuzz/corpus/HARNESS/, from the repository's own
configs, fixtures and reports, from files the tool exports and from small generated samples;
and their dictionaries, tests/fuzz/dict/HARNESS.dict (the config's from `xformer-bench list`).

    python3 tests/fuzz/make_seeds.py build/src/xformer-bench

Run it again after a file format changes; it replaces each corpus directory whole. The seeds are
kept small (the whole corpus is well under 200 KB): a fuzzer grows its own corpus, outside the
repository, from these (scripts/fuzz.sh)."""
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SEP = b"\n--xb-fuzz-next-file--\n"  # FUZZ_SEP of fuzz.h
CORPUS = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def xb(*args, env=None):
    e = dict(os.environ, XB_CACHE_DIR="", OMP_NUM_THREADS="1")
    e.update(env or {})
    subprocess.run([BIN, *args], check=True, env=e, cwd=ROOT, stdout=subprocess.DEVNULL)


# ---- config: the repository's configs, and sweeps and overrides written here ----

def config_seeds():
    for sub, _, files in os.walk(os.path.join(ROOT, "configs")):
        for f in sorted(files):
            if f.endswith(".yaml"):
                rel = os.path.relpath(os.path.join(sub, f), os.path.join(ROOT, "configs"))
                put("config", rel.replace("/", "_"), read(os.path.join(sub, f)))
    quick = read(os.path.join(ROOT, "configs", "quickstart.yaml"))
    # overrides follow the YAML, each after a NUL (fuzz_config.c)
    put("config", "quickstart_sets", quick + b"\0model.layers=4\0model.mixer.name=performer"
        b"\0model.mixer.features=64\0task.parens=true")
    put("config", "sweep", b"""experiment: {name: sw, seed: 3, output_dir: /tmp/sw}
task: {name: parity, num_train: 10, min_length: 2, max_length: 9}
model: {layers: 1, d_model: 16, heads: 2, d_ff: 32, max_len: 16, mixer: {name: local, block: 4}}
train: {steps: 10, schedule: rsqrt, warmup: 20, eval_every: 5}
sweep:
  model.mixer.block: [2, 4, 8]
  model.layers: [1, 2]
  train.lr: [0.001, 1e-2]
  experiment.output_dir: [a/b, "a b"]
""" + b"\0model.mixer.memory=2\0train.lr=0.5")
    put("config", "sweep_mixers", b"""task: {name: listops, num_train: 10}
model: {max_len: 64}
sweep:
  model.mixer.name: [full, sliding, bigbird, performer, nystrom]
  task.data_dir: [d1, "d 2"]
""")
    put("config", "sequence", b"""task:
  name: needle
  min_length: 64
  max_length: 64
  needles: 2
  keys: 2
model:
  max_len: 64
  pooling: none
  segment: 16
  memory: 32
  compress: 4
  compressed_memory: 4
  mixer: {name: full, relative: true}
  positions: none
""")
    put("config", "yaml_features", b"""%YAML 1.1
---
experiment: &e {name: "quoted-name", seed: 4294967296, threads: 0}
task: {name: 'listops', source: files, data_dir: "/data/\\u00e9t\\u00e9 dir", parens: true}
model:
  latents: 8
  cross_attends: 2
  pooling: mean
  ffn: switch
  experts: 4
  mixer: ~
train: !!map {batch_size: 16, lr: .5e-3, clip_norm: 0}
...
""")
    put("config", "perceiver_funnel", b"task: {name: image}\nmodel: {funnel: 2, layers: 4,"
        b" mixer: {name: nystrom, landmarks: 16}}\n\0model.latents=0\0model.pooling=mean")


# ---- report: the CI baseline's reports and the reader's fixtures ----

def report_seeds():
    ci = os.path.join(ROOT, "results", "ci")
    for f in sorted(os.listdir(ci)):
        if f.endswith(".json"):
            put("report", "ci_" + f, read(os.path.join(ci, f)))
    fx = os.path.join(ROOT, "tests", "fixtures", "report")
    for f in sorted(os.listdir(fx)):
        put("report", "fixture_" + f, read(os.path.join(fx, f)))
    eff = os.path.join(ROOT, "results", "efficiency", "full-1024.json")
    if os.path.exists(eff):
        put("report", "efficiency_full-1024.json", read(eff))


# ---- listops_tsv, aan_tsv: the fixtures, and files the tool exports ----

def joined(paths):
    return SEP.join(read(p) for p in paths)


def head_lines(data, n):
    return b"".join(data.splitlines(keepends=True)[:n])


def tsv_seeds(tmp):
    fx = os.path.join(ROOT, "tests", "fixtures", "listops")
    names = ["basic_train.tsv", "basic_val.tsv", "basic_test.tsv"]
    for case in sorted(os.listdir(fx)):
        put("listops_tsv", "fixture_" + case, joined(os.path.join(fx, case, n) for n in names))
    for parens in ("false", "true"):
        out = os.path.join(tmp, "listops-" + parens)
        xb("data", "listops", "--set", "task.num_train=6", "--set", "task.num_val=3",
           "--set", "task.num_test=3", "--set", "task.min_length=5", "--set",
           "task.max_length=40", "--set", "task.parens=" + parens, "--export", out)
        put("listops_tsv", "export_parens_" + parens,
            SEP.join(read(os.path.join(out, n)) for n in names))
    out = os.path.join(tmp, "aan")
    xb("data", "retrieval", "--set", "task.max_bytes=120", "--export", out)
    names = ["new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv", "new_aan_pairs.test.tsv"]
    put("aan_tsv", "export_spam_assassin",
        SEP.join(head_lines(read(os.path.join(out, n)), 3) for n in names))
    put("aan_tsv", "one_file", b"1\tid-a\tid-b\tthe first text\tthe second\n"
        b"0.0\tx\ty\t\t\r\n1.0\t\t\tbytes \xc3\xa9\xff\tend\n")


# ---- png, pathfinder_meta: PNG files of every colour type, written here ----

def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def png(w, h, depth, ctype, rows, extra=b"", interlace=0, plte=None):
    """A PNG of raw scanlines (each row already packed, filter byte 0 added here)."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0,
                                                             0, interlace))
    if plte:
        out += chunk(b"PLTE", plte)
    out += extra
    out += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows), 9))
    return out + chunk(b"IEND", b"")


def png_seeds():
    S = 32
    gray = [bytes((x * 8 + y) & 255 for x in range(S)) for y in range(S)]
    put("png", "gray8", png(S, S, 8, 0, gray))
    put("png", "gray1", png(S, S, 1, 0, [bytes([0xaa if y % 2 else 0x55] * 4) for y in range(S)]))
    put("png", "gray4_text_gamma", png(S, S, 4, 0, [bytes([0x1f] * 16) for _ in range(S)],
                                       extra=chunk(b"gAMA", struct.pack(">I", 45455))
                                       + chunk(b"tEXt", b"Comment\0pathfinder")))
    put("png", "gray16", png(S, S, 16, 0, [r + r for r in gray]))
    put("png", "gray_alpha", png(S, S, 8, 4, [bytes(v for p in r for v in (p, 200)) for r in gray]))
    put("png", "rgb", png(S, S, 8, 2, [bytes(v for p in r for v in (p, 255 - p, 7)) for r in gray]))
    put("png", "rgba16", png(S, S, 16, 6, [bytes([1, 2] * 4 * S) for _ in range(S)]))
    put("png", "palette_trns", png(S, S, 2, 3, [bytes([0x1b] * 8) for _ in range(S)],
                                   plte=bytes(range(12)), extra=chunk(b"tRNS", b"\x00\x80")))
    # Adam7: the scanlines of the seven passes, written as if one image (filter 0 each)
    put("png", "interlaced", png(S, S, 8, 0, [bytes(4)] * 4 + [bytes(4)] * 4 + [bytes(8)] * 4
                                 + [bytes(8)] * 8 + [bytes(16)] * 8 + [bytes(16)] * 16
                                 + [bytes(32)] * 16, interlace=1))
    put("png", "wrong_size", png(8, 8, 8, 0, [bytes(8)] * 8))
    put("png", "truncated", png(S, S, 8, 0, gray)[:60])
    put("png", "empty", b"")
    # metadata: LRA's lines "imgs/K sample_J.png NIMG LABEL ..."; the harness supplies
    # imgs/0/sample_0..3.png and imgs/0/empty.png
    lines = b"".join(b"imgs/0 sample_%d.png %d %d 14 1.5 4 0\n" % (i % 4, i, i % 2)
                     for i in range(12))
    put("pathfinder_meta", "twelve", lines)
    put("pathfinder_meta", "empty_image", lines + b"imgs/0 empty.png 12 1 14 1.5 4 0\r\n")
    put("pathfinder_meta", "two_files_and_png",
        lines[:200] + SEP + b"imgs/fuzz sample_0.png 0 1 14 1.5 4 0\n" * 4 + SEP
        + png(S, S, 8, 2, [bytes(3 * S)] * S))


# ---- idx: Fashion-MNIST's first images, and small IDX files written here ----

def idx(dims, data):
    return b"\0\0\x08" + bytes([len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idx_seeds():
    fm = "/usr/share/datasets/fashion-mnist"
    if os.path.exists(os.path.join(fm, "train-images-idx3-ubyte.gz")):
        with gzip.open(os.path.join(fm, "train-images-idx3-ubyte.gz")) as f:
            img = f.read(16 + 3 * 784)[16:]
        with gzip.open(os.path.join(fm, "train-labels-idx1-ubyte.gz")) as f:
            lab = f.read(8 + 3)[8:]
        pair = idx([3, 28, 28], img) + SEP + idx([3], lab)
        put("idx", "fashion_mnist_3", pair)
        put("idx", "fashion_mnist_3_gzip", gzip.compress(idx([3, 28, 28], img), mtime=0)
            + SEP + gzip.compress(idx([3], lab), mtime=0))
    put("idx", "tiny_2x2", idx([4, 2, 2], bytes(range(16))) + SEP + idx([4], bytes([0, 9, 3, 1]))
        + SEP + idx([1, 2, 2], b"\xff" * 4) + SEP + idx([1], b"\x05"))
    put("idx", "label_out_of_range", idx([2, 1, 1], b"\1\2") + SEP + idx([2], b"\x00\x0a"))


# ---- cache: data cache files of generated tasks, between their key and their CRC-32 ----

def cache_body(path):
    b = read(path)
    key_len = struct.unpack("<q", b[12:20])[0]  # the machine's byte order: little-endian here
    return b[20 + key_len:-4]  # fuzz_cache.c puts the key in front and the CRC-32 at the end


def cache_seeds(tmp):
    cases = {
        "parity": ["task.num_train=4", "task.num_val=2", "task.num_test=2", "task.min_length=1",
                   "task.max_length=7"],
        "listops": ["task.num_train=3", "task.num_val=2", "task.num_test=2", "task.min_length=3",
                    "task.max_length=12"],
        "mqar": ["task.num_train=2", "task.num_val=1", "task.num_test=1", "task.min_pairs=2",
                 "task.max_pairs=3", "task.queries=2", "task.keys=8", "task.values=4"],
        "recall": ["task.num_train=2", "task.num_val=1", "task.num_test=1", "task.min_pairs=2",
                   "task.max_pairs=2", "task.keys=300", "task.values=3"],  # 2-byte tokens
        "selcopy": ["task.num_train=2", "task.num_val=1", "task.num_test=1", "task.min_length=4",
                    "task.max_length=6", "task.tokens=2", "task.symbols=65536"],  # 4-byte
    }
    for task, sets in cases.items():
        d = os.path.join(tmp, "cache-" + task)
        args = ["data", task]
        for s in sets:
            args += ["--set", s]
        xb(*args, env={"XB_CACHE_DIR": d})
        files = [f for f in os.listdir(d) if f.endswith(".xbd")]
        assert len(files) == 1, files
        body = cache_body(os.path.join(d, files[0]))
        put("cache", task, body)
        if task == "parity":
            put("cache", "parity_whole_file", read(os.path.join(d, files[0])))
            put("cache", "parity_truncated", body[:len(body) // 2])


# ---- dictionaries (libFuzzer's format: one "token" a line) ----

def dict_line(tok):
    out = ""
    for c in tok.encode() if isinstance(tok, str) else tok:
        out += chr(c) if 0x20 <= c < 0x7f and chr(c) not in '"\\' else "\\x%02x" % c
    return '"%s"\n' % out


def write_dict(harness, comment, tokens):
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    seen, lines = set(), ["# %s\n# written by tests/fuzz/make_seeds.py\n" % comment]
    for t in tokens:
        if t and t not in seen:
            seen.add(t)
            lines.append(dict_line(t))
    with open(os.path.join(HERE, "dict", harness + ".dict"), "w") as f:
        f.writelines(lines)


def listed_names():
    """Section, key, task, mechanism and option names, and enum choices, from `list`."""
    out = subprocess.run([BIN, "list"], check=True, capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        words = line.split()
        if not words or line.endswith("):"):
            continue
        names.append(words[0].rstrip(":"))
        if line.startswith("    ") and "one of:" in line:
            choices = line.split("one of:", 1)[1].split(";", 1)[0]
            names += [c.strip() for c in choices.split(",")]
    return names


def dicts():
    sep = [SEP]
    yaml = [": ", "- ", "{", "}", "[", "]", ", ", "&a", "*a", "!!str", "!!map", "~", "null",
            "true", "false", "\"", "'", "|", ">", "---", "...", "%YAML 1.1", "\t", "#", "\n  ",
            "0x", "1e9", ".inf", "-1", "9223372036854775808", "\0", "=", "/", "\\u0000",
            b"\xc3\xa9", b"\xff", b"\xe2\x80\xa8", b"\xef\xbb\xbf"]
    dotted = ["task.name=", "model.mixer.name=", "model.layers=", "sweep.", "experiment.",
              "task.", "model.", "train.", "model.mixer."]
    write_dict("config", "YAML, the config's sections and keys, tasks and mechanisms",
               yaml + dotted + listed_names())
    write_dict("report", "JSON and the report fields that compare, table and plot read",
               ['"', "{", "}", "[", "]", ":", ",", "null", "true", "false", "-0", "1e308",
                "\\u0000", "\\ud800", b"\xc3\xa9", b"\xff", "schema_version", "run_id",
                "status", "ok", "config", "task", "name", "config_hash", "model", "mixer",
                "mixer_classes", "max_len", "train", "batch_size", "test", "accuracy",
                "majority_baseline", "measured", "steps_per_s", "tokens_per_s",
                "step_s_median", "wall_s", "peak_rss", "memory", "planned_total", "flops",
                "analytic_train_step", "counted_train_step", "parameters"])
    write_dict("listops_tsv", "LRA's ListOps TSV",
               sep + ["Source\tTarget\n", "\t", "\r\n", "[MIN", "[MAX", "[MED", "[SM", "]",
                      "(", ")", " ", "9", "10"])
    write_dict("aan_tsv", "LRA's new_aan_pairs TSV", sep + ["\t", "\r\n", "0", "1", "1.0",
                                                           "0e0", "nan", "-0"])
    png_chunks = [b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
                  b"iCCP", b"sBIT", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"tEXt", b"zTXt",
                  b"iTXt", b"tIME", b"acTL", b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x20",
                  b"\x78\x9c"]
    write_dict("png", "PNG chunk types and fields", png_chunks)
    write_dict("pathfinder_meta", "LRA's Pathfinder metadata lines",
               sep + png_chunks + ["imgs/0", "imgs/fuzz", "sample_0.png", "sample_3.png",
                                   "empty.png", " ", "\n", "\r", "0", "1", "../"])
    write_dict("idx", "IDX headers and gzip",
               sep + [b"\x00\x00\x08\x03", b"\x00\x00\x08\x01", b"\x00\x00\x00\x1c",
                      b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\x1f\x8b\x08"])
    # the identity's fields: kind (0-6, tasks/identity.h), depth, key length and key, value
    write_dict("cache", "the data cache's header and fields (little-endian int64)",
               [b"XBDSET04", b"\x04\x03\x02\x01", b"\x00" * 8, b"\x01" + b"\x00" * 7,
                b"\x02" + b"\x00" * 7, b"\xff" * 8, b"\xff\xff\xff\x7f\x00\x00\x00\x00",
                b"\x04" + b"\x00" * 7 + b"task", b"\x05" + b"\x00" * 7, b"\x06" + b"\x00" * 7,
                b"\x00\x00\x00\x00\x00\x00\x20\x43", b"\x00\x00\x00\x00\x00\x00\xe0\x3f",
                b"seed", b"num_train", b"parens"])


def main():
    global BIN
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    BIN = os.path.abspath(sys.argv[1])
    for h in ["config", "report", "listops_tsv", "aan_tsv", "png", "pathfinder_meta", "idx",
              "cache"]:
        shutil.rmtree(os.path.join(CORPUS, h), ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        config_seeds()
        report_seeds()
        tsv_seeds(tmp)
        png_seeds()
        idx_seeds()
        cache_seeds(tmp)
    dicts()
    total = sum(os.path.getsize(os.path.join(s, f)) for s, _, fs in os.walk(CORPUS) for f in fs)
    print("corpus: %d bytes" % total)


if __name__ == "__main__":
    main()
