#!/usr/bin/env bash
# Time per training step and peak RSS of each mechanism across lengths (batch 2, d_model 64,
# 2 heads, 2 layers, d_ff 128: configs/bench/step-full.yaml), from the reports, with the exponent
# of time in L fitted (least squares on log-log) over the lengths >= 4096.
#   scripts/scaling.sh [MIXERS] [LENGTHS]    defaults: every mechanism; 1024 2048 4096 8192 16384
#   XB_BIN=path runs another binary (e.g. a copy, so a rebuild cannot change it mid-run)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${XB_BIN:-./build/src/xformer-bench}
mixers=${1:-$($bin list mechanisms | awk '/^[a-z_]+ +class/ {print $1}')}
lengths=${2:-"1024 2048 4096 8192 16384"}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-12s %-7s %-10s %-10s\n' mixer L s/step RSS_MiB
for m in $mixers; do
    for L in $lengths; do
        $bin run configs/bench/step-full.yaml --quiet -o "$out" --set model.mixer.name="$m" \
            --set model.max_len="$L" --set train.batch_size=2 --set train.steps=6 \
            --set experiment.name="$m-$L" >/dev/null
    done
    python3 - "$out" "$m" $lengths <<'PY'
import json, math, sys
out, m, Ls = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3:]]
t = {}
for L in Ls:
    r = json.load(open(f"{out}/{m}-{L}.json"))["measured"]
    t[L] = 1.0 / r["steps_per_s"]
    print(f"{m:<12} {L:<7} {t[L]:<10.3f} {r['peak_rss'] / 2**20:<10.0f}")
fit = [L for L in Ls if L >= 4096]
if len(fit) >= 2:
    xs = [math.log(L) for L in fit]
    ys = [math.log(t[L]) for L in fit]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    print(f"{m:<12} exponent of time in L over {fit[0]}-{fit[-1]}: {slope:.2f}")
PY
done
