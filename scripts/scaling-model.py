#!/usr/bin/env python3
"""Projects the data-parallel efficiency of LRA's configs on P nodes (a model, not a measurement).

    mpirun -np 2 ./build/src/xformer-bench bench --allreduce -o results/scaling   # alpha, beta
    scripts/scaling-model.py results/scaling/allreduce.json configs/lra/*.yaml -o results/scaling

Inputs, all measured here except the assumed networks:
  * alpha, beta of the ring all-reduce T(n, P) = 2(P-1) alpha + 2(P-1)/P n beta, from
    `bench --allreduce` (its fit of the medians; --fit min takes the fit of the fastest calls);
  * per config, the parameter count and the compute time of a step, T_c, from `xformer-bench bench
    CONFIG --lengths MAX_LEN --steps 3 --warmup 1` (the median step after the warm-up) at a
    timing batch b, scaled to the config's global batch B as T_c = B/b * t(b) (a step's work is
    per example). Steps cost the same on any data of the same shapes (sequence length, vocabulary,
    classes), so tasks whose files are not here are timed on a stand-in of the same shapes
    (STAND_INS) and generated tasks with fewer examples. Reports already in DIR/inputs are reused.

Model of a data-parallel step on P nodes with the global batch B fixed (B/P examples each):
    T(P) = T_c / P + T(4 * parameters, P) + T(24, P)      (gradient, then the loss's 3 doubles)
    efficiency E = (T_c / P) / T(P)
and with the gradient all-reduce overlapped with the backward pass in buckets (ideal):
    T(P) = f_fwd T_c / P + max(f_bwd T_c / P, T(4 * parameters, P)) + T(24, P)
with f_fwd, f_bwd the forward and backward shares of the step's analytic FLOPs. P must divide B.
The nodes are taken to be as fast as this machine with --threads threads, divided by
--node-speedup: a faster node shortens T_c and lowers E.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# Assumed cluster networks: alpha is a step's latency (an MPI small-message one-way latency
# plus the step's software overhead), beta the inverse of the bandwidth a large message reaches
# (about 90% of the line rate for RDMA, 75% for TCP).
NETWORKS = [
    ("100 Gb/s InfiniBand EDR (assumed)", 2.0e-6, 1.0 / (0.90 * 12.5e9)),
    ("25 Gb/s Ethernet, TCP (assumed)", 25.0e-6, 1.0 / (0.75 * 3.125e9)),
]

# Same shapes, data that is here: the sequence length, vocabulary (257 bytes or pixels) and
# classes of each stand-in equal those of the task's own files.
STAND_INS = {
    "image": ["task.source=fashion-mnist", "task.data_dir="],      # CIFAR-10 gray: 10 classes
    "retrieval": ["task.source=spam-assassin", "task.data_dir="],  # AAN pairs: 2 classes
    "listops": ["task.num_train=256", "task.num_val=32", "task.num_test=32"],
    "pathfinder": ["task.num_train=256", "task.num_val=32", "task.num_test=32"],
}


def yaml_int(text, key):
    """The integer value of `key:` in a config (the configs here keep one per line)."""
    m = re.search(r"^\s*%s:\s*(\d+)\s*(#.*)?$" % re.escape(key), text, re.M)
    if not m:
        sys.exit("scaling-model.py: no %s in the config" % key)
    return int(m.group(1))


def yaml_task(text):
    m = re.search(r"^task:\s*\n\s+name:\s*(\w+)", text, re.M)
    return m.group(1) if m else None


def ring(n, P, alpha, beta):
    """The ring all-reduce's time for n bytes over P processes."""
    return 2 * (P - 1) * alpha + 2 * (P - 1) / P * n * beta


def inputs(cfg, args):
    """Parameters, T_c for the global batch, the backward share, and how they were measured."""
    with open(cfg) as f:
        text = f.read()
    task, L, B = yaml_task(text), yaml_int(text, "max_len"), yaml_int(text, "batch_size")
    b = max(1, B // args.batch_divisor)
    name = os.path.splitext(os.path.basename(cfg))[0]
    out = os.path.join(args.output, "inputs", name)
    report = os.path.join(out, "full-%d.json" % L)
    sets = ["train.batch_size=%d" % b, "train.warmup=0"] + STAND_INS.get(task, [])
    cmd = [args.bin, "bench", cfg, "--lengths", str(L), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "-o", out, "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    if not os.path.exists(report):
        print("scaling-model.py: timing %s: %s" % (name, " ".join(cmd)), file=sys.stderr)
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if p.returncode != 0:
            sys.exit("scaling-model.py: %s failed (exit %d)" % (" ".join(cmd), p.returncode))
        with open(os.path.join(out, "index.json")) as f:
            point = json.load(f)["points"][0]
        if point["status"] != "ok":
            sys.exit("scaling-model.py: %s: %s: %s" % (cfg, point["status"], point["reason"]))
    with open(report) as f:
        r = json.load(f)
    t_b = r["measured"]["step_s_median"]
    fl = r["flops"]
    return {"config": cfg, "task": task, "length": L, "batch": B, "timing_batch": b,
            "parameters": r["model"]["parameters"], "step_s_at_timing_batch": t_b,
            "threads": r["environment"]["threads"],
            "gflops_per_s": fl["analytic_train_step"] / t_b / 1e9,
            "T_c": t_b * B / b / args.node_speedup,
            "backward_share": fl["analytic_backward_step"] / fl["analytic_train_step"],
            "command": cmd}


def project(x, P, alpha, beta):
    if P > x["batch"] or x["batch"] % P:
        return None
    grad = ring(4.0 * x["parameters"], P, alpha, beta)
    loss = ring(24.0, P, alpha, beta)
    tc = x["T_c"] / P
    fb = x["backward_share"]
    plain = tc + grad + loss
    overlap = (1 - fb) * tc + max(fb * tc, grad) + loss
    return {"comm_s": grad + loss, "step_s": plain, "efficiency": tc / plain,
            "efficiency_overlap": tc / overlap, "break_even_T_c": P * (grad + loss)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("allreduce", help="allreduce.json of xformer-bench bench --allreduce")
    ap.add_argument("configs", nargs="*", help="configs, default configs/lra/*.yaml")
    ap.add_argument("--nodes", default="8,64", help="node counts P, default 8,64")
    ap.add_argument("--fit", choices=("median", "min"), default="median",
                    help="this machine's alpha, beta: the fit of the medians (default) or minima")
    ap.add_argument("--threads", type=int, default=1, help="threads of the timed steps, default 1")
    ap.add_argument("--steps", type=int, default=3, help="timed steps + warm-up, default 3")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up steps, default 1")
    ap.add_argument("--batch-divisor", type=int, default=16,
                    help="time a step at batch max(1, B / this), default 16")
    ap.add_argument("--node-speedup", type=float, default=1.0,
                    help="a node is this many times faster than the timed process, default 1")
    ap.add_argument("-o", "--output", default="results/scaling",
                    help="DIR: inputs/ (the timing reports) and scaling-model.json")
    ap.add_argument("--bin", default=os.environ.get("XB_BIN",
                                                    os.path.join(ROOT, "build/src/xformer-bench")))
    args = ap.parse_args()
    nodes = [int(p) for p in args.nodes.split(",")]
    configs = args.configs or sorted(
        os.path.join(ROOT, "configs/lra", f) for f in os.listdir(os.path.join(ROOT, "configs/lra"))
        if f.endswith(".yaml"))
    with open(args.allreduce) as f:
        ar = json.load(f)
    fit = ar["fit" if args.fit == "median" else "fit_min"]
    here = ("this machine, shared memory (fit of the %ss of %d processes, load %.1f)"
            % (args.fit, ar["processes"], ar["load_average"][0] or float("nan")),
            fit["alpha_s"], fit["beta_s_per_byte"])
    nets = [here] + NETWORKS
    xs = [inputs(c, args) for c in configs]

    print("Data-parallel efficiency, global batch fixed: a projection (T_c measured with %d "
          "thread(s), node speedup %g)\n" % (args.threads, args.node_speedup))
    print("| config | parameters | gradient MiB | B | T_c s/step (1 node) | GFLOP/s timed |")
    print("|---|---:|---:|---:|---:|---:|")
    for x in xs:
        print("| %s | %d | %.2f | %d | %.3g | %.1f |" % (
            os.path.basename(x["config"]), x["parameters"], 4 * x["parameters"] / 2**20,
            x["batch"], x["T_c"], x["gflops_per_s"]))
    doc = {"allreduce": os.path.abspath(args.allreduce), "fit": args.fit,
           "node_speedup": args.node_speedup, "networks": [], "configs": xs}
    for net, alpha, beta in nets:
        print("\n%s: alpha %.3g s, beta %.3g s/byte (%.2f GB/s)\n" % (net, alpha, beta,
                                                                      1e-9 / beta))
        head = "| config |" + "".join(" P=%d comm ms | E | E overlapped |" % P for P in nodes)
        print(head)
        print("|---|" + "---:|---:|---:|" * len(nodes))
        rows = []
        for x in xs:
            cells, row = [], {"config": x["config"]}
            for P in nodes:
                pr = project(x, P, alpha, beta)
                row[str(P)] = pr
                if pr is None:
                    why = ("batch %d < %d" if P > x["batch"] else "%d does not divide %d") % (
                        (x["batch"], P) if P > x["batch"] else (P, x["batch"]))
                    cells.append(" n/a | %s | n/a |" % why)
                else:
                    cells.append(" %.3g | %.1f%% | %.1f%% |" % (
                        1e3 * pr["comm_s"], 100 * pr["efficiency"],
                        100 * pr["efficiency_overlap"]))
            rows.append(row)
            print("| %s |%s" % (os.path.basename(x["config"]), "".join(cells)))
        doc["networks"].append({"network": net, "alpha_s": alpha, "beta_s_per_byte": beta,
                                "projections": rows})
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "scaling-model.json")
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(path + ".tmp", path)
    print("\n-> %s" % path)


if __name__ == "__main__":
    main()
