#!/bin/bash
# Installs dependencies, builds, and runs the whole test suite (unit, grad, golden, browser).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
if [[ -f build/build.ninja ]] && ! grep -q "tests/test_core" build/build.ninja; then
    meson configure build -Dtests=true >/dev/null   # a quick-start build had tests off
fi
tools/build.sh
meson test -C build --print-errorlogs --num-processes 2
