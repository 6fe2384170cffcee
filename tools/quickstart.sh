#!/bin/bash
# The quick start: installs dependencies, builds lkprobe, and runs its main job on the bundled
# example models: the effective receptive fields of a trained RepLKNet-style net and a
# ResNet-style net of equal depth, side by side (erf.png), plus an HTML report (report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh --no-tests
L=build/cli/lkprobe
# The example models were trained on Fashion-MNIST canvases with pixels / 255 (no mean/std).
"$L" erf examples/replknet-fmnist.bin examples/resnet-fmnist.bin --images examples/images \
    --size 256 --mean 0 --std 1 -o erf.png --npy erf.npy
"$L" report examples/replknet-fmnist.bin examples/images/*.png --size 256 --mean 0 --std 1 \
    -o report.html
echo "wrote erf.png, erf.npy and report.html"
