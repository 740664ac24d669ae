#!/usr/bin/python3
"""Cross-check of xformer-bench's `full` and `mamba` encoders against code we did not write.

Rebuilds the model of a report from its resolved config and its safetensors checkpoint with
nn.Embedding, nn.TransformerEncoderLayer (norm_first=True: pre-LayerNorm blocks; GELU with the
tanh approximation; LayerNorm eps 1e-6; the packed Q/K/V weight is nn.MultiheadAttention's
in_proj_weight, zero biases where the model has none), a final nn.LayerNorm, CLS or mean pooling
over the real positions, or none (the head on every position, for the sequence tasks mqar,
selcopy and needle), and the MLP head (Linear, ReLU, Linear); the retrieval task's dual encoder
feeds [u, v, u*v, u - v] of the two documents to the head. For `mamba` the blocks are the same
pre-LayerNorm blocks with the attention replaced by the authors' Mamba (class Mamba below: the
non-fused path of state-spaces/mamba's Mamba.forward with selective_scan_ref; bidirectional,
Vision Mamba's bimamba_type="v2"), each example run at its real length (their code has no
padding mask). It reads the split from the files `xformer-bench data TASK --export DIR` wrote
(LRA's formats, or NumPy arrays; it tokenises the text formats itself), evaluates in float64
and compares

  * its accuracy with the report's (test.accuracy, or training.best_val_accuracy with
    --split val; per target position for a sequence task): the difference must be at most 0.1
    points;
  * its logits with those of `xformer-bench eval REPORT --logits FILE.npy` ((N, C), or (N, L, C)
    for a sequence task, compared at every real position): the largest absolute difference must
    be at most 1e-4 (absolute, in logit units; the largest |logit| is printed beside it).

    /usr/bin/python3 scripts/reference/torch_encoder.py REPORT.json DATA_DIR [--logits FILE.npy]
        [--split test|val] [--threads N]

Exit status: 0 both within their limits, 1 a limit exceeded, 2 bad input (a report this script
cannot rebuild, missing or malformed files), 77 PyTorch (or NumPy) is not installed: the check is
skipped (Debian: apt-get install python3-torch).
"""
import argparse
import json
import math
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
    if mx["name"] not in MIXERS:
        why.append(f"model.mixer.name is {mx['name']} (this script rebuilds "
                   f"{' and '.join(MIXERS)})")
    if mx["name"] == "full" and (mx.get("causal") or mx.get("relative")):
        why.append("model.mixer causal or relative (PyTorch's layer has neither)")
    for key in ("funnel", "latents", "segment"):
        if m.get(key, 0):
            why.append(f"model.{key} is {m[key]}")
    if m.get("ffn", "dense") != "dense":
        why.append(f"model.ffn is {m['ffn']}")
    if m["pooling"] not in ("cls", "mean", "none"):
        why.append(f"model.pooling is {m['pooling']} (cls, mean or none)")
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


def read_sequences(d, split, task):
    """A sequence task's arrays: inputs (N, L) padded with 0, targets (N, L) with -1 where there
    is none. Each example's documents and its targets are cut to its real length."""
    name = task["name"]
    x = np.load(os.path.join(d, f"{name}_{split}_inputs.npy"))
    y = np.load(os.path.join(d, f"{name}_{split}_targets.npy"))
    if x.dtype != np.int32 or y.dtype != np.int32 or x.ndim != 2 or y.shape != x.shape:
        raise BadInput(f"{d}: {name}_{split}_inputs/targets.npy: expected int32 (N, L) and (N, L)")
    n = (x != 0).sum(1)
    return [[row[:k].tolist()] for row, k in zip(x, n)], [t[:k].tolist() for t, k in zip(y, n)]


READERS = {"listops": read_listops, "text": read_text, "retrieval": read_retrieval,
           "image": read_arrays, "pathfinder": read_arrays, "mqar": read_sequences,
           "selcopy": read_sequences, "needle": read_sequences}
SEQUENCE_TASKS = ("mqar", "selcopy", "needle")


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


# ---- Mamba, from the authors' code ----

def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """state-spaces/mamba mamba_ssm/ops/selective_scan_interface.py, selective_scan_ref, for a
    real A and input-dependent B, C (B, N, L), without return_last_state; its casts to float32
    are left out so that the check runs in float64, and the loop reads the steps through
    unbind(2) rather than [:, :, i] (the same values; autograd then stacks their gradients once
    instead of filling a zero tensor of the whole size at every step, which made training 4
    times slower).

    u, delta, z: (B, D, L); A: (D, N); D, delta_bias: (D,). Returns (B, D, L)."""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    ys = []
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    for dA, dBu, Ci in zip(deltaA.unbind(2), deltaB_u.unbind(2), C.unbind(2)):
        x = dA * x + dBu
        y = torch.einsum("bdn,bn->bd", x, Ci)
        ys.append(y)
    y = torch.stack(ys, dim=2)  # (batch dim L)
    out = y if D is None else y + u * D[:, None]
    if z is not None:
        out = out * F.silu(z)
    return out


class Mamba(nn.Module):
    """The Mamba block of state-spaces/mamba, mamba_ssm/modules/mamba_simple.py: __init__ as
    there (its initialisation included) and forward as its path without the fused kernels
    (use_fast_path=False, no causal_conv1d, no inference cache), einops' rearrange written as
    permute/reshape. bimamba_type="v2" adds the backward branch of hustvl/Vim's version of the
    file (mamba-1p1p1/mamba_ssm/modules/mamba_simple.py): conv1d_b, x_proj_b, dt_proj_b, A_b_log
    and D_b run the same inner function on xz.flip(-1) (mamba_inner_fn_no_out_proj: conv, SiLU,
    x_proj, dt_proj, selective scan with D and the z gate), whose output is flipped back, added
    to the forward branch's, divided by 2 if if_divide_out, and projected by the shared out_proj.
    """

    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank="auto", dt_min=0.001,
                 dt_max=0.1, dt_init="random", dt_scale=1.0, dt_init_floor=1e-4, conv_bias=True,
                 bias=False, bimamba_type="none", if_divide_out=False):
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(self.expand * self.d_model)
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank == "auto" else dt_rank
        self.bimamba_type = bimamba_type
        self.if_divide_out = if_divide_out
        self.in_proj = nn.Linear(self.d_model, self.d_inner * 2, bias=bias)
        self.act = nn.SiLU()
        # one branch (the forward one; Vim's v2 adds a second with the suffix _b)
        for sfx in ("", "_b") if bimamba_type == "v2" else ("",):
            conv = nn.Conv1d(in_channels=self.d_inner, out_channels=self.d_inner,
                             bias=conv_bias, kernel_size=d_conv, groups=self.d_inner,
                             padding=d_conv - 1)
            x_proj = nn.Linear(self.d_inner, self.dt_rank + self.d_state * 2, bias=False)
            dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
            A = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
            A_log = nn.Parameter(torch.log(A))  # S4D real initialization
            A_log._no_weight_decay = True
            D = nn.Parameter(torch.ones(self.d_inner))  # D "skip" parameter
            D._no_weight_decay = True
            if sfx == "":
                # Initialize special dt projection to preserve variance at initialization
                dt_init_std = self.dt_rank**-0.5 * dt_scale
                if dt_init == "constant":
                    nn.init.constant_(dt_proj.weight, dt_init_std)
                elif dt_init == "random":
                    nn.init.uniform_(dt_proj.weight, -dt_init_std, dt_init_std)
                else:
                    raise NotImplementedError
                # Initialize dt bias so that F.softplus(dt_bias) is between dt_min and dt_max
                dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                               + math.log(dt_min)).clamp(min=dt_init_floor)
                # Inverse of softplus: https://github.com/pytorch/pytorch/issues/72759
                inv_dt = dt + torch.log(-torch.expm1(-dt))
                with torch.no_grad():
                    dt_proj.bias.copy_(inv_dt)
                # Our initialization would set all Linear.bias to zero, need to mark this one
                # as _no_reinit
                dt_proj.bias._no_reinit = True
            setattr(self, "conv1d" + sfx, conv)
            setattr(self, "x_proj" + sfx, x_proj)
            setattr(self, "dt_proj" + sfx, dt_proj)
            setattr(self, "A" + sfx + "_log", A_log)
            setattr(self, "D" + sfx, D)
        self.out_proj = nn.Linear(self.d_inner, self.d_model, bias=bias)

    def inner(self, xz, sfx):
        """One branch from xz (B, 2E, L) to the gated scan output (B, E, L): the non-fused path
        of Mamba.forward up to out_proj (and Vim's mamba_inner_fn_no_out_proj)."""
        conv, x_proj, dt_proj = (getattr(self, n + sfx) for n in ("conv1d", "x_proj", "dt_proj"))
        A = -torch.exp(getattr(self, "A" + sfx + "_log"))  # (d_inner, d_state)
        batch, _, seqlen = xz.shape
        x, z = xz.chunk(2, dim=1)
        # Compute short convolution
        x = self.act(conv(x)[..., :seqlen])
        x_dbl = x_proj(x.permute(0, 2, 1).reshape(batch * seqlen, -1))  # (bl d)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = dt_proj.weight @ dt.t()
        dt = dt.reshape(-1, batch, seqlen).permute(1, 0, 2)  # d (b l) -> b d l
        B = B.reshape(batch, seqlen, -1).permute(0, 2, 1)  # (b l) dstate -> b dstate l
        C = C.reshape(batch, seqlen, -1).permute(0, 2, 1)
        return selective_scan_ref(x, dt, A, B, C, getattr(self, "D" + sfx), z=z,
                                  delta_bias=dt_proj.bias, delta_softplus=True)

    def forward(self, hidden_states):
        """hidden_states: (B, L, D); returns the same shape."""
        batch, seqlen, dim = hidden_states.shape
        # We do matmul and transpose BLH -> HBL at the same time
        xz = self.in_proj.weight @ hidden_states.reshape(batch * seqlen, dim).t()
        xz = xz.reshape(-1, batch, seqlen).permute(1, 0, 2)  # d (b l) -> b d l
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias[:, None]
        y = self.inner(xz, "")
        if self.bimamba_type == "v2":
            y = y + self.inner(xz.flip([-1]), "_b").flip([-1])
            if self.if_divide_out:
                y = y / 2
        return F.linear(y.permute(0, 2, 1), self.out_proj.weight, self.out_proj.bias)


def mamba_of(cfg):
    """Our mamba options as the authors' constructor arguments."""
    mx, D = cfg["model"]["mixer"], cfg["model"]["d_model"]
    return Mamba(D, d_state=mx["d_state"], d_conv=mx["d_conv"], expand=mx["expand"],
                 dt_rank=mx["dt_rank"] or "auto", dt_min=mx["dt_min"], dt_max=mx["dt_max"],
                 dt_scale=mx["dt_scale"], dt_init_floor=mx["dt_init_floor"],
                 conv_bias=mx["conv_bias"], bias=mx["bias"],
                 bimamba_type="v2" if mx["bidirectional"] else "none",
                 if_divide_out=mx["divide_out"])


class Block(nn.Module):
    """A pre-LayerNorm block around another token mixer, as TransformerEncoderLayer with
    norm_first=True: x + mixer(norm1(x)), then + linear2(gelu_tanh(linear1(norm2(x))))."""

    def __init__(self, mixer, D, F_):
        super().__init__()
        self.norm1 = nn.LayerNorm(D, eps=1e-6)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(D, eps=1e-6)
        self.linear1 = nn.Linear(D, F_)
        self.linear2 = nn.Linear(F_, D)

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.linear2(gelu_tanh(self.linear1(self.norm2(x))))


MIXERS = ("full", "mamba")


class Encoder(nn.Module):
    def __init__(self, cfg, vocab, classes, pairs):
        super().__init__()
        m = cfg["model"]
        self.L, self.D, self.pairs = m["max_len"], m["d_model"], pairs
        self.pooling, self.positions = m["pooling"], m["positions"]
        self.cls_id = vocab if self.pooling == "cls" else -1
        V = vocab + (1 if self.pooling == "cls" else 0)
        hidden = m["head_hidden"] or m["d_ff"]
        self.mixer = m["mixer"]["name"]
        self.embed = nn.Embedding(V, self.D)
        self.pos = nn.Embedding(self.L, self.D) if self.positions == "learned" else None
        self.register_buffer("sinus", sinusoids(self.L, self.D))
        if self.mixer == "full":
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(self.D, m["heads"], m["d_ff"], dropout=0.0,
                                           activation=gelu_tanh, layer_norm_eps=1e-6,
                                           batch_first=True, norm_first=True)
                for _ in range(m["layers"]))
        else:
            self.layers = nn.ModuleList(Block(mamba_of(cfg), self.D, m["d_ff"])
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
            if self.mixer == "full":
                put(layer.self_attn.in_proj_weight, p + "mixer.qkv.weight")
                put(layer.self_attn.in_proj_bias, p + "mixer.qkv.bias", True)
                put(layer.self_attn.out_proj.weight, p + "mixer.out.weight")
                put(layer.self_attn.out_proj.bias, p + "mixer.out.bias", True)
            else:  # the authors' names; a depthwise Conv1d's weight is (E, 1, K), ours (E, K)
                for name, param in layer.mixer.named_parameters():
                    if name.startswith("conv1d") and name.endswith(".weight"):
                        param = param.data[:, 0]
                    put(param, p + "mixer." + name)
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

    def blocks(self, tok, real):
        """The final LayerNorm's output (R, L, D) at the real positions (padding: whatever
        the blocks leave there)."""
        x = self.embed(tok)
        if self.pos is not None:
            x = x + self.pos.weight[None, : tok.shape[1]]
        elif self.positions == "sinusoidal":
            x = x + self.sinus[None, : tok.shape[1]]
        if self.mixer == "full":
            for layer in self.layers:
                x = layer(x, src_key_padding_mask=~real)
            return self.norm(x)
        # the authors' Mamba has no padding mask: each row runs at its real length (rows of one
        # length together; the real tokens come first)
        out = torch.zeros_like(x)
        n = real.sum(1)
        for k in n.unique().tolist():
            rows = (n == k).nonzero()[:, 0]
            h = x[rows, :k]
            for layer in self.layers:
                h = layer(h)
            out[rows, :k] = h
        return self.norm(out)

    def forward(self, docs):
        """Logits of a list of examples (each a list of 1 or 2 documents): (R, C), or (R, L, C)
        with pooling none, NaN at the padding."""
        flat = [d for ex in docs for d in ex]
        return self.logits(*batch(flat, self.L, self.cls_id))

    def logits(self, tok, real):
        """forward's logits of a batch of token ids (R, L) and its real positions (R, L)."""
        x = self.blocks(tok, real)
        if self.pooling == "none":
            return self.head(x).masked_fill(~real[:, :, None], float("nan"))
        if self.pooling == "cls":
            v = x[:, 0]
        else:
            w = real.to(x.dtype)[:, :, None]
            v = (x * w).sum(1) / w.sum(1)
        if self.pairs:
            u, w = v[0::2], v[1::2]
            v = torch.cat([u, w, u * w, u - w], dim=1)
        return self.head(v)


def accuracy(logits, labels):
    """The fraction of labels the logits' argmax gives: per example ((N, C) logits, labels a
    list), or per target position ((N, L, C) logits, labels a list of each example's targets,
    -1 where there is none)."""
    if logits.dim() == 2:
        return float((logits.argmax(1) == torch.tensor(labels)).double().mean())
    tgt = torch.full(logits.shape[:2], -1, dtype=torch.long)
    for i, t in enumerate(labels):
        tgt[i, :len(t)] = torch.tensor(t, dtype=torch.long)
    has = tgt >= 0
    return float((logits.argmax(2) == tgt)[has].double().mean())


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
    acc = accuracy(logits, labels)
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
            what = "(examples, positions, classes)" if logits.dim() == 3 else "(examples, classes)"
            raise BadInput(f"{a.logits}: shape {ours.shape}, expected {tuple(logits.shape)} "
                           f"{what} of the {a.split} split")
        theirs = logits.numpy()
        real = ~np.isnan(theirs)  # a sequence task's padding is NaN here: not compared
        diff = float(np.abs(ours.astype(np.float64) - theirs)[real].max())
        top = float(np.abs(ours[real]).max())
        over = "x".join(str(n) for n in ours.shape)
        if logits.dim() == 3:
            over = (f"{ours.shape[0]} examples' {int(real[:, :, 0].sum())} real positions x "
                    f"{ours.shape[2]}")
        print(f"logits: max |torch - xformer-bench| = {diff:.3g} absolute over {over} "
              f"(max |logit| {top:.3g}; limit {LOGIT_LIMIT:g} absolute)")
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
