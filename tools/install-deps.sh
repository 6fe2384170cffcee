#!/bin/bash
# Installs lkprobe's dependencies from Debian 12 packages (run as root).
# Usage: tools/install-deps.sh          build + run (the quick start)
#        tools/install-deps.sh --test   + test-suite tools (Check, ONNX conformance data,
#                                          poppler, xmllint, headless Chromium)
#        tools/install-deps.sh --ci     + clang's libFuzzer runtime and Open MPI (the MPI tests)
#        tools/install-deps.sh --mpi    + Open MPI: distributed erf / filters under mpirun
set -euo pipefail
pkgs=(gcc libc6-dev meson ninja-build pkg-config
      libopenblas-dev libgsl-dev libcairo2-dev libpng-dev libfftw3-dev libjpeg62-turbo-dev
      libhdf5-dev fonts-dejavu-core)
case "${1:-}" in
    --test) pkgs+=(check libonnx-testdata poppler-utils libxml2-utils chromium) ;;
    --ci)   pkgs+=(check libonnx-testdata poppler-utils libxml2-utils chromium
                   clang libclang-rt-14-dev libopenmpi-dev openmpi-bin) ;;
    --mpi)  pkgs+=(libopenmpi-dev openmpi-bin) ;;
    "") ;;
    *) echo "usage: tools/install-deps.sh [--test|--ci|--mpi]" >&2; exit 1 ;;
esac
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
