#!/usr/bin/python3
"""Trains the PyTorch rebuild of a report's encoder (torch_encoder.py) the way `run` trains ours.

The model is torch_encoder.Encoder for the report's resolved config (for `mamba`, the authors'
Mamba block); the data the files `xformer-bench data CONFIG --export DIR` wrote. Training follows
the report's train section: AdamW (torch.optim.AdamW, lr, betas, eps) with weight decay on the
tensors our run decays (the 2-D weights of the linear layers, convolutions and head; not the
embeddings, biases, norms, A_log or D), the learning rate of src/train/schedule.c at optimizer
step s = 1, 2, ... (linear warm-up to lr over `warmup` steps, then cosine to 0 at `steps`), the
global gradient norm clipped to clip_norm, batch_size examples per step from a fresh random
permutation of the training split every epoch, the loss the mean cross-entropy over the positions
with a target (per example for a classification task). float32, dropout 0 (it refuses others).

The initial weights: --init FILE.safetensors loads them all (a step-0 checkpoint of ours: `run`
with train.steps=1, train.warmup=0, whose one step has learning rate 0). --mixer-init torch then
draws the mixers' tensors again as the authors' code does (Mamba.__init__, then mamba_ssm's
_init_weights(n_layer): Linear biases other than dt_proj's zeroed, out_proj kaiming-uniform over
sqrt(n_layer), the scale MambaLMHeadModel's last call of it leaves), from
torch.manual_seed(--seed); every other tensor stays as loaded.

Prints the mean training loss of every --every steps, the validation accuracy every eval_every
steps, and the test accuracy of the parameters with the best validation accuracy (as `run`) and
of the last ones; --json FILE writes the same as JSON.

--first-step FILE.safetensors trains nothing: it checks our gradient against autograd's through
the authors' code. FILE is the checkpoint after one step of ours from --init's weights, with the
whole training split as its batch (task.num_train = train.batch_size), train.schedule constant,
train.lr 1, train.clip_norm 0, train.weight_decay 0 and a small train.eps (1e-4): AdamW's first
step moves each parameter by d = a*g/(b*|g| + eps) (a, b: src/train/adamw.c's bias corrections
with its float32 constants, both within 1e-5 of 1), so our gradient is g = eps*d/(a - b*|d|).
It prints, per tensor, the largest difference from autograd's gradient (float64, same batch)
over the tensor's largest gradient; exit 1 when one exceeds 1e-3.

    /usr/bin/python3 scripts/reference/torch_train.py REPORT.json DATA_DIR --init FILE.safetensors
        [--mixer-init ours|torch] [--seed S] [--steps N] [--every 100] [--threads 1] [--json FILE]
        [--first-step FILE.safetensors]

Exit status: 0, 1 --first-step found a gradient beyond its limit, 2 bad input, 77 PyTorch (or
NumPy) is not installed.
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import torch_encoder as te  # noqa: E402 (exits 77 without PyTorch)
from torch_encoder import BadInput, F, np, torch  # noqa: E402


def lr_at(cfg, step):
    """src/train/schedule.c: the learning rate of optimizer step `step` (1, 2, ...)."""
    t = cfg["train"]
    lr, warmup, steps = t["lr"], t["warmup"], t["steps"]
    if warmup > 0 and step <= warmup:
        return lr * step / warmup
    span = steps - warmup
    x = min((step - warmup) / span, 1.0) if span > 0 else 1.0
    kind = t["schedule"]
    if kind == "constant":
        return lr
    if kind == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * x))
    if kind == "linear":
        return lr * (1.0 - x)
    return lr * math.sqrt(warmup / step) if warmup > 0 else lr / math.sqrt(step)  # rsqrt


def decays(name, p):
    """Whether our run applies weight decay to the tensor: the weights of the linear layers, of
    the convolutions and of the head (the `decay` flags of src/model/encoder.c and
    src/mixers/mamba.c); not the embeddings, biases, norms, A_log or D."""
    return name.endswith(".weight") and p.dim() >= 2 and not name.startswith(("embed.", "pos."))


def torch_mixer_init(model, n_layer):
    """The mixers' tensors drawn again by the authors' code: a fresh Mamba (its __init__), then
    mamba_ssm/models/mixer_seq_simple.py's _init_weights on its modules."""
    for layer in model.layers:
        fresh = te.mamba_of(model.cfg)
        for module in fresh.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                if not getattr(module.bias, "_no_reinit", False):
                    torch.nn.init.zeros_(module.bias)
        torch.nn.init.kaiming_uniform_(fresh.out_proj.weight, a=math.sqrt(5))
        with torch.no_grad():
            fresh.out_proj.weight /= math.sqrt(n_layer)
        layer.mixer.load_state_dict(fresh.state_dict())


GRAD_LIMIT = 1e-3  # of the tensor's largest |gradient|


def first_step(model, cfg, init, after, train):
    """--first-step: our gradient, recovered from the parameters after our first step, against
    autograd's. Returns the exit status."""
    t = cfg["train"]
    if t["schedule"] != "constant" or t["clip_norm"] != 0 or t["weight_decay"] != 0:
        raise BadInput("--first-step: the report's run must have train.schedule constant, "
                       "train.clip_norm 0 and train.weight_decay 0")
    if train[0].shape[0] != t["batch_size"]:
        raise BadInput(f"--first-step: the training split has {train[0].shape[0]} examples, the "
                       f"batch {t['batch_size']}: the first batch must be the whole split")
    f = np.float32  # src/train/adamw.c: m^ = (1 - b1) g c1, v^ = (1 - b2) g^2 c2 in float32
    b1, b2 = f(t["beta1"]), f(t["beta2"])
    a = float(f(f(1) - b1) * f(1 / (1 - t["beta1"])))
    b = float(np.sqrt(f(f(1) - b2) * f(1 / (1 - t["beta2"]))))
    model.double()
    tok, real, tgt = train
    lg = model.logits(tok, real)
    has = tgt >= 0
    loss = F.cross_entropy(lg[has], tgt[has])
    loss.backward()
    p0, p1 = te.read_safetensors(init), te.read_safetensors(after)
    if p0.keys() != p1.keys():
        raise BadInput(f"{after}: not a checkpoint of {init}'s model")
    ours = te.Encoder(cfg, model.embed.num_embeddings, model.head[2].out_features, False)
    ours.double().load({k: t["eps"] * (p0[k] - p1[k]) / (a * t["lr"] - b * (p0[k] - p1[k]).abs())
                        for k in p0}, after)
    print(f"first step: loss {float(loss):.6f} on the {tok.shape[0]} training examples; our "
          f"gradient from {after} against autograd's")
    worst = 0.0
    for (name, p), (_, g) in zip(model.named_parameters(), ours.named_parameters()):
        top = float(p.grad.abs().max())
        rel = float((p.grad - g.data).abs().max()) / top if top > 0 else 0.0
        worst = max(worst, rel)
        print(f"  {name:34s} max |g| {top:.3e}  max |ours - autograd| / max |g| {rel:.1e}")
    print(f"{'PASS' if worst <= GRAD_LIMIT else 'FAIL'}: largest {worst:.1e} (limit "
          f"{GRAD_LIMIT:g})")
    return 0 if worst <= GRAD_LIMIT else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report")
    ap.add_argument("data_dir")
    ap.add_argument("--init", required=True, help="the safetensors file of the initial weights")
    ap.add_argument("--mixer-init", choices=("ours", "torch"), default="ours")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, help="default: the report's train.steps")
    ap.add_argument("--every", type=int, default=100, help="steps per mean training loss")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the curve and accuracies here")
    ap.add_argument("--first-step", metavar="FILE",
                    help="check our first step's gradient instead of training (see above)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, a.threads))
    torch.manual_seed(a.seed)
    try:
        with open(a.report) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"{a.report}: cannot read the report: {e}")
    cfg = rep["config"]
    te.check_supported(cfg)
    if cfg["model"]["dropout"] != 0:
        raise BadInput(f"{a.report}: model.dropout is {cfg['model']['dropout']} (this script "
                       "trains without dropout)")
    if a.steps:
        cfg["train"]["steps"] = a.steps
    task, ds, t = cfg["task"], rep["dataset"], cfg["train"]
    if task["name"] not in te.SEQUENCE_TASKS:
        raise BadInput(f"task {task['name']}: this script trains the sequence tasks "
                       f"({', '.join(te.SEQUENCE_TASKS)})")
    model = te.Encoder(cfg, ds["vocab_size"], ds["n_classes"], False)
    model.cfg = cfg
    model.load(te.read_safetensors(a.init), a.init)  # float64 tensors, copied into float32
    if a.mixer_init == "torch":
        if cfg["model"]["mixer"]["name"] != "mamba":
            raise BadInput("--mixer-init torch: the mixer is not mamba")
        torch_mixer_init(model, cfg["model"]["layers"])

    def split(name):
        """Token ids, real positions and targets (-1: none), each (N, L)."""
        docs, labels = te.READERS[task["name"]](a.data_dir, name, task)
        tok, real = te.batch([d[0] for d in docs], model.L, -1)
        tgt = torch.full(tok.shape, -1, dtype=torch.long)
        for i, y in enumerate(labels):
            tgt[i, :len(y)] = torch.tensor(y, dtype=torch.long)
        return tok, real, tgt

    try:
        train, val, test = split("train"), split("val"), split("test")
    except (OSError, KeyError, ValueError) as e:
        raise BadInput(f"{a.data_dir}: cannot read the exported splits: {e!r}")
    if a.first_step:
        return first_step(model, cfg, a.init, a.first_step, train)

    def evaluate(data):
        tok, real, tgt = data
        with torch.no_grad():
            right = n = 0
            for i in range(0, tok.shape[0], 256):
                lg = model.logits(tok[i:i + 256], real[i:i + 256])
                y = tgt[i:i + 256]
                has = y >= 0
                right += int((lg.argmax(2) == y)[has].sum())
                n += int(has.sum())
        return right / n

    groups = [{"params": [], "weight_decay": t["weight_decay"]},
              {"params": [], "weight_decay": 0.0}]
    for name, p in model.named_parameters():
        groups[0 if decays(name, p) else 1]["params"].append(p)
    opt = torch.optim.AdamW(groups, lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])
    params = [p for g in groups for p in g["params"]]
    gen = torch.Generator().manual_seed(a.seed)
    N, B = train[0].shape[0], t["batch_size"]
    perm, pos = torch.randperm(N, generator=gen), 0
    curve, evals, window, best, best_acc = [], [], [], None, -1.0
    t0 = time.time()
    print(f"torch_train: {rep['run_id']}: {task['name']}, {cfg['model']['mixer']['name']}, "
          f"{t['steps']} steps of {B}, lr {t['lr']} ({t['schedule']}, warm-up {t['warmup']}), "
          f"init {a.init} (mixers: {a.mixer_init}), seed {a.seed}", flush=True)
    for step in range(1, t["steps"] + 1):
        if pos + B > N:
            perm, pos = torch.randperm(N, generator=gen), 0
        idx = perm[pos:pos + B]
        pos += B
        tok, real, tgt = train[0][idx], train[1][idx], train[2][idx]
        lg = model.logits(tok, real)
        has = tgt >= 0
        loss = F.cross_entropy(lg[has], tgt[has])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t["clip_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, t["clip_norm"])
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        opt.step()
        window.append(float(loss))
        if step % a.every == 0:
            curve.append({"step": step, "train_loss": sum(window) / len(window)})
            window = []
            print(f"step {step:5d}  train loss {curve[-1]['train_loss']:.4f}  "
                  f"({time.time() - t0:.0f} s)", flush=True)
        if step % t["eval_every"] == 0 or step == t["steps"]:
            acc = evaluate(val)
            evals.append({"step": step, "val_accuracy": acc})
            print(f"step {step:5d}  validation accuracy {100 * acc:.2f} %", flush=True)
            if acc > best_acc:
                best_acc, best = acc, {k: v.clone() for k, v in model.state_dict().items()}
                best_step = step
    last = evaluate(test)
    model.load_state_dict(best)
    test_acc = evaluate(test)
    print(f"test accuracy {100 * test_acc:.2f} % (best validation, step {best_step}); "
          f"{100 * last:.2f} % (last step); {time.time() - t0:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"report": a.report, "init": a.init, "mixer_init": a.mixer_init,
                       "seed": a.seed, "curve": curve, "evals": evals, "best_step": best_step,
                       "test_accuracy": test_acc, "test_accuracy_last": last}, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BadInput as e:
        print(f"torch_train.py: {e}", file=sys.stderr)
        sys.exit(2)
