#!/usr/bin/python3
"""Deletion + insertion (RISE protocol, cam.md §7.1) for one saliency map: lkprobe (batched
forwards, bench_faith) vs PyTorch in one run, on a ResNet-50 (torchvision's layout, random
weights, randomised BN statistics) at 224x224, same thread count.

PyTorch runs the protocol two ways:
- "reference": as the RISE authors' evaluation.py (CausalMetric.single_run): one forward of
  batch 1 per step, n_steps + 1 per curve;
- "batched": the same perturbed inputs stacked into batches of --batch (what a careful user
  would write), so the ratio against it isolates the engine.
Both compute the same curves as lkprobe (softmax of the top-1 class, stable descending order,
blur = the RISE kernel); the AUCs are printed side by side.

Usage: /usr/bin/python3 bench/bench_faith.py [--threads 2] [--batch 16] [--step 224]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S = 224


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride):
        super().__init__()
        cout = 4 * mid
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


def resnet50():
    """torchvision's ResNet-50 layout (v1.5: stride in the 3x3), written out because
    torchvision is not installed; random weights, randomised BN statistics."""
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for mid, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(n):
            layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
            cin = 4 * mid
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    m = nn.Sequential(*layers)
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


def gaussian_taps(sigma=5.0, klen=11):
    r = int(4.0 * sigma + 0.5)
    t = np.arange(-r, r + 1)
    w = np.exp(-0.5 * t * t / (sigma * sigma))
    w /= w.sum()
    k = np.zeros(klen)
    for i in range(klen):
        for ti, tv in enumerate(t):
            j = i + tv
            while j < 0 or j >= klen:
                j = -j - 1 if j < 0 else 2 * klen - j - 1
            if j == klen // 2:
                k[i] += w[ti]
    return k


def blur(x):
    k2 = torch.from_numpy(np.outer(gaussian_taps(), gaussian_taps()).astype(np.float32))
    kern = torch.zeros(3, 3, 11, 11)
    for c in range(3):
        kern[c, c] = k2
    return F.conv2d(x, kern, padding=5)


def inputs(x, order, mode, step):
    """Yields the n_steps + 1 perturbed inputs of one curve."""
    hw = S * S
    n = (hw + step - 1) // step
    start = (x.clone() if mode == "del" else blur(x)).reshape(3, hw)
    finish = (torch.zeros_like(x) if mode == "del" else x).reshape(3, hw)
    for i in range(n + 1):
        yield start.reshape(1, 3, S, S)
        if i < n:
            c = order[step * i:step * (i + 1)]
            start[:, c] = finish[:, c]


def auc(s):
    return (s.sum() - s[0] / 2 - s[-1] / 2) / (len(s) - 1)


def run_torch(model, x, order, step, batch):
    with torch.no_grad():
        c = int(torch.argmax(model(x), 1))
        aucs = []
        for mode in ("del", "ins"):
            scores = []
            if batch == 1:
                for z in inputs(x, order, mode, step):
                    scores.append(float(torch.softmax(model(z), 1)[0, c]))
            else:
                buf = []
                for z in list(inputs(x, order, mode, step)) + [None]:
                    if z is not None:
                        buf.append(z.clone())
                    if len(buf) == batch or (z is None and buf):
                        scores += torch.softmax(model(torch.cat(buf)), 1)[:, c].tolist()
                        buf = []
            aucs.append(auc(np.array(scores)))
    return c, aucs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--step", type=int, default=S)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = os.path.join(ROOT, "bench", "out")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = resnet50().eval()
    x = torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(1))
    onnx = os.path.join(out, "resnet50_224.onnx")
    if not os.path.exists(onnx):
        torch.onnx.export(model, x, onnx, opset_version=14)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    sal = np.exp(-((yy - 90) ** 2 + (xx - 130) ** 2) / 3000.0)
    sal = (sal + 0.2 * np.random.default_rng(2).random((S, S))).astype(np.float32)
    np.save(os.path.join(out, "faith_x.npy"), x.numpy())
    np.save(os.path.join(out, "faith_map.npy"), sal)
    order = torch.from_numpy(np.argsort(-sal.reshape(-1), kind="stable").copy())
    res = {}
    for name, b in (("reference", 1), ("batched", a.batch)):
        t0 = time.perf_counter()
        c, aucs = run_torch(model, x, order, a.step, b)
        res[name] = (time.perf_counter() - t0, c, aucs)
        print("pytorch %-9s: %.2f s  class %d  deletion %.6f  insertion %.6f" %
              (name, res[name][0], c, aucs[0], aucs[1]), flush=True)
    lk = os.path.join(a.build, "bench", "bench_faith")
    p = subprocess.run([lk, onnx, os.path.join(out, "faith_x.npy"),
                        os.path.join(out, "faith_map.npy"), "--threads", str(a.threads),
                        "--batch", str(a.batch), "--step", str(a.step)],
                       check=True, capture_output=True, text=True)
    r = json.loads(p.stdout)
    mt = r["metrics"]
    print("lkprobe (batch %d): %.2f s  class %d  deletion %.6f  insertion %.6f  (plan %.2f s)" %
          (r["batch"], r["seconds"], mt["class"], mt["deletion"], mt["insertion"], r["plan_s"]))
    for name in res:
        print("speed-up vs pytorch %s: %.2fx" % (name, res[name][0] / r["seconds"]))
    print("OPENBLAS_CORETYPE=%s threads=%d" % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
                                               a.threads))


if __name__ == "__main__":
    main()
