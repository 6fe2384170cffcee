#!/usr/bin/python3
"""Empirical-NTK benchmark: `lkprobe ntk` vs PyTorch 1.13 per-sample autograd (functorch vmap
of jacrev over samples, or the per-sample loop, Jacobian blocks contracted in float64 per parameter tensor), trace
mean over the 10 outputs, 64 inputs, same threads, one run.  Each engine runs in its own
process so that its peak RSS is measured separately; the kernels are compared.

Memory: when all outputs at once would exceed 4 GB (ResNet-18), one output at a time with a
per-sample autograd loop (n x P float32 rows): functorch's vmap over the 64 samples went past
15 GB and vmap over chunks of 16 was killed for memory on this 23 GB machine.

Cases:
  replknet  the bundled RepLKNet-style Fashion-MNIST model (examples/replknet-fmnist.onnx,
            deploy form), 64 real test images on its 96x96 canvas (data/ntk-fmnist/X.npy from
            examples/make_ntk_inputs.py; seeded noise when absent)
  resnet18  a ResNet-18-shaped net (torchvision layout, 10 classes, BN kept), 64x64 noise inputs

Usage: /usr/bin/python3 bench/bench_ntk.py [--threads 2] [--cases replknet,resnet18]
Process CPU seconds (user + system, /usr/bin/time, including loading) are printed too: on a
shared machine they are steadier than wall times.
Times cover the kernel computation only (model loading excluded): PyTorch from the first
per-sample gradient to the contracted kernel, lkprobe its JSON "seconds" (rows, contraction,
spectrum).
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
N = 64


def resnet18(nc=10):
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, s, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if s != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
            return (y + (x if self.down is None else self.down(x))).relu()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            layers, cin = [], 64
            for cout, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers += [Block(cin, cout, s), Block(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(512, nc)

        def forward(self, x):
            return self.fc(self.layers(self.stem(x)).mean((2, 3)))

    return Net()


def resnet18_eval():
    """The seeded ResNet-18 with non-trivial BN statistics, scales and shifts, in eval mode.

    The scales and shifts must be distinct tensors: torch.onnx.export in eval mode merges
    initializers with identical values, so default-initialised BN layers (all ones, all
    zeros) of one width would become ONE tied parameter in the ONNX file (the stem BN's
    weight and bias feeding the four layer-1 BNs through Identity nodes), whose NTK is not
    the untied PyTorch model's."""
    import torch
    torch.manual_seed(0)
    m = resnet18()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                mod.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                mod.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(c, generator=gen))
    return m.eval()


def torch_model(name):
    """(functional f(params, x) for one sample, params dict)."""
    import torch
    if name == "replknet":
        sys.path.insert(0, os.path.join(ROOT, "examples"))
        import train_examples as tx
        g = tx.read_onnx(os.path.join(ROOT, "examples", "replknet-fmnist.onnx"))
        used = {n for nd in g["nodes"] for n in nd["in"]}
        params = {k: v.clone() for k, v in g["inits"].items() if k in used and v.dim() > 0}

        def f(p, x):
            gg = dict(g)
            gg["inits"] = dict(g["inits"], **p)
            return tx.run_onnx(gg, x[None])[0]
        return f, params
    m = resnet18_eval()
    from functorch import make_functional_with_buffers
    fm, p, b = make_functional_with_buffers(m)
    names = [n for n, _ in m.named_parameters()]

    def f(pd, x):
        return fm(tuple(pd[n] for n in names), b, x[None])[0]
    return f, dict(zip(names, p))


def torch_worker(name, inputs, threads, out_npy):
    import torch
    from functorch import jacrev, vmap
    torch.set_num_threads(threads)
    f, params = torch_model(name)
    x = torch.from_numpy(np.load(inputs))
    n, P = x.shape[0], sum(v.numel() for v in params.values())
    t0 = time.perf_counter()
    K = torch.zeros(n, n, dtype=torch.float64)
    if n * 10 * P * 4 < 4e9:   # all outputs at once: (n, 10) x params
        J = vmap(jacrev(f), in_dims=(None, 0))(params, x)
        for v in J.values():
            for o in range(10):
                b = v[:, o].reshape(n, -1).double()
                K += b @ b.T
        del J
    else:                      # one output at a time, per-sample loop: n x params rows
        plist = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        for o in range(10):
            J = {k: torch.empty(n, v.numel()) for k, v in params.items()}
            for i in range(n):
                g = torch.autograd.grad(f(plist, x[i])[o], list(plist.values()))
                for (k, _), gi in zip(plist.items(), g):
                    J[k][i] = gi.reshape(-1)
            for v in J.values():
                b = v.double()
                K += b @ b.T
            del J
    K /= 10
    dt = time.perf_counter() - t0
    np.save(out_npy, K.numpy())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": dt, "peak_rss_mb": rss, "P": P}))


def prepare(name, out):
    import torch
    if name == "replknet":
        model = os.path.join(ROOT, "examples", "replknet-fmnist.onnx")
        src = os.path.join(ROOT, "data", "ntk-fmnist", "X.npy")
        x = (np.load(src)[:N] if os.path.exists(src) else
             np.random.default_rng(0).random((N, 3, 96, 96)).astype(np.float32))
        what = "Fashion-MNIST test images" if os.path.exists(src) else "uniform noise"
    else:
        model = os.path.join(out, "resnet18_64.onnx")
        m = resnet18_eval()
        torch.onnx.export(m, torch.randn(1, 3, 64, 64), model, opset_version=14,
                          training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False)
        x = np.random.default_rng(0).standard_normal((N, 3, 64, 64)).astype(np.float32)
        what = "standard-normal noise"
    inputs = os.path.join(out, f"ntk_inputs_{name}.npy")
    np.save(inputs, x)
    return model, inputs, what


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", default="replknet,resnet18")
    ap.add_argument("--max-mem", default="6000M")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        torch_worker(a.worker[0], a.worker[1], int(a.worker[2]), a.worker[3])
        return
    import torch
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    lk = os.path.join(a.build, "cli", "lkprobe")
    rows = []
    for name in a.cases.split(","):
        model, inputs, what = prepare(name, out)
        tk = os.path.join(out, f"ntk_torch_{name}.npy")
        r = subprocess.run(["/usr/bin/time", "-f", "cpu_s=%U+%S maxrss_kb=%M", sys.executable, __file__,
                            "--worker", name, inputs, str(a.threads), tk],
                           check=True, capture_output=True, text=True)
        tj = json.loads(r.stdout.strip().splitlines()[-1])
        t_rss = int(r.stderr.strip().split("maxrss_kb=")[-1]) / 1024.0
        t_cpu = eval(r.stderr.strip().split("cpu_s=")[-1].split()[0])
        lkdir = os.path.join(out, f"ntk_lk_{name}")
        r = subprocess.run(["/usr/bin/time", "-f", "cpu_s=%U+%S maxrss_kb=%M", lk, "ntk", model, "--inputs",
                            inputs, "--threads", str(a.threads), "--max-mem", a.max_mem,
                            "--npy", lkdir, "--json", "-q"],
                           check=True, capture_output=True, text=True)
        lj = json.loads(r.stdout)
        if lj["P"] != tj["P"]:
            sys.exit(f"{name}: lkprobe sees P = {lj['P']:,} parameters, PyTorch {tj['P']:,}: "
                     "the exported ONNX file ties parameters (merged identical initializers), "
                     "so the kernels are not comparable")
        l_rss = int(r.stderr.strip().split("maxrss_kb=")[-1]) / 1024.0
        l_cpu = eval(r.stderr.strip().split("cpu_s=")[-1].split()[0])
        kt, kl = np.load(tk), np.load(os.path.join(lkdir, "kernel.npy"))
        rel = float(np.linalg.norm(kt - kl) / np.linalg.norm(kt))
        rows.append((name, what, lj["P"], tj["seconds"], lj["seconds"], lj["seconds_rows"],
                     lj["seconds_contract"], tj["seconds"] / lj["seconds"], t_rss, l_rss, rel,
                     lj["method"], t_cpu, l_cpu))
        print(f"{name}: torch {tj['seconds']:.1f} s, lkprobe {lj['seconds']:.1f} s, "
              f"speed-up {tj['seconds'] / lj['seconds']:.2f}x, kernel rel. diff {rel:.1e}",
              file=sys.stderr)
    print(f"\nThreads: {a.threads}; torch {torch.__version__} with functorch vmap; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"{N} inputs, trace mean over 10 outputs\n")
    print("| model | inputs | P | PyTorch (s) | lkprobe (s): rows + contraction | speed-up | "
          "process CPU s, PyTorch / lkprobe | PyTorch peak RSS (MiB) | lkprobe peak RSS (MiB) | "
          "kernel rel. diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r_ in rows:
        print(f"| {r_[0]} | {r_[1]} | {r_[2]:,} | {r_[3]:.1f} | {r_[4]:.1f}: {r_[5]:.1f} + "
              f"{r_[6]:.1f} | {r_[7]:.2f}x | {r_[12]:.0f} / {r_[13]:.0f} | {r_[8]:.0f} | {r_[9]:.0f} | "
              f"{r_[10]:.1e} |")


if __name__ == "__main__":
    main()
