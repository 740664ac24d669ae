#!/usr/bin/python3
"""Cross-check of xformer-bench's `full` encoder against PyTorch's own modules.

Rebuilds the model of a report from its resolved config and its safetensors checkpoint with
nn.Embedding, nn.TransformerEncoderLayer (norm_first=True: pre-LayerNorm blocks; GELU with the
tanh approximation; LayerNorm eps 1e-6; the packed Q/K/V weight is nn.MultiheadAttention's
in_proj_weight, zero biases where the model has none), a final nn.LayerNorm, CLS or mean pooling
over the real positions, and the MLP head (Linear, ReLU, Linear); the retrieval task's dual
encoder feeds [u, v, u*v, u - v] of the two documents to the head. It reads the split from the
files `xformer-bench data TASK --export DIR` wrote (LRA's formats; it tokenises them itself),
evaluates in float64 and compares

  * its accuracy with the report's (test.accuracy, or training.best_val_accuracy with
    --split val): the difference must be at most 0.1 points;
  * its logits with those of `xformer-bench eval REPORT --logits FILE.npy`: the largest absolute
    difference must be at most 1e-4 (absolute, in logit units; the largest |logit| is printed
    beside it).

    /usr/bin/python3 scripts/reference/torch_encoder.py REPORT.json DATA_DIR [--logits FILE.npy]
        [--split test|val] [--threads N]

Exit status: 0 both within their limits, 1 a limit exceeded, 2 bad input (a report this script
cannot rebuild, missing or malformed files), 77 PyTorch (or NumPy) is not installed: the check is
skipped (Debian: apt-get install python3-torch).
"""
import argparse
import json
import os
import struct
import sys

SKIP = 77
ACC_LIMIT = 0.1  # points
LOGIT_LIMIT = 1e-4  # absolute

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:
    print(f"torch_encoder.py: PyTorch is not installed ({e.name} cannot be imported; Debian: "
          "apt-get install python3-torch): cross-check skipped")
    sys.exit(SKIP)


class BadInput(Exception):
    pass


# ---- the report and its checkpoint ----

def read_safetensors(path):
    """{name: float64 tensor} of a safetensors file, parsed here: an 8-byte little-endian header
    length, that many bytes of JSON header, then the raw little-endian data."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BadInput(f"{path}: cannot read the checkpoint: {e.strerror}")
    if len(raw) < 8:
        raise BadInput(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        raise BadInput(f"{path}: the header is not JSON ({e})")
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise BadInput(f"{path}: tensor {name} has dtype {t['dtype']} (expected F32)")
        b, e = t["data_offsets"]
        a = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
        out[name] = torch.from_numpy(a.astype(np.float64))
    return out


def check_supported(cfg):
    m = cfg["model"]
    mx = m["mixer"]
    why = []
    if mx["name"] != "full":
        why.append(f"model.mixer.name is {mx['name']} (this script rebuilds full)")
    if mx.get("causal") or mx.get("relative"):
        why.append("model.mixer causal or relative (PyTorch's layer has neither)")
    for key in ("funnel", "latents", "segment"):
        if m.get(key, 0):
            why.append(f"model.{key} is {m[key]}")
    if m.get("ffn", "dense") != "dense":
        why.append(f"model.ffn is {m['ffn']}")
    if m["pooling"] not in ("cls", "mean"):
        why.append(f"model.pooling is {m['pooling']} (cls or mean)")
    if cfg["task"]["name"] not in READERS:
        why.append(f"task {cfg['task']['name']} (valid: {', '.join(READERS)})")
    if why:
        raise BadInput("cannot rebuild: " + "; ".join(why))


# ---- the exported data, tokenised here ----

# The ListOps vocabulary of xformer-bench (src/tasks/listops.h): 0 padding, 1 unknown, digits
# 2..11, [MIN 12, [MAX 13, [MED 14, [SM 15, ] 16, ( 17, ) 18.
LISTOPS_IDS = {str(d): 2 + d for d in range(10)}
LISTOPS_IDS.update({"[MIN": 12, "[MAX": 13, "[MED": 14, "[SM": 15, "]": 16, "(": 17, ")": 18})


def read_listops(d, split, task):
    path = os.path.join(d, f"basic_{split}.tsv")
    docs, labels = [], []
    with open(path, encoding="ascii") as f:
        if f.readline().rstrip("\r\n") != "Source\tTarget":
            raise BadInput(f"{path}:1: expected the header Source<TAB>Target")
        for no, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            src, tgt = line.split("\t")
            words = src.split()
            if not task.get("parens", False):
                words = [w for w in words if w not in "()"]
            docs.append([[LISTOPS_IDS[w] for w in words]])
            labels.append(int(tgt))
    return docs, labels


def unescape(b):
    """The bytes of an escaped text field: \\\\, \\t, \\n, \\r, \\0."""
    out, i = bytearray(), 0
    table = {ord("\\"): 92, ord("t"): 9, ord("n"): 10, ord("r"): 13, ord("0"): 0}
    while i < len(b):
        if b[i] == 92:
            out.append(table[b[i + 1]])
            i += 2
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def read_text(d, split, task):
    path = os.path.join(d, f"text_{split}.tsv")
    docs, labels = [], []
    with open(path, "rb") as f:
        if f.readline() != b"label\ttext\n":
            raise BadInput(f"{path}:1: expected the header label<TAB>text")
        for line in f:
            label, text = line.rstrip(b"\n").split(b"\t")
            docs.append([[c + 1 for c in unescape(text)]])
            labels.append(int(label))
    return docs, labels


def read_retrieval(d, split, task):
    name = {"train": "train", "val": "eval", "test": "test"}[split]
    path = os.path.join(d, f"new_aan_pairs.{name}.tsv")
    docs, labels = [], []
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            label, _, _, t1, t2 = line.split(b"\t")
            cut = task.get("max_bytes", 4000)
            docs.append([[c + 1 for c in t1[:cut]], [c + 1 for c in t2[:cut]]])
            labels.append(int(float(label)))
    return docs, labels


def read_arrays(d, split, task):
    name = task["name"]
    x = np.load(os.path.join(d, f"{name}_{split}_inputs.npy"))
    y = np.load(os.path.join(d, f"{name}_{split}_targets.npy"))
    if x.dtype != np.int32 or y.dtype != np.int32 or x.ndim != 2 or y.shape != (x.shape[0],):
        raise BadInput(f"{d}: {name}_{split}_inputs/targets.npy: expected int32 (N, L) and (N,)")
    return [[row.tolist()] for row in x], y.tolist()


READERS = {"listops": read_listops, "text": read_text, "retrieval": read_retrieval,
           "image": read_arrays, "pathfinder": read_arrays}


def batch(docs, L, cls_id):
    """tokens (R, L) int64 and real-position mask (R, L) bool of a list of documents: CLS first
    when cls_id >= 0, the tokens cut to fit, padding 0."""
    tok = torch.zeros(len(docs), L, dtype=torch.long)
    real = torch.zeros(len(docs), L, dtype=torch.bool)
    for r, d in enumerate(docs):
        row = ([cls_id] if cls_id >= 0 else []) + list(d)
        row = row[:L]
        tok[r, :len(row)] = torch.tensor(row, dtype=torch.long)
        real[r, :len(row)] = True
    return tok, real


# ---- the model, from PyTorch's modules ----

def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def sinusoids(L, D):
    """pe[t, 2i] = sin(t / 10000^(2i/D)), pe[t, 2i+1] = cos(the same)."""
    pe = torch.zeros(L, D, dtype=torch.float64)
    t = torch.arange(L, dtype=torch.float64)[:, None]
    i = torch.arange(0, D, 2, dtype=torch.float64)
    angle = t / torch.pow(10000.0, i / D)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)[:, : D // 2]
    return pe


class Encoder(nn.Module):
    def __init__(self, cfg, vocab, classes, pairs):
        super().__init__()
        m = cfg["model"]
        self.L, self.D, self.pairs = m["max_len"], m["d_model"], pairs
        self.pooling, self.positions = m["pooling"], m["positions"]
        self.cls_id = vocab if self.pooling == "cls" else -1
        V = vocab + (1 if self.pooling == "cls" else 0)
        hidden = m["head_hidden"] or m["d_ff"]
        self.embed = nn.Embedding(V, self.D)
        self.pos = nn.Embedding(self.L, self.D) if self.positions == "learned" else None
        self.register_buffer("sinus", sinusoids(self.L, self.D))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(self.D, m["heads"], m["d_ff"], dropout=0.0,
                                       activation=gelu_tanh, layer_norm_eps=1e-6,
                                       batch_first=True, norm_first=True)
            for _ in range(m["layers"]))
        self.norm = nn.LayerNorm(self.D, eps=1e-6)
        hin = 4 * self.D if pairs else self.D
        self.head = nn.Sequential(nn.Linear(hin, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def load(self, ts, path):
        """Copies the checkpoint's tensors in; every tensor must be used, every shape match."""
        left = dict(ts)

        def put(param, name, zeros_if_absent=False):
            if name not in left:
                if zeros_if_absent:
                    param.data.zero_()
                    return
                raise BadInput(f"{path}: tensor {name} is missing: not this model's checkpoint")
            t = left.pop(name)
            if tuple(t.shape) != tuple(param.shape):
                raise BadInput(f"{path}: tensor {name} has shape {tuple(t.shape)}, the model "
                               f"expects {tuple(param.shape)}")
            param.data.copy_(t)

        put(self.embed.weight, "embed.tokens.weight")
        if self.pos is not None:
            put(self.pos.weight, "embed.positions.weight")
        for l, layer in enumerate(self.layers):
            p = f"blocks.{l}."
            put(layer.norm1.weight, p + "norm1.weight")
            put(layer.norm1.bias, p + "norm1.bias")
            put(layer.self_attn.in_proj_weight, p + "mixer.qkv.weight")
            put(layer.self_attn.in_proj_bias, p + "mixer.qkv.bias", True)
            put(layer.self_attn.out_proj.weight, p + "mixer.out.weight")
            put(layer.self_attn.out_proj.bias, p + "mixer.out.bias", True)
            put(layer.norm2.weight, p + "norm2.weight")
            put(layer.norm2.bias, p + "norm2.bias")
            put(layer.linear1.weight, p + "ffn.fc1.weight")
            put(layer.linear1.bias, p + "ffn.fc1.bias")
            put(layer.linear2.weight, p + "ffn.fc2.weight")
            put(layer.linear2.bias, p + "ffn.fc2.bias")
        put(self.norm.weight, "norm.weight")
        put(self.norm.bias, "norm.bias")
        put(self.head[0].weight, "head.fc1.weight")
        put(self.head[0].bias, "head.fc1.bias")
        put(self.head[2].weight, "head.fc2.weight")
        put(self.head[2].bias, "head.fc2.bias")
        if left:
            raise BadInput(f"{path}: tensors {', '.join(sorted(left))} are not parameters of the "
                           "model this script builds")

    def encode(self, tok, real):
        x = self.embed(tok)
        if self.pos is not None:
            x = x + self.pos.weight[None, : tok.shape[1]]
        elif self.positions == "sinusoidal":
            x = x + self.sinus[None, : tok.shape[1]]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~real)
        x = self.norm(x)
        if self.pooling == "cls":
            return x[:, 0]
        w = real.to(x.dtype)[:, :, None]
        return (x * w).sum(1) / w.sum(1)

    def forward(self, docs):
        """Logits of a list of examples (each a list of 1 or 2 documents)."""
        flat = [d for ex in docs for d in ex]
        tok, real = batch(flat, self.L, self.cls_id)
        v = self.encode(tok, real)
        if self.pairs:
            u, w = v[0::2], v[1::2]
            v = torch.cat([u, w, u * w, u - w], dim=1)
        return self.head(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report")
    ap.add_argument("data_dir", help="the directory `xformer-bench data ... --export` wrote")
    ap.add_argument("--logits", help="the logits of `xformer-bench eval REPORT --logits FILE`")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64, help="examples per forward")
    a = ap.parse_args()
    torch.set_num_threads(max(1, a.threads))
    try:
        with open(a.report) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"{a.report}: cannot read the report: {e}")
    cfg = rep["config"]
    check_supported(cfg)
    task = cfg["task"]
    ds = rep["dataset"]
    pairs = task["name"] == "retrieval"
    ckpt = os.path.join(os.path.dirname(a.report), rep["run_id"] + ".safetensors")
    model = Encoder(cfg, ds["vocab_size"], ds["n_classes"], pairs).double().eval()
    model.load(read_safetensors(ckpt), ckpt)
    try:
        docs, labels = READERS[task["name"]](a.data_dir, a.split, task)
    except (OSError, KeyError, ValueError) as e:
        raise BadInput(f"{a.data_dir}: cannot read the exported {a.split} split: {e!r}")
    if a.split == "val" and cfg["train"]["eval_batches"] > 0:  # the batches run validated on
        n = cfg["train"]["eval_batches"] * cfg["train"]["batch_size"]
        docs, labels = docs[:n], labels[:n]
    with torch.no_grad():
        logits = torch.cat([model(docs[i:i + a.batch]) for i in range(0, len(docs), a.batch)])
    pred = logits.argmax(1)
    acc = float((pred == torch.tensor(labels)).double().mean())
    said = rep["test"]["accuracy"] if a.split == "test" else rep["training"]["best_val_accuracy"]
    m = cfg["model"]
    print(f"torch_encoder: {rep['run_id']}: {task['name']}, {m['layers']} layers of width "
          f"{m['d_model']}, {m['pooling']} pooling, {m['positions']} positions; "
          f"{len(labels)} {a.split} examples from {a.data_dir}")
    failed = []
    dacc = abs(acc - said) * 100.0
    print(f"accuracy: torch {100 * acc:.2f} %, report {100 * said:.2f} %: difference "
          f"{dacc:.3f} points (limit {ACC_LIMIT})")
    if not dacc <= ACC_LIMIT:
        failed.append("accuracy")
    if a.logits:
        ours = np.load(a.logits)
        if ours.shape != tuple(logits.shape):
            raise BadInput(f"{a.logits}: shape {ours.shape}, expected {tuple(logits.shape)} "
                           f"(examples, classes) of the {a.split} split")
        diff = float(np.abs(ours.astype(np.float64) - logits.numpy()).max())
        top = float(np.abs(ours).max())
        print(f"logits: max |torch - xformer-bench| = {diff:.3g} absolute over {ours.shape[0]}x"
              f"{ours.shape[1]} (max |logit| {top:.3g}; limit {LOGIT_LIMIT:g} absolute)")
        if not diff <= LOGIT_LIMIT:
            failed.append("logits")
    else:
        print("logits: not compared (give --logits FILE.npy from xformer-bench eval)")
    if failed:
        print(f"FAIL: {' and '.join(failed)} beyond the limit")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BadInput as e:
        print(f"torch_encoder.py: {e}", file=sys.stderr)
        sys.exit(2)
