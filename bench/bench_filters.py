#!/usr/bin/python3
"""Filter statistics at scale: `lkprobe filters` vs the NumPy implementation of the same
definitions (tests/fixtures/gen_filters.py) on >= 50 million 3x3 filters, one run each, same
machine.  The weights are a seeded weights-only safetensors file of 64x64x3x3 layers.

    /usr/bin/python3 bench/bench_filters.py [--filters 50000000] [--threads N] [--build build]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import gen_filters as gf  # noqa: E402

C = 64


def write_safetensors(path, n_layers, seed=0):
    per = C * C * 9
    hdr, off = {}, 0
    for i in range(n_layers):
        hdr["layer%05d.weight" % i] = {"dtype": "F32", "shape": [C, C, 3, 3],
                                       "data_offsets": [off, off + per * 4]}
        off += per * 4
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for i in range(n_layers):
            f.write((rng.standard_normal(per, dtype=np.float32) * 0.05).tobytes())


def numpy_stats(path, n_layers):
    """Same definitions: per-layer metrics, global PCA, 70-bin histograms of every component."""
    per = C * C * 9
    with open(path, "rb") as f:
        hl = struct.unpack("<Q", f.read(8))[0]
    data = np.memmap(path, np.float32, "r", offset=8 + hl, shape=(n_layers * per,))
    for i in range(n_layers):
        gf.layer_metrics(np.asarray(data[i * per:(i + 1) * per]).reshape(C, C, 3, 3))
    F = np.asarray(data).reshape(-1, 9)
    mu, vt, var, ratio, Cc = gf.pca(F)
    lo, hi = Cc.min(), Cc.max()
    for i in range(9):
        np.histogram(Cc[:, i], bins=gf.N_BINS, range=(lo, hi))
    return ratio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--filters", type=int, default=50_000_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default=os.path.join(ROOT, "build-filters"))
    ap.add_argument("--tmp", default="/tmp/lk_bench_filters.safetensors")
    a = ap.parse_args()
    n_layers = -(-a.filters // (C * C))
    if not os.path.exists(a.tmp) or os.path.getsize(a.tmp) < n_layers * C * C * 36:
        write_safetensors(a.tmp, n_layers)
    n = n_layers * C * C
    exe = os.path.join(a.build, "cli", "lkprobe")
    t0 = time.perf_counter()
    out = subprocess.run([exe, "filters", a.tmp, "--json", "--threads", str(a.threads), "-q"],
                         check=True, capture_output=True).stdout
    t_c = time.perf_counter() - t0
    r_c = json.loads(out)["pca"]["ratio"]
    t0 = time.perf_counter()
    r_np = numpy_stats(a.tmp, n_layers)
    t_np = time.perf_counter() - t0
    cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][0].split(":")[1].strip()
    print("cpu: %s, threads: %d" % (cpu, a.threads))
    print("filters: %d (%d layers 64x64x3x3)" % (n, n_layers))
    print("lkprobe filters: %.2f s (incl. load), numpy: %.2f s, ratio: %.1fx" % (t_c, t_np, t_np / t_c))
    print("max |ratio diff|: %.2e" % np.max(np.abs(np.array(r_c) - r_np)))


if __name__ == "__main__":
    main()
