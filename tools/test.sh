#!/bin/bash
# Installs dependencies, builds, and runs the whole test suite (unit, grad, golden).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
meson test -C build --print-errorlogs --num-processes 2
