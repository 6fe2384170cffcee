#!/usr/bin/python3
"""Single convolutions, one ONNX node each, timed by lkprobe: the small nets' depthwise and stem
shapes, the channels-last large kernels, strided depthwise on large planes, short- and
long-K dense convs over rows of whole vectors (row tiles or not).

Each shape is written as a one-node model (seeded random weights and bias, opset 13) into
bench/out/convs/ and timed with `lkprobe bench MODEL --reps R --profile P.json`: the mean time
of the node over the warm runs (finer than `best_s`, which is rounded to microseconds).  With
--build DIR given twice (or more) the builds alternate over --rounds rounds and each column
holds one build's best round, so two builds compare side by side in one run.  Needs the onnx
Python package (Debian python3-onnx) and NumPy.

Usage: /usr/bin/python3 bench/bench_convs.py [--build build] [--build /tmp/other-build]
           [--threads 1] [--reps 20000] [--rounds 3] [--only NAME,...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (input channels, plane side, output channels, kernel, stride, pad, depthwise)
SHAPES = {
    "dw16_48_k3_s1": (16, 48, 16, 3, 1, 1, True),
    "dw16_48_k3_s2": (16, 48, 16, 3, 2, 1, True),
    "dw32_24_k3_s2": (32, 24, 32, 3, 2, 1, True),
    "dw64_12_k3_s2": (64, 12, 64, 3, 2, 1, True),
    "dw128_6_k3_s2": (128, 6, 128, 3, 2, 1, True),
    "dw64_80_k3_s2": (64, 80, 64, 3, 2, 1, True),
    "dw16_160_k3_s2": (16, 160, 16, 3, 2, 1, True),
    "dw72_40_k5_s2": (72, 40, 72, 5, 2, 2, True),
    "dw240_10_k5_s2": (240, 10, 240, 5, 2, 2, True),
    "dw16_24_k31": (16, 24, 16, 31, 1, 15, True),
    "dw32_12_k23": (32, 12, 32, 23, 1, 11, True),
    "dw64_14_k13": (64, 14, 64, 13, 1, 6, True),
    "dw128_14_k27": (128, 14, 128, 27, 1, 13, True),
    "stem3to16_96_k3_s2": (3, 96, 16, 3, 2, 1, False),
    "resnet_stem_224_k7_s2": (3, 224, 64, 7, 2, 3, False),
    "c16to16_320_k3": (16, 320, 16, 3, 1, 1, False),
    "c96to24_160_k3": (96, 160, 24, 3, 1, 1, False),
    "pw512to128_3": (512, 3, 128, 1, 1, 0, False),
    "pw16to16_48": (16, 48, 16, 1, 1, 0, False),
    # resnet-fmnist's inverted bottlenecks: 1x1 convs on 24x24 down to 3x3 planes
    "pw16to64_24": (16, 24, 64, 1, 1, 0, False),
    "pw64to16_24": (64, 24, 16, 1, 1, 0, False),
    "pw64to256_6": (64, 6, 256, 1, 1, 0, False),
    "pw256to64_6": (256, 6, 64, 1, 1, 0, False),
    "pw128to512_3": (128, 3, 512, 1, 1, 0, False),
    # 3x3 stride 1, dense: Winograd F(2x2, 3x3) or direct (conv_packed.c, wn_chosen)
    "c16to32_56_k3": (16, 56, 32, 3, 1, 1, False),
    "c32to32_48_k3": (32, 48, 32, 3, 1, 1, False),
    "c32to48_24_k3": (32, 24, 48, 3, 1, 1, False),
    "c16to64_96_k3": (16, 96, 64, 3, 1, 1, False),
    "c64to64_56_k3": (64, 56, 64, 3, 1, 1, False),
    "c128to128_28_k3": (128, 28, 128, 3, 1, 1, False),
    "c256to256_14_k3": (256, 14, 256, 3, 1, 1, False),
    "c512to512_7_k3": (512, 7, 512, 3, 1, 1, False),
    "c64to64_8_k3": (64, 8, 64, 3, 1, 1, False),
    "c256to256_6_k3": (256, 6, 256, 3, 1, 1, False),
    "c256to256_4_k3": (256, 4, 256, 3, 1, 1, False),
    "c512to512_2_k3": (512, 2, 512, 3, 1, 1, False),
    "c64to64_3_k3": (64, 3, 64, 3, 1, 1, False),
    # ResNet-50's 1x1 convs on the small planes (channel blocks)
    "pw256to1024_14": (256, 14, 1024, 1, 1, 0, False),
    "pw1024to256_14": (1024, 14, 256, 1, 1, 0, False),
    "pw512to2048_7": (512, 7, 2048, 1, 1, 0, False),
    "pw2048to512_7": (2048, 7, 512, 1, 1, 0, False),
    # ResNet-50's strided 3x3 convs (direct: phase planes)
    "c128to128_56_k3_s2": (128, 56, 128, 3, 2, 1, False),
    "c64to128_56_k3_s2": (64, 56, 128, 3, 2, 1, False),
    "c128to256_28_k3_s2": (128, 28, 256, 3, 2, 1, False),
    "c256to256_28_k3_s2": (256, 28, 256, 3, 2, 1, False),
    # RepLKNet-31B at 1024: 128-channel 1x1 convs on 256x256 planes (output channel rows 256 KiB
    # apart) against 252x252 (not a power of two)
    "pw128to128_256": (128, 256, 128, 1, 1, 0, False),
    "pw128to128_252": (128, 252, 128, 1, 1, 0, False),
}


def write_model(path, c, h, m, k, s, p, dw):
    rng = np.random.RandomState(0)
    w = rng.randn(m, 1 if dw else c, k, k).astype(np.float32)
    b = rng.randn(m).astype(np.float32)
    oh = (h + 2 * p - k) // s + 1
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=c if dw else 1,
                            kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, h])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, oh, oh])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def node_us(lk, model, threads, reps):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([lk, "bench", model, "--threads", str(threads), "--reps", str(reps),
                        "--profile", f.name], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        d = json.load(open(f.name))
    return sum(n["seconds"] for n in d["nodes"]) / d["runs"] * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="append", help="build directory (repeat to compare)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated shape names")
    a = ap.parse_args()
    builds = a.build or [os.path.join(ROOT, "build")]
    lks = [os.path.join(b, "cli", "lkprobe") for b in builds]
    for lk in lks:
        if not os.access(lk, os.X_OK):
            sys.exit("bench_convs: no lkprobe binary at %s (build first)" % lk)
    names = a.only.split(",") if a.only else list(SHAPES)
    for n in names:
        if n not in SHAPES:
            sys.exit("bench_convs: unknown shape %r (known: %s)" % (n, ", ".join(SHAPES)))
    out = os.path.join(ROOT, "bench", "out", "convs")
    os.makedirs(out, exist_ok=True)
    print("| conv | " + " | ".join("%s (us)" % b for b in builds) + " |")
    print("|---|" + "---|" * len(builds))
    for n in names:
        path = os.path.join(out, n + ".onnx")
        if not os.path.exists(path):
            write_model(path, *SHAPES[n])
        best = [float("inf")] * len(lks)
        for _ in range(a.rounds):
            for i, lk in enumerate(lks):
                best[i] = min(best[i], node_us(lk, path, a.threads, a.reps))
        print("| %s | %s |" % (n, " | ".join("%.2f" % t for t in best)), flush=True)
    print("\n%d thread(s), mean node time over %d warm runs, best of %d alternating rounds"
          % (a.threads, a.reps, a.rounds))


if __name__ == "__main__":
    main()
