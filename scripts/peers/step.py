#!/usr/bin/python3
"""Times training steps of a PyTorch encoder shaped as xformer-bench's, with one of the mixers of
mechanisms.py: token embedding + sinusoidal positions, dropout; pre-LayerNorm blocks [mixer,
dropout, residual; LayerNorm, Linear, GELU (tanh), dropout, Linear, dropout, residual]; final
LayerNorm, CLS pooling, a Linear-ReLU-Linear head, cross-entropy; gradient clipping at 1 and
AdamW. A step is forward, loss.backward() and the optimizer step; it prints one JSON line:
the median step time after the warm-up, and the process's peak RSS (the interpreter and
PyTorch's own libraries included, about 200-300 MiB before any tensor).

    /usr/bin/python3 scripts/peers/step.py --mixer linear --length 4096 [--batch 2]
        [--threads 2] [--steps 10] [--warmup 2] [--d-model 64] [--heads 2] [--layers 2]
        [--d-ff 128] [--max-memory MIB]

The batch is random tokens of ListOps's vocabulary (19 ids, 0 the padding, and the CLS token) with random real lengths between a quarter
of the length and all of it (the padding masked), 10 classes. Exit 77 when PyTorch is missing.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:
    print(f"step.py: PyTorch is not installed ({e.name} cannot be imported; Debian: apt-get "
          "install python3-torch)", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mechanisms import MECHANISMS  # noqa: E402


def sinusoids(L, D):
    pos = torch.arange(L, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, D, 2, dtype=torch.float32) * (-math.log(10000.0) / D))
    pe = torch.zeros(L, D)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class Block(nn.Module):
    def __init__(self, mixer, d, f, p):
        super().__init__()
        self.ln1, self.mixer, self.ln2 = nn.LayerNorm(d, eps=1e-6), mixer, nn.LayerNorm(d, eps=1e-6)
        self.fc1, self.fc2, self.drop = nn.Linear(d, f), nn.Linear(f, d), nn.Dropout(p)

    def forward(self, x, mask):
        x = x + self.drop(self.mixer(self.ln1(x), mask))
        h = self.drop(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))
        return x + self.drop(self.fc2(h))


class Encoder(nn.Module):
    def __init__(self, mixer, vocab, classes, L, d, heads, layers, f, p=0.1):
        super().__init__()
        self.emb, self.drop = nn.Embedding(vocab + 1, d), nn.Dropout(p)  # + the CLS token
        self.register_buffer("pos", sinusoids(L, d))
        self.blocks = nn.ModuleList(Block(MECHANISMS[mixer](d, heads, L), d, f, p)
                                    for _ in range(layers))
        self.lnf = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Sequential(nn.Linear(d, f), nn.ReLU(), nn.Linear(f, classes))

    def forward(self, tokens, mask):
        x = self.drop(self.emb(tokens) + self.pos)
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.lnf(x)[:, 0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixer", required=True, choices=sorted(MECHANISMS))
    ap.add_argument("--length", type=int, required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=128)
    ap.add_argument("--max-memory", type=int, default=4096,
                    help="skip full when its L x L scores (forward, softmax, their gradients) "
                         "would need more MiB than this")
    a = ap.parse_args()
    if a.warmup >= a.steps:
        ap.error(f"--warmup {a.warmup} leaves no step of --steps {a.steps} to time")
    out = {"mixer": a.mixer, "length": a.length, "batch": a.batch, "threads": a.threads,
           "torch": torch.__version__}
    scores = 4 * a.batch * a.heads * a.length ** 2 * 4 / 2 ** 20
    if a.mixer == "full" and scores > a.max_memory:
        out.update(status="skipped", reason=f"its L x L scores need about {scores:.0f} MiB, "
                   f"above --max-memory {a.max_memory}")
        print(json.dumps(out))
        return 0
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    vocab, classes, L = 19, 10, a.length  # ListOps: 19 token ids, 10 classes
    model = Encoder(a.mixer, vocab, classes, L, a.d_model, a.heads, a.layers, a.d_ff)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    times = []
    for step in range(a.steps):
        lengths = torch.randint(L // 4, L + 1, (a.batch,))
        mask = torch.arange(L)[None, :] < lengths[:, None]
        tokens = torch.randint(1, vocab, (a.batch, L)).masked_fill(~mask, 0)
        tokens[:, 0] = vocab  # CLS
        labels = torch.randint(0, classes, (a.batch,))
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(tokens, mask), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        if not math.isfinite(loss.item()):
            out.update(status="failed", reason=f"the loss is {loss.item()} at step {step + 1}")
            print(json.dumps(out))
            return 3
    out.update(status="ok", step_s_median=statistics.median(times[a.warmup:]),
               peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               parameters=sum(p.numel() for p in model.parameters()))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
