#!/usr/bin/python3
"""PyTorch checkpoint load benchmark: lkprobe (bench_load, mmap + zero-copy) vs
torch.load(map_location='cpu') on the same >= 300 MB .pth file, in one run.

The checkpoint (a ResNet-like state dict of float32 conv/BN/linear tensors) is generated
into bench/out/ (not committed) unless already there.  Both sides read it from a warm page
cache, load it and touch every element (a sum per tensor); best of --reps.  Prints the
ratio and, with --append, adds a section to bench/RESULTS.md.

Usage: /usr/bin/python3 bench/bench_load.py [--build build] [--reps 3] [--mb 320] [--append]
"""
import argparse
import collections
import json
import os
import platform
import subprocess
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def make_checkpoint(path, mb):
    """Conv stages of growing width until the float32 payload reaches mb megabytes."""
    g = torch.Generator().manual_seed(7)
    sd = collections.OrderedDict()
    total, i, width = 0, 0, 64
    while total < mb * 1e6:
        w = torch.empty(width, width, 3, 3).uniform_(-0.1, 0.1, generator=g)
        sd["layer%d.conv.weight" % i] = w
        for k in ("weight", "bias", "running_mean", "running_var"):
            sd["layer%d.bn.%s" % (i, k)] = torch.rand(width, generator=g)
        sd["layer%d.bn.num_batches_tracked" % i] = torch.tensor(100)
        total += w.numel() * 4 + 4 * width * 4
        i += 1
        width = min(width * 2, 1024) if i % 4 == 0 else width
    sd["fc.weight"] = torch.rand(1000, width, generator=g)
    sd["fc.bias"] = torch.rand(1000, generator=g)
    torch.save({"state_dict": sd, "epoch": 90}, path)


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def time_torch(path, reps):
    best = (1e30, 0, 0)
    for _ in range(reps):
        t0 = time.perf_counter()
        ck = torch.load(path, map_location="cpu")
        t1 = time.perf_counter()
        s = 0.0
        for t in ck["state_dict"].values():
            s += float(t.sum())
        t2 = time.perf_counter()
        del ck
        if t2 - t0 < best[0]:
            best = (t2 - t0, t1 - t0, t2 - t1)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mb", type=int, default=320)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--append", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = os.path.join(ROOT, "bench", "out")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "ckpt_%dmb.pth" % a.mb)
    if not os.path.exists(path):
        make_checkpoint(path, a.mb)
    size = os.path.getsize(path)
    warm(path)
    drv = os.path.join(a.build, "bench", "bench_load")
    r = subprocess.run([drv, path, "--reps", str(a.reps)], check=True, capture_output=True,
                       text=True)
    lk = json.loads(r.stdout)
    info = subprocess.run([os.path.join(a.build, "cli", "lkprobe"), "info", path],
                          check=True, capture_output=True, text=True).stdout
    zero = [l.strip() for l in info.splitlines() if "zero-copy=" in l]
    tt, tl, tc = time_torch(path, a.reps)
    mbs = size / 1e6
    rows = [
        ("torch.load(map_location='cpu')", tl, tt),
        ("lkprobe (lk_model_load)", lk["load_s"], lk["total_s"]),
    ]
    lines = ["| reader | load (ms) | load + touch every element (ms) | throughput (MB/s) |",
             "|---|---|---|---|"]
    for name, l, t in rows:
        lines.append("| %s | %.1f | %.1f | %.0f |" % (name, l * 1e3, t * 1e3, mbs / t))
    table = "\n".join(lines)
    ratio = tt / lk["total_s"]
    ratio_load = tl / lk["load_s"]
    print(table)
    print("file %.0f MB, %d tensors, %s; speed-up %.2fx (load+touch), %.1fx (load only)" %
          (mbs, lk["tensors"], zero[0] if zero else "", ratio, ratio_load))
    if a.append:
        sec = ["", "## PyTorch checkpoint load (`bench/bench_load.py`)", "",
               "Machine: %s, %d cores; torch %s with %d threads; lkprobe loader single-threaded "
               "(mmap, zero-copy); warm page cache; best of %d." %
               (cpu_name(), os.cpu_count(), torch.__version__, a.threads, a.reps), "",
               "Checkpoint: %s (%.0f MB zip, %d float32 tensors under 'state_dict', generated "
               "by the script); lkprobe notes: %s." %
               (os.path.basename(path), mbs, lk["tensors"], zero[0] if zero else "-"), "",
               table, "",
               "Speed-up: **%.2fx** load + touch, %.1fx load only." % (ratio, ratio_load), ""]
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
            f.write("\n".join(sec))


if __name__ == "__main__":
    main()
