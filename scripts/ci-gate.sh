#!/usr/bin/env bash
# The regression gate: runs configs/ci/*.yaml and compares the reports with the baseline in
# results/ci. Accuracy is held tightly (the runs are deterministic for a machine and thread
# count), FLOPs and parameter counts exactly (compare's rule for an unchanged config), speed and
# memory loosely, for a shared machine whose speed varies up to 3x from hour to hour.
#   scripts/ci-gate.sh            run and compare (exit 1 names each regression)
#   scripts/ci-gate.sh --update   run and make the reports the new baseline
set -euo pipefail
cd "$(dirname "$0")/.."
# Idle OpenMP threads sleep instead of spinning: on a machine where other jobs hold the cores, a
# spinning barrier waits for a descheduled thread and one run can take many times its quiet time.
# The baseline is measured with the same policy.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
bin=${XB_BIN:-./build/src/xformer-bench}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for cfg in configs/ci/*.yaml; do
    "$bin" run "$cfg" -o "$out" --quiet
done
rm -f "$out"/*.safetensors
if [ "${1:-}" = "--update" ]; then
    rm -rf results/ci && mkdir -p results/ci && cp "$out"/*.json results/ci/
    echo "ci-gate: baseline updated in results/ci ($(ls results/ci | wc -l) files)"
    exit 0
fi
"$bin" compare results/ci "$out" --max-acc-drop 1 --max-slowdown 300 --max-mem-growth 25
