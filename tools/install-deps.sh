#!/bin/bash
# Installs lkprobe's build and test dependencies from Debian 12 packages (run as root).
# Usage: tools/install-deps.sh [--ci]   (--ci adds clang's libFuzzer runtime)
set -euo pipefail
pkgs=(gcc libc6-dev meson ninja-build pkg-config
      libopenblas-dev libgsl-dev libcairo2-dev libpng-dev libfftw3-dev libjpeg62-turbo-dev
      libhdf5-dev check libonnx-testdata
      fonts-dejavu-core poppler-utils libxml2-utils chromium)
if [[ "${1:-}" == "--ci" ]]; then
    pkgs+=(clang libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "lkprobe: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
