#!/usr/bin/env bash
# Installs what xformer-bench needs from Debian and npm (idempotent) and builds it in ./build.
#   scripts/setup.sh            install + release build
#   scripts/setup.sh --werror   the same with warnings as errors and without -march=native (CI:
#                               the gate's baseline in results/ci is compared across machines)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc meson ninja-build pkg-config libyaml-dev libcjson-dev libopenblas-openmp-dev libfftw3-dev zlib1g-dev libpng-dev check
          python3 python3-jsonschema git dataset-fashion-mnist libopenmpi-dev openmpi-bin
          python3-torch # the PyTorch cross-check (scripts/reference/): 175 packages, ~610 MiB, ~50 s
          clang libclang-rt-dev libomp-dev) # the fuzzers (scripts/fuzz.sh): clang, libFuzzer, OpenMP
command -v npm >/dev/null || packages+=(npm) # the SpamAssassin corpus comes from npm
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash datasets/spam-assassin.sh # the text task's open corpus, into datasets/cache

werror=false native=true
[ "${1:-}" = "--werror" ] && werror=true native=false
if [ -d build ]; then
    meson configure build -Dwerror="$werror" -Dnative="$native" >/dev/null
else
    meson setup build -Dwerror="$werror" -Dnative="$native" >/dev/null
fi
ninja -C build
