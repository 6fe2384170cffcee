#!/usr/bin/python3
"""ERF benchmark: `lkprobe erf` vs a PyTorch script of the same protocol (erf.md §2: per image
s = sum_c relu(F[:, c, H'/2, W'/2]); g = ds/dx; relu; sum over channels; running mean), on the
same inputs and thread count, in one run.  Each engine runs in its own process so that its
peak memory (max RSS) is measured separately.  Also checks the two maps agree, and that the
ERF area ratios (erf.md: side of the smallest centred square holding > t of the transformed
map) computed from the PyTorch map with the same definition equal lkprobe's.

Usage: /usr/bin/python3 bench/bench_erf.py [--threads N] [--cases replknet31b:512:3,...]
(a case name:size:n:reparam runs `lkprobe erf --reparam`: parallel branches merged first)
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_CASES = "replknet31b:512:3,replknet31b:1024:2,resnet101:512:3,resnet101:1024:2"


def torch_worker(name, inputs, threads, out_npy):
    import torch
    sys.path.insert(0, HERE)
    import models
    torch.set_num_threads(threads)
    m = models.build(name, features_only=True)
    x_all = np.load(inputs)
    mean = None
    t0 = time.perf_counter()
    for i in range(x_all.shape[0]):
        x = torch.from_numpy(x_all[i:i + 1]).requires_grad_(True)
        out = m(x)
        h, w = out.shape[2], out.shape[3]
        s = torch.nn.functional.relu(out[:, :, h // 2, w // 2]).sum()
        g, = torch.autograd.grad(s, x)
        cs = torch.nn.functional.relu(g).sum((0, 1)).numpy().astype(np.float64)
        mean = cs if mean is None else mean + (cs - mean) / (i + 1)
        print(f"torch {name}: image {i + 1}/{x_all.shape[0]}", file=sys.stderr)
    dt = time.perf_counter() - t0
    np.save(out_npy, mean.astype(np.float32))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": dt, "peak_rss_mb": rss}))


def area_sides(mean, mode, thresholds):
    """The centred-square sides of lk_erf_area_ratios for a mean map (None: not reached)."""
    a = mean.astype(np.float32)
    if mode == "replknet":
        a = np.log10(a + np.float32(1.0))
    if a.max() > 0:
        a = a / a.max()
    h, w = a.shape
    total = float(a.astype(np.float64).sum())
    sides = []
    for t in thresholds:
        side = None
        for i in range(1, h // 2):
            y0, y1 = h // 2 - i, h // 2 + i + 1
            x0, x1 = max(w // 2 - i, 0), min(w // 2 + i + 1, w)
            if total > 0 and float(a[y0:y1, x0:x1].astype(np.float64).sum()) / total > t:
                side = 2 * i + 1
                break
        sides.append(side)
    return sides


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.worker[0], a.worker[1], int(a.worker[2]), a.worker[3])
        return
    import torch
    sys.path.insert(0, HERE)
    import models
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    lk = os.path.join(a.build, "cli", "lkprobe")
    rows = []
    for case in a.cases.split(","):
        # name:size:n[:reparam] -- reparam: lkprobe erf --reparam (merged branches; PyTorch
        # runs the network as built)
        name, size, n, *flags = case.split(":")
        size, n = int(size), int(n)
        extra = ["--reparam"] if "reparam" in flags else []
        onnx = os.path.join(out, f"{name}_features_{size}.onnx")
        binf = onnx[:-5] + ".bin"
        if not os.path.exists(binf):
            m = models.build(name, features_only=True)
            torch.onnx.export(m, torch.randn(1, 3, size, size), onnx, opset_version=14)
            subprocess.run([lk, "convert", onnx, "-o", binf], check=True)
            os.remove(onnx)
        inputs = os.path.join(out, f"inputs_{size}_{n}.npy")
        if not os.path.exists(inputs):
            np.save(inputs, np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32))
        tmap = os.path.join(out, f"torch_{name}_{size}.npy")
        w0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, __file__,
                            "--worker", name, inputs, str(a.threads), tmap],
                           check=True, capture_output=True, text=True)
        t_whole = time.perf_counter() - w0
        tj = json.loads(r.stdout.strip().splitlines()[-1])
        t_rss = int(r.stderr.strip().split("maxrss_kb=")[-1]) / 1024.0
        lmap = os.path.join(out, f"lk_{name}_{size}.npy")
        w0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", lk, "erf", binf, "--inputs",
                            inputs, "--n", str(n), "--threads", str(a.threads), "--npy", lmap,
                            "--json", "-q"] + extra,
                           check=True, capture_output=True, text=True)
        l_whole = time.perf_counter() - w0
        lj = json.loads(r.stdout)
        lt = lj["image_seconds"]
        l_rss = int(r.stderr.strip().split("maxrss_kb=")[-1]) / 1024.0
        a_t, a_l = np.load(tmap), np.load(lmap)
        rel = float(np.abs(a_t - a_l).max() / max(np.abs(a_t).max(), 1e-30))
        thr = list(lj["sides"].keys())
        t_sides = area_sides(a_t, lj["mode"], [float(t) for t in thr])
        l_sides = [lj["sides"][t] for t in thr]
        agree = "same" if t_sides == l_sides else "DIFFER"
        sides = " ".join(f"{t}:{s_}" for t, s_ in zip(thr, l_sides))
        rows.append((name + (" --reparam" if extra else ""), size, n, tj["seconds"] / n, lt / n, tj["seconds"] / lt,
                     t_rss, l_rss, rel, f"{sides} ({agree})", t_whole, l_whole))
        print(f"{name} {size}: torch {tj['seconds'] / n:.2f} s/img, lkprobe {lt / n:.2f} s/img, "
              f"speed-up {tj['seconds'] / lt:.2f}x, max rel diff {rel:.2e}, area sides lkprobe "
              f"{l_sides} torch {t_sides}", file=sys.stderr)
    print(f"\nThreads: {a.threads}; torch {torch.__version__}; s/img covers the image loop "
          f"(model loading excluded); 'as commands' is each whole process (PyTorch: the script "
          f"with its imports and model construction; lkprobe: `lkprobe erf model.bin`); peak RSS "
          f"of each process from /usr/bin/time\n")
    print("| model | input | images | PyTorch (s/img) | lkprobe (s/img) | speed-up | as commands: PyTorch / lkprobe (s), speed-up | PyTorch peak RSS (MiB) | lkprobe peak RSS (MiB) | max rel. diff of maps | ERF square sides t:side (vs PyTorch) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r_ in rows:
        print(f"| {r_[0]} | {r_[1]}x{r_[1]} | {r_[2]} | {r_[3]:.2f} | {r_[4]:.2f} | {r_[5]:.2f}x | "
              f"{r_[10]:.1f} / {r_[11]:.1f}, {r_[10] / r_[11]:.2f}x | "
              f"{r_[6]:.0f} | {r_[7]:.0f} | {r_[8]:.1e} | {r_[9]} |")


if __name__ == "__main__":
    main()
