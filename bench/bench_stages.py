#!/usr/bin/python3
"""Where a ResNet's time goes, stage by stage, in lkprobe and onnxruntime-node side by side.

onnxruntime-node's binding has no profiler (endProfiling is a stub in 1.20.1), so the
torchvision ResNet is exported cut after the stem and after each of its four stages (five
ONNX files, random weights with randomised BN statistics, opset 14, into bench/out/stages/),
both engines time every cut (`lkprobe bench --json`, bench/ort_bench.js; best of --reps warm
runs x --rounds alternating rounds).  Each cut is a whole model for both engines, so the
ratio per cut is sound; the difference of consecutive cuts (a stage's time) is printed too, but
for onnxruntime it is not: its fixed costs differ between cuts (on ResNet-18, 1 thread, its
layer2 difference came out at 1.9-2.0 ms, 400 GFLOP/s, twice the core's peak).
Needs PyTorch (Debian python3-torch, python3-torchvision) for the export.

Usage: /usr/bin/python3 bench/bench_stages.py --ort-modules DIR/node_modules
           [--models resnet50,resnet18] [--threads 1] [--reps 30] [--rounds 3]
"""
import argparse
import os

import torch
import torchvision

from bench_ort import ROOT, run_json


def export_cuts(arch, out):
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)().eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    parts = [("stem", [m.conv1, m.bn1, m.relu, m.maxpool]), ("layer1", [m.layer1]),
             ("layer2", [m.layer2]), ("layer3", [m.layer3]), ("layer4", [m.layer4])]
    seq, files = [], []
    for name, mods in parts:
        seq += mods
        path = os.path.join(out, f"{arch}_{name}.onnx")
        if not os.path.exists(path):
            with torch.no_grad():
                torch.onnx.export(torch.nn.Sequential(*seq).eval(), torch.randn(1, 3, 224, 224),
                                  path + ".tmp", opset_version=14, input_names=["input"],
                                  output_names=["output"])
            os.replace(path + ".tmp", path)
        files.append((name, path))
    return files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ort-modules", required=True, help="node_modules holding onnxruntime-node")
    ap.add_argument("--models", default="resnet50,resnet18")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    out = os.path.join(ROOT, "bench", "out", "stages")
    os.makedirs(out, exist_ok=True)
    lk = os.path.join(a.build, "cli", "lkprobe")
    js = os.path.join(ROOT, "bench", "ort_bench.js")
    env = dict(os.environ, NODE_PATH=a.ort_modules)
    shape, t = "1,3,224,224", str(a.threads)
    print("| model | cut after | onnxruntime (ms) | lkprobe (ms) | lkprobe / onnxruntime | "
          "stage difference: onnxruntime / lkprobe (ms) |")
    print("|---|---|---|---|---|---|")
    for arch in a.models.split(","):
        prev_o = prev_l = 0.0
        for name, path in export_cuts(arch, out):
            bo = bl = float("inf")
            for _ in range(a.rounds):
                bl = min(bl, run_json([lk, "bench", path, "--threads", t, "--reps", str(a.reps),
                                       "--json"])["best_s"])
                bo = min(bo, run_json(["node", js, path, shape, t, str(a.reps)], env)["best_s"])
            so, sl = 1e3 * bo - prev_o, 1e3 * bl - prev_l
            prev_o, prev_l = 1e3 * bo, 1e3 * bl
            print(f"| {arch} | {name} | {prev_o:.2f} | {prev_l:.2f} | {bl / bo:.2f}x | "
                  f"{so:.2f} / {sl:.2f} |", flush=True)
    print(f"\n{a.threads} thread(s); best of {a.reps} warm runs x {a.rounds} alternating rounds")


if __name__ == "__main__":
    main()
