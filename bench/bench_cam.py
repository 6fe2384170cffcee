#!/usr/bin/python3
"""CAM benchmark: `lkprobe cam` vs the same formulas in PyTorch (cam.md §2), same input, same
thread count, in one run, each engine in its own process.

- GradCAM per image: one forward and the gradient at the target layer (PyTorch: forward with a
  hook on the layer, autograd.grad of the logit w.r.t. the layer output, parameters frozen);
  lkprobe: the whole forward plus a backward of the part after the layer.
- ScoreCAM over the channels of the last stage: masked inputs, batched forwards (both sides
  batch 16), softmax of the logits, weighted sum.
- AblationCAM over the channels of the last stage: each channel zeroed, batched; PyTorch
  re-runs the part after the layer (the head), as lkprobe does.

Model time only, warm: both engines run once before the timed run (lkprobe gets the image
twice and the JSON's image_seconds[1] is taken: the forward plus the method; loading and
planning excluded), PyTorch's perf_counter around the same work after a warm-up forward.  --channels caps ScoreCAM at
its first N channels on both sides (the time per channel is what is compared; the whole-layer
time is that times K / N).  The maps of both engines are compared.

Usage: /usr/bin/python3 bench/bench_cam.py [--threads 2] [--cases resnet50,replknet31b]
                                           [--channels 64]
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
SIZE = 224
BATCH = 16


def layer_of(name, m):
    return m.layer4 if name == "resnet50" else m.norm


def head_of(name, m):
    import torch
    if name == "resnet50":
        return lambda a: m.fc(torch.flatten(m.avgpool(a), 1))
    return lambda a: m.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(a, 1), 1))


def torch_worker(name, inputs, threads, channels, out_npz):
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    import models
    torch.set_num_threads(threads)
    m = models.build(name)
    for p in m.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(inputs)[1:])
    store = {}
    layer_of(name, m).register_forward_hook(lambda mod, i, o: store.__setitem__("A", o))
    res = {}
    with torch.no_grad():
        m(x)  # warm-up (allocator, oneDNN/ATen dispatch): lkprobe's planning is excluded too
    # GradCAM: forward + gradient at the layer.
    t0 = time.perf_counter()
    xg = x.clone().requires_grad_(True)  # so that the layer output carries a graph
    z = m(xg)
    c = int(z[0].argmax())
    A = store["A"]
    G, = torch.autograd.grad(z[0, c], A)
    w = G[0].mean((1, 2))
    gc = torch.einsum("k,khw->hw", w, A[0].detach())
    res["gradcam_s"] = time.perf_counter() - t0
    res["gradcam"] = gc.numpy()
    K = A.shape[1]
    # ScoreCAM over the first `channels` channels (the forward that gives A is timed too, as
    # lkprobe's image time includes it).
    Kc = min(K, channels) if channels > 0 else K
    with torch.no_grad():
        t0 = time.perf_counter()
        z = m(x)
        A = store["A"]
        up = F.interpolate(A[:, :Kc], size=(SIZE, SIZE), mode="bilinear", align_corners=True)[0]
        s = torch.zeros(Kc, dtype=torch.float64)
        for k0 in range(0, Kc, BATCH):
            u = up[k0:k0 + BATCH]
            lo = u.flatten(1).min(1)[0][:, None, None]
            hi = u.flatten(1).max(1)[0][:, None, None]
            h = (u - lo) / (hi - lo + 1e-8)
            s[k0:k0 + len(u)] = m(x * h[:, None]).double()[:, c]
        wts = torch.softmax(s, 0).float()
        sc = torch.einsum("k,khw->hw", wts, A[0, :Kc])
        res["scorecam_s"] = time.perf_counter() - t0
        res["scorecam"] = sc.numpy()
        # AblationCAM over all channels: only the head runs.  Ablation value: 0 when A >= 0,
        # else min(A) - 1e7 (pytorch-grad-cam's rule, lkprobe's default).
        head = head_of(name, m)
        t0 = time.perf_counter()
        z = m(x)
        A = store["A"]
        y = float(z[0, c])
        val = 0.0 if float(A.min()) >= 0 else float(A.min()) - 1e7
        wa = torch.zeros(K, dtype=torch.float64)
        for k0 in range(0, K, BATCH):
            nb = min(BATCH, K - k0)
            Ab = A.repeat(nb, 1, 1, 1)
            Ab[torch.arange(nb), torch.arange(k0, k0 + nb)] = val
            wa[k0:k0 + nb] = (y - head(Ab)[:, c].double()) / y
        ab = torch.einsum("k,khw->hw", wa.float(), A[0])
        res["ablationcam_s"] = time.perf_counter() - t0
        res["ablationcam"] = ab.numpy()
    res["K"] = K
    np.savez(out_npz, **{k: v for k, v in res.items() if isinstance(v, np.ndarray)})
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, np.ndarray)}))


def lk_run(lk, binf, inputs, threads, method, channels, npy):
    args = [lk, "cam", binf, "--inputs", inputs, "--method", method, "--threads", str(threads),
            "--batch", str(BATCH), "--json", "-q", "--npy", npy]
    if method == "scorecam" and channels > 0:
        args += ["--max-channels", str(channels)]
    r = subprocess.run(args, check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    # The input holds the image twice: the first is the warm-up, the second is timed.
    sec = j["timings"]["image_seconds"][1]
    return sec, np.load(os.path.join(npy, method + ".raw.npy"))[1]


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default="resnet50,replknet31b")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.worker[0], a.worker[1], int(a.worker[2]), int(a.worker[3]), a.worker[4])
        return
    import torch
    sys.path.insert(0, HERE)
    import models
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    lk = os.path.join(a.build, "cli", "lkprobe")
    inputs = os.path.join(out, "cam_input_%d.npy" % SIZE)
    x1 = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    np.save(inputs, np.concatenate([x1, x1]))
    rows = []
    for name in a.cases.split(","):
        binf = os.path.join(out, "%s_full_%d.bin" % (name, SIZE))
        if not os.path.exists(binf):
            onnx = binf[:-4] + ".onnx"
            torch.onnx.export(models.build(name), torch.randn(1, 3, SIZE, SIZE), onnx,
                              opset_version=14)
            subprocess.run([lk, "convert", onnx, "-o", binf], check=True)
            os.remove(onnx)
        tnpz = os.path.join(out, "cam_torch_%s.npz" % name)
        r = subprocess.run([sys.executable, __file__, "--worker", name, inputs, str(a.threads),
                            str(a.channels), tnpz], check=True, capture_output=True, text=True)
        tj = json.loads(r.stdout.strip().splitlines()[-1])
        tm = np.load(tnpz)
        for method in ("gradcam", "scorecam", "ablationcam"):
            npy = os.path.join(out, "cam_lk_%s" % name)
            ls, lmap = lk_run(lk, binf, inputs, a.threads, method, a.channels, npy)
            ts = tj[method + "_s"]
            k = min(a.channels, tj["K"]) if method == "scorecam" and a.channels > 0 else tj["K"]
            rows.append((name, method, k, tj["K"], ts, ls, ts / ls, rel(lmap, tm[method])))
            print("%s %s: torch %.3f s, lkprobe %.3f s, %.2fx" % (name, method, ts, ls, ts / ls),
                  file=sys.stderr)
    print("\nThreads: %d; torch %s; %dx%d, batch %d; warm model time, one run\n" %
          (a.threads, torch.__version__, SIZE, SIZE, BATCH))
    print("| model | method | channels run (of K) | PyTorch (s) | lkprobe (s) | speed-up | max rel. diff of raw maps |")
    print("|---|---|---|---|---|---|---|")
    for r_ in rows:
        print("| %s | %s | %d of %d | %.3f | %.3f | %.2fx | %.1e |" % r_)


if __name__ == "__main__":
    main()
