#!/usr/bin/python3
"""Writes the issue-12 benchmark models of bench/models.py as ONNX files for bench_ort.py and
bench_cold.py: ResNet-18 and ResNet-50 (dynamic batch, 224x224) and the RepLKNet-31B shape
(dynamic batch, height and width: run at 512 and 1024).  Random weights with randomised BN
statistics (speed does not depend on them); opset 14.  Needs PyTorch (Debian python3-torch,
python3-torchvision); the files go to bench/out/ (not committed).

Usage: /usr/bin/python3 bench/export_onnx.py [--out DIR] [--models resnet18,resnet50,replknet31b]
"""
import argparse
import os

import torch

import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--models", default="resnet18,resnet50,replknet31b")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in a.models.split(","):
        path = os.path.join(a.out, name + ".onnx")
        if os.path.exists(path):
            print("kept", path)
            continue
        m = models.build(name)
        size = 224 if name.startswith("resnet") else 512
        axes = {0: "n"} if name.startswith("resnet") else {0: "n", 2: "h", 3: "w"}
        tmp = path + ".tmp"
        with torch.no_grad():
            torch.onnx.export(m, torch.randn(1, 3, size, size), tmp, opset_version=14,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": axes})
        os.replace(tmp, path)
        print("wrote", path)


if __name__ == "__main__":
    main()
