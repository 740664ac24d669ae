#!/usr/bin/env bash
# Seconds per training step and peak RSS of a config at several lengths, from the reports.
#   scripts/bench_step.sh [CONFIG] [LENGTHS...]      default: configs/bench/step-full.yaml 1024 2048 4096
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/bench/step-full.yaml}
shift || true
lengths=("$@")
[ "${#lengths[@]}" -gt 0 ] || lengths=(1024 2048 4096)
bin=./build/src/xformer-bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-8s %-12s %-12s %-14s\n' L s/step steps/s peak_RSS_MiB
for L in "${lengths[@]}"; do
    $bin run "$config" --quiet --set model.max_len="$L" --set experiment.name="L$L" -o "$out" >/dev/null
    python3 - "$out/L$L.json" "$L" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["measured"]
print(f'{sys.argv[2]:<8} {1.0 / m["steps_per_s"]:<12.3f} {m["steps_per_s"]:<12.3f} {m["peak_rss"] / 2**20:<14.0f}')
PY
done
