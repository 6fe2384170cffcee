#!/bin/bash
# Configures (once) and builds lkprobe into ./build (release, -march=native).
# Usage: tools/build.sh [--no-tests]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/build.ninja ]]; then
    if [[ "${1:-}" == "--no-tests" ]]; then
        meson setup build --buildtype=release -Dtests=false >/dev/null
    else
        meson setup build --buildtype=release >/dev/null
    fi
fi
ninja -C build
