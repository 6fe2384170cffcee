#!/usr/bin/python3
"""Forward benchmark: lkprobe vs PyTorch on the same model, input size and thread count,
in one run.  Exports each model to ONNX (bench/out/, not committed), converts it to model.bin
with `lkprobe convert`, times both engines and prints a Markdown table with the ratio.

Usage: /usr/bin/python3 bench/bench_forward.py [--threads N] [--reps R] [--models a,b]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {"resnet18": 224, "replknet31b": 512}


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = os.path.join(ROOT, "bench", "out")
    os.makedirs(out, exist_ok=True)
    rows = []
    for name in a.models.split(","):
        size = CASES[name]
        m = models.build(name)
        x = torch.randn(1, 3, size, size)
        onnx = os.path.join(out, f"{name}_{size}.onnx")
        if not os.path.exists(onnx):
            torch.onnx.export(m, x, onnx, opset_version=14)
        binf = os.path.join(out, f"{name}_{size}.bin")
        lk = os.path.join(a.build, "cli", "lkprobe")
        model_file = onnx
        if os.path.exists(lk):
            subprocess.run([lk, "convert", onnx, "-o", binf], check=True)
            model_file = binf
        with torch.no_grad():
            m(x)
            ts = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                m(x)
                ts.append(time.perf_counter() - t0)
        t_torch = min(ts)
        r = subprocess.run([os.path.join(a.build, "bench", "bench_forward"), model_file,
                            "--threads", str(a.threads), "--reps", str(a.reps)],
                           check=True, capture_output=True, text=True)
        j = json.loads(r.stdout)
        rows.append((name, size, t_torch, j["best_s"], t_torch / j["best_s"]))
        print(f"{name} {size}x{size}: torch {t_torch*1e3:.1f} ms, lkprobe {j['best_s']*1e3:.1f} ms, "
              f"speed-up {t_torch / j['best_s']:.2f}x", file=sys.stderr)
    print(f"\nMachine: {cpu_name()}, {os.cpu_count()} cores; threads: {a.threads}; "
          f"torch {torch.__version__}; best of {a.reps}\n")
    print("| model | input | PyTorch (ms) | lkprobe (ms) | speed-up |")
    print("|---|---|---|---|---|")
    for name, size, tt, tl, ratio in rows:
        print(f"| {name} | 1x3x{size}x{size} | {tt*1e3:.1f} | {tl*1e3:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
