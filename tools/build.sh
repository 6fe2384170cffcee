#!/bin/bash
# Configures (once) and builds lkprobe into ./build (release, -march=native).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/build.ninja ]]; then
    meson setup build --buildtype=release >/dev/null
fi
ninja -C build
