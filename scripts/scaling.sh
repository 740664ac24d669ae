#!/usr/bin/env bash
# Time per training step and peak RSS of each mechanism across lengths (batch 2, d_model 64,
# 2 heads, 2 layers, d_ff 128: configs/bench/step-full.yaml), from the reports, with the exponent
# of time in L fitted (least squares on log-log) over the lengths >= 4096, beside the exponent of
# the analytic FLOPs of a training step (what the mechanism's algorithm must do).
#   scripts/scaling.sh [MIXERS] [LENGTHS]    defaults: every mechanism; 1024 2048 4096 8192 16384
#   XB_BIN=path runs another binary (e.g. a copy, so a rebuild cannot change it mid-run)
#   XB_ARGS="--set model.mixer.sortcut=2" adds arguments to every run
#   XB_STEPS=16 times more steps than the default 6 (s/step is the median step: a slow first step,
#   or one that another process interrupted, does not move it)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${XB_BIN:-./build/src/xformer-bench}
mixers=${1:-$($bin list mechanisms --json |
    python3 -c 'import json, sys; print(" ".join(m["name"] for m in json.load(sys.stdin)["mechanisms"]))')}
lengths=${2:-"1024 2048 4096 8192 16384"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-12s %-7s %-10s %-10s %-10s\n' mixer L s/step RSS_MiB GFLOP/step
for m in $mixers; do
    for L in $lengths; do
        $bin run configs/bench/step-full.yaml --quiet -o "$out" --set model.mixer.name="$m" \
            --set model.max_len="$L" --set train.batch_size=2 --set train.steps=${XB_STEPS:-6} \
            --set experiment.name="$m-$L" ${XB_ARGS:-} >/dev/null
    done
    python3 - "$out" "$m" $lengths <<'PY'
import json, math, sys
out, m, Ls = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3:]]
t, f = {}, {}
for L in Ls:
    r = json.load(open(f"{out}/{m}-{L}.json"))
    t[L] = r["measured"].get("step_s_median") or 1.0 / r["measured"]["steps_per_s"]
    f[L] = r["flops"]["analytic_train_step"] / 1e9
    print(f"{m:<12} {L:<7} {t[L]:<10.3f} {r['measured']['peak_rss'] / 2**20:<10.0f} {f[L]:<10.2f}")
def slope(v, Ls):
    xs = [math.log(L) for L in Ls]
    ys = [math.log(v[L]) for L in Ls]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
fit = [L for L in Ls if L >= 4096]
if len(fit) >= 2:
    print(f"{m:<12} exponent in L over {fit[0]}-{fit[-1]}: time {slope(t, fit):.2f}, FLOPs {slope(f, fit):.2f}")
PY
done
