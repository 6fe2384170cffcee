#!/usr/bin/python3
"""Backward passes: `lkprobe bench --backward [--param-grads]` beside PyTorch autograd on the
same network, batch 1, in one run, each engine in its own process per measurement.

Both sides seed the first output with ones (PyTorch: y.backward(ones)), time the forward that
records the graph and the backward separately and keep the best of --reps; the rounds
alternate the engines.  "inputs": gradients to the input only (PyTorch: parameters frozen);
"params": to every parameter too (PyTorch: gradients set to None before each pass, as an
optimiser's zero_grad does).  Models come from bench/models.py (seeded random weights,
randomised BN statistics) and their ONNX exports from bench/export_onnx.py (bench/out/NAME.onnx).
lkprobe folds BN into the convolutions in eval mode, so its parameters are the folded
convolution weights and biases; PyTorch keeps BN layers (scale and shift parameters).

Usage: /usr/bin/python3 bench/bench_backward.py [--models resnet18,resnet50] [--threads 1,2]
           [--reps 10] [--rounds 2] [--lkprobe build/cli/lkprobe] [--zoo bench/out]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def torch_worker(name, threads, mode, reps):
    import torch
    sys.path.insert(0, HERE)
    import models
    torch.set_num_threads(threads)
    m = models.build(name)
    for p in m.parameters():
        p.requires_grad_(mode == "params")
    x = torch.randn(1, 3, 224, 224).requires_grad_(True)
    fwd, bwd = [], []
    for i in range(reps + 3):
        m.zero_grad(set_to_none=True)
        x.grad = None
        t0 = time.perf_counter()
        y = m(x)
        t1 = time.perf_counter()
        y.backward(torch.ones_like(y))
        t2 = time.perf_counter()
        if i >= 3:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    print(json.dumps({"fwd": min(fwd), "bwd": min(bwd), "torch": torch.__version__}))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        torch_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,resnet50")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--lkprobe", default=os.path.join(ROOT, "build", "cli", "lkprobe"))
    ap.add_argument("--zoo", default=os.path.join(HERE, "out"))
    a = ap.parse_args()
    rows = []
    cpu = platform.processor() or "unknown"
    for name in a.models.split(","):
        onnx = os.path.join(a.zoo, name + ".onnx")
        if not os.path.exists(onnx):
            sys.exit(f"bench_backward: {onnx} missing (run bench/export_onnx.py --models {name})")
        for t in [int(v) for v in a.threads.split(",")]:
            for mode in ("inputs", "params"):
                best = {"lk": [1e9, 1e9], "pt": [1e9, 1e9]}
                for r in range(a.rounds):
                    cmd = [a.lkprobe, "bench", onnx, "--threads", str(t), "--reps", str(a.reps),
                           "--backward", "--json"] + (["--param-grads"] if mode == "params" else [])
                    j = run_json(cmd)
                    cpu = j.get("cpu", cpu)
                    isa, core = j.get("isa"), j.get("openblas_core")
                    best["lk"] = [min(best["lk"][0], j["best_s"]),
                                  min(best["lk"][1], j["backward"]["best_s"])]
                    p = run_json([sys.executable, os.path.abspath(__file__), "--torch-worker", name,
                                  str(t), mode, str(a.reps)])
                    best["pt"] = [min(best["pt"][0], p["fwd"]), min(best["pt"][1], p["bwd"])]
                    print(f"{name} {t}T {mode} round {r + 1}: lkprobe {j['backward']['best_s'] * 1e3:.1f} ms, "
                          f"torch {p['bwd'] * 1e3:.1f} ms", file=sys.stderr)
                rows.append((name, t, mode, best, isa, core))
    print(f"CPU {cpu}; lkprobe kernels {rows[0][4]}, OpenBLAS {rows[0][5]}; best of {a.reps} x {a.rounds} rounds\n")
    print("| model | threads | gradients | PyTorch fwd / bwd (ms) | lkprobe fwd / bwd (ms) | bwd ratio | fwd+bwd ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, t, mode, b, _, _ in rows:
        pf, pb = b["pt"]
        lf, lb = b["lk"]
        print(f"| {name} | {t} | {mode} | {pf * 1e3:.1f} / {pb * 1e3:.1f} | {lf * 1e3:.1f} / {lb * 1e3:.1f} | "
              f"{lb / pb:.2f}x | {(lf + lb) / (pf + pb):.2f}x |")


if __name__ == "__main__":
    main()
