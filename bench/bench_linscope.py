#!/usr/bin/python3
"""LinearScope benchmark (issue 14), one run:
1. the two-batch pass (batch 0 + the bias pass) against one fused forward (bench_linscope);
2. 64 rows A^T e_k (classes 0..63) of a ResNet-50-shaped net at 224x224 by `lkprobe linscope`
   against PyTorch autograd, one backward per row (retain_graph) after one forward;
3. top-16 singular triplets of the esrgan-slim x4 SR net on a 64x64 input.
For a piecewise-linear net (ReLU, max-pool, eval BN) the rows equal the gradients, so the two
sides are also compared.

Usage: /usr/bin/python3 bench/bench_linscope.py [--threads 2]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def torch_rows(onnx_model, x, threads, n_rows):
    import torch
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x).requires_grad_(True)
    t0 = time.perf_counter()
    y = onnx_model(xt)
    rows = []
    for k in range(n_rows):
        g, = torch.autograd.grad(y[0, k], xt, retain_graph=True)
        rows.append(g.numpy().copy())
    return time.perf_counter() - t0, np.concatenate(rows, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    import torch
    import torchvision
    sys.path.insert(0, HERE)
    import models
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    lk = os.path.join(a.build, "cli", "lkprobe")
    bl = os.path.join(a.build, "bench", "bench_linscope")
    torch.manual_seed(0)
    net = models.randomise_bn(torchvision.models.resnet50()).eval()
    onnx = os.path.join(out, "resnet50_224.onnx")
    binf = onnx[:-5] + ".bin"
    if not os.path.exists(binf):
        torch.onnx.export(net, torch.randn(1, 3, 224, 224), onnx, opset_version=14)
        subprocess.run([lk, "convert", onnx, "-o", binf], check=True)
        os.remove(onnx)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    xin = os.path.join(out, "linscope_x224.npy")
    np.save(xin, x)
    res = {}
    # 1. two-batch pass vs forward
    r = subprocess.run([bl, binf, xin, "--threads", str(a.threads), "--reps", "3"],
                       check=True, capture_output=True, text=True)
    res["two_batch_resnet50"] = json.loads(r.stdout)
    sr = os.path.join(ROOT, "data", "npm", "esrgan-slim", "models", "x4", "model.json")
    x64 = os.path.join(out, "linscope_x64.npy")
    np.save(x64, (np.random.default_rng(1).random((1, 3, 64, 64)) * 255).astype(np.float32))
    if os.path.exists(sr):
        r = subprocess.run([bl, sr, x64, "--threads", str(a.threads), "--reps", "3"],
                           check=True, capture_output=True, text=True)
        res["two_batch_esrgan_x4_64"] = json.loads(r.stdout)
    # 2. 64 rows vs torch
    n_rows = 64
    rows_arg = ",".join(f"class:{k}" for k in range(n_rows))
    npy_dir = os.path.join(out, "linscope_rows")
    t0 = time.perf_counter()
    r = subprocess.run([lk, "linscope", binf, "--inputs", xin, "--rows", rows_arg, "--threads",
                        str(a.threads), "--batch", "4", "--npy", npy_dir, "--json", "-q"],
                       check=True, capture_output=True, text=True)
    lk_wall = time.perf_counter() - t0
    js = json.loads(r.stdout)
    t_torch, g = torch_rows(net, x, a.threads, n_rows)
    rows = np.load(os.path.join(npy_dir, "rows.npy"))
    err = float(np.abs(rows - g).max() / np.abs(g).max())
    lk_s = js["seconds"]["point"] + js["seconds"]["rows"]
    res["rows64_resnet50"] = {"lkprobe_point_s": js["seconds"]["point"], "lkprobe_rows_s":
                              js["seconds"]["rows"], "lkprobe_process_wall_s": lk_wall,
                              "torch_s": t_torch, "ratio": t_torch / lk_s,
                              "rows_vs_grad_rel_err": err}
    # 3. top-16 singular triplets of the x4 SR net on 64x64
    if os.path.exists(sr):
        t0 = time.perf_counter()
        r = subprocess.run([lk, "linscope", sr, "--inputs", x64, "--input-shape", "1,3,64,64",
                            "--svd", "16", "--threads", str(a.threads), "--json", "-q"],
                           check=True, capture_output=True, text=True)
        js = json.loads(r.stdout)
        res["svd16_esrgan_x4_64"] = {"svd_s": js["seconds"]["svd"], "wall_s":
                                     time.perf_counter() - t0, "lanczos_steps":
                                     js["lanczos_steps"], "sv": js["singular_values"][:4],
                                     "max_ritz_residual": max(js["ritz_residuals"])}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
