#!/usr/bin/python3
"""Writes the TF.js layers-model fixtures of tests/test_tfjs.c (Debian /usr/bin/python3 + numpy).

Each model is a model.json + weight shards written by hand the way the TF.js converter writes
Keras 2 exports (channels_last, manifest sorted by layer name, `<layer>/<weight>` names).  The
expected outputs come from an independent NHWC reference written here with TF's semantics
('same' = extra pad after, max-pool pads with -inf, average pool over valid cells, UpSampling2D
as tfjs: nearest floor(o/s), bilinear with alignCorners = halfPixelCenters = false).

  seq/      Sequential: Conv2D+BN+LeakyReLU+MaxPool 'same' (odd sizes), strided dilated conv,
            ReLU(max_value), ZeroPadding2D, AvgPool 'same', Flatten -> Dense -> Dropout ->
            Dense softmax
  func/     Functional: DepthwiseConv2D (multiplier 2, relu6), SeparableConv2D, Conv2D groups,
            PReLU (shared axes), Concatenate, Add, UpSampling2D nearest + bilinear,
            Conv2DTranspose 'same' stride 2, Activation swish/hard_sigmoid/tanh, BN without
            scale, GlobalAveragePooling2D, Reshape, Dense
  quant/    uint8 / uint16 / float16 weights, a weight straddling two shards, an optimizer entry
  bad-*/    custom layer, Keras 3 nodes, shared layer, manifest errors
"""
import json
import os
import shutil

import numpy as np

rng = np.random.default_rng(4242)


# ---- NHWC reference ---------------------------------------------------------------------------
def same_pad(n, k, s, d):
    out = -(-n // s)
    t = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return t // 2, t - t // 2


def pad_hw(x, pads, value=0.0):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def conv2d(x, k, stride=(1, 1), dil=(1, 1), padding="valid", groups=1, bias=None):
    kh, kw, cig, co = k.shape
    if padding == "same":
        x = pad_hw(x, [same_pad(x.shape[1], kh, stride[0], dil[0]),
                       same_pad(x.shape[2], kw, stride[1], dil[1])])
    n, h, w, c = x.shape
    oh = (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (w - (kw - 1) * dil[1] - 1) // stride[1] + 1
    y = np.zeros((n, oh, ow, co))
    cog = co // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = x[:, i * dil[0]: i * dil[0] + (oh - 1) * stride[0] + 1: stride[0],
                          j * dil[1]: j * dil[1] + (ow - 1) * stride[1] + 1: stride[1],
                          g * cig:(g + 1) * cig]
                y[..., g * cog:(g + 1) * cog] += patch @ k[i, j, :, g * cog:(g + 1) * cog]
    return y + (0 if bias is None else bias)


def depthwise(x, k, stride=(1, 1), padding="valid", bias=None):
    kh, kw, c, m = k.shape
    full = np.zeros((kh, kw, c, c * m))
    for ci in range(c):
        for mi in range(m):
            full[:, :, ci, ci * m + mi] = k[:, :, ci, mi]
    return conv2d(x, full, stride, (1, 1), padding, 1, bias)


def conv_transpose_same(x, k, s, bias):
    kh, kw, co, ci = k.shape
    n, h, w, _ = x.shape
    fh, fw = (h - 1) * s + kh, (w - 1) * s + kw
    full = np.zeros((n, max(fh, h * s), max(fw, w * s), co))
    for i in range(h):
        for j in range(w):
            full[:, i * s:i * s + kh, j * s:j * s + kw, :] += np.einsum("nc,hwoc->nhwo", x[:, i, j, :], k)
    pb = max(kh - s, 0) // 2
    pw = max(kw - s, 0) // 2
    return full[:, pb:pb + h * s, pw:pw + w * s, :] + bias


def pool(x, k, s, padding, kind):
    if padding == "same":
        pads = [same_pad(x.shape[1], k, s, 1), same_pad(x.shape[2], k, s, 1)]
    else:
        pads = [(0, 0), (0, 0)]
    xp = pad_hw(x, pads, -np.inf if kind == "max" else 0.0)
    ones = pad_hw(np.ones_like(x[..., :1]), pads, 0.0)
    n, h, w, c = xp.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * s:i * s + k, j * s:j * s + k, :]
            if kind == "max":
                y[:, i, j, :] = win.max(axis=(1, 2))
            else:
                cnt = ones[:, i * s:i * s + k, j * s:j * s + k, :].sum(axis=(1, 2))
                y[:, i, j, :] = win.sum(axis=(1, 2)) / cnt
    return y


def upsample(x, s, mode):
    n, h, w, c = x.shape
    oh, ow = h * s, w * s
    if mode == "nearest":
        return x[:, np.arange(oh) // s][:, :, np.arange(ow) // s]
    def axis(o, n_in):
        src = o * (n_in / (n_in * s))
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo
    y0, y1, fy = axis(np.arange(oh), h)
    x0, x1, fx = axis(np.arange(ow), w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bot = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]


def bn(x, g, b, m, v, eps):
    return g * (x - m) / np.sqrt(v + eps) + b


def leaky(x, a):
    return np.where(x > 0, x, a * x)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---- writers -----------------------------------------------------------------------------------
def layer(cls, name, cfg, inbound):
    c = dict(cfg)
    c["name"] = name
    c.setdefault("trainable", True)
    return {"class_name": cls, "name": name, "config": c,
            "inbound_nodes": [] if inbound is None else [[[i, 0, 0, {}] for i in inbound]]}


def write_model(d, topology, weights, shard_split=None, quant=None, extra_manifest=None, fmt=True):
    """weights: dict name -> float32 array (Keras layout).  quant: name -> dtype."""
    os.makedirs(d, exist_ok=True)
    entries, data = [], b""
    for name in sorted(weights):
        a = np.asarray(weights[name], np.float32)
        e = {"name": name, "shape": list(a.shape), "dtype": "float32"}
        q = (quant or {}).get(name)
        if q in ("uint8", "uint16"):
            lo, hi = float(a.min()), float(a.max())
            levels = 255 if q == "uint8" else 65535
            scale = (hi - lo) / levels if hi > lo else 1.0
            qa = np.round((a - lo) / scale).astype(np.uint8 if q == "uint8" else np.uint16)
            e["quantization"] = {"dtype": q, "scale": scale, "min": lo}
            data += qa.astype("<u1" if q == "uint8" else "<u2").tobytes()
            weights[name] = (qa.astype(np.float64) * scale + lo).astype(np.float32)
        elif q == "float16":
            e["quantization"] = {"dtype": "float16"}
            data += a.astype("<f2").tobytes()
            weights[name] = a.astype(np.float16).astype(np.float32)
        else:
            data += a.astype("<f4").tobytes()
        entries.append(e)
    for e, raw in (extra_manifest or []):
        entries.append(e)
        data += raw
    cuts = [0] + (shard_split or []) + [len(data)]
    paths = []
    for i in range(len(cuts) - 1):
        p = "group1-shard%dof%d.bin" % (i + 1, len(cuts) - 1)
        with open(os.path.join(d, p), "wb") as f:
            f.write(data[cuts[i]:cuts[i + 1]])
        paths.append(p)
    mj = {"modelTopology": topology, "weightsManifest": [{"paths": paths, "weights": entries}]}
    if fmt:
        mj = {"format": "layers-model", "generatedBy": "keras v2.10.0",
              "convertedBy": "TensorFlow.js Converter v3.21.0", **mj}
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(mj, f, indent=1)
    return weights


def save(d, name, a):
    np.save(os.path.join(d, name), np.ascontiguousarray(a, dtype=np.float32))


def nchw(x):
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def rnd(*shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---- seq ---------------------------------------------------------------------------------------
def build_seq():
    x = rng.uniform(0, 1, (2, 9, 11, 3)).astype(np.float32)
    W = {
        "conv2d_1/kernel": rnd(3, 3, 3, 6), "conv2d_1/bias": rnd(6),
        "batch_normalization_1/gamma": 1 + rnd(6, scale=0.2), "batch_normalization_1/beta": rnd(6),
        "batch_normalization_1/moving_mean": rnd(6),
        "batch_normalization_1/moving_variance": 0.5 + np.abs(rnd(6)),
        "conv2d_2/kernel": rnd(3, 3, 6, 5, scale=0.3),
        "dense_1/kernel": rnd(75, 7, scale=0.3), "dense_1/bias": rnd(7),
        "dense_2/kernel": rnd(7, 4), "dense_2/bias": rnd(4),
    }
    L = [
        layer("Conv2D", "conv2d_1", {"batch_input_shape": [None, 9, 11, 3], "filters": 6,
              "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
              "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear",
              "use_bias": True}, None),
        layer("BatchNormalization", "batch_normalization_1", {"axis": -1, "epsilon": 0.001,
              "center": True, "scale": True, "momentum": 0.99}, None),
        layer("LeakyReLU", "leaky_re_lu_1", {"alpha": 0.1}, None),
        layer("MaxPooling2D", "max_pooling2d_1", {"pool_size": [2, 2], "strides": [2, 2],
              "padding": "same", "data_format": "channels_last"}, None),
        layer("ZeroPadding2D", "zero_padding2d_1", {"padding": [[1, 0], [2, 1]],
              "data_format": "channels_last"}, None),
        layer("Conv2D", "conv2d_2", {"filters": 5, "kernel_size": [3, 3], "strides": [2, 2],
              "padding": "same", "dilation_rate": 1, "activation": "linear", "use_bias": False,
              "data_format": "channels_last"}, None),
        layer("ReLU", "re_lu_1", {"max_value": 0.6, "negative_slope": 0.0, "threshold": 0.0}, None),
        layer("AveragePooling2D", "average_pooling2d_1", {"pool_size": [3, 3], "strides": [1, 1],
              "padding": "same", "data_format": "channels_last"}, None),
        layer("Flatten", "flatten_1", {"data_format": "channels_last"}, None),
        layer("Dense", "dense_1", {"units": 7, "activation": "tanh", "use_bias": True}, None),
        layer("Dropout", "dropout_1", {"rate": 0.5}, None),
        layer("Dense", "dense_2", {"units": 4, "activation": "softmax", "use_bias": True}, None),
    ]
    for l in L:
        del l["inbound_nodes"]
    topo = {"keras_version": "2.1.6", "backend": "tensorflow",
            "model_config": {"class_name": "Sequential", "config": {"name": "seq", "layers": L}}}
    W = write_model("seq", topo, W, fmt=False)
    h = conv2d(x, W["conv2d_1/kernel"], padding="same", bias=W["conv2d_1/bias"])
    h = bn(h, W["batch_normalization_1/gamma"], W["batch_normalization_1/beta"],
           W["batch_normalization_1/moving_mean"], W["batch_normalization_1/moving_variance"], 1e-3)
    h = leaky(h, 0.1)
    h = pool(h, 2, 2, "same", "max")
    h = pad_hw(h, [(1, 0), (2, 1)])
    h = conv2d(h, W["conv2d_2/kernel"], (2, 2), padding="same")
    h = np.clip(h, 0, 0.6)
    h = pool(h, 3, 1, "same", "avg")
    assert h.shape[1:] == (3, 5, 5), h.shape
    h = h.reshape(2, -1)                          # Keras flatten: HWC order
    h = np.tanh(h @ W["dense_1/kernel"] + W["dense_1/bias"])
    y = softmax(h @ W["dense_2/kernel"] + W["dense_2/bias"])
    save("seq", "input.npy", nchw(x))
    save("seq", "output.npy", y)


# ---- func --------------------------------------------------------------------------------------
def build_func():
    H, Wd = 6, 8
    x = rng.uniform(-1, 1, (1, H, Wd, 4)).astype(np.float32)
    W = {
        "dw/depthwise_kernel": rnd(3, 3, 4, 2), "dw/bias": rnd(8),
        "sep/depthwise_kernel": rnd(3, 3, 8, 1), "sep/pointwise_kernel": rnd(1, 1, 8, 6), "sep/bias": rnd(6),
        "gconv/kernel": rnd(1, 1, 2, 6), "gconv/bias": rnd(6),
        "prelu/alpha": rnd(1, 1, 6, scale=0.2),
        "up_conv/kernel": rnd(3, 3, 12, 4, scale=0.3),
        "convt/kernel": rnd(3, 3, 3, 4, scale=0.3), "convt/bias": rnd(3),
        "bn2/beta": rnd(3), "bn2/moving_mean": rnd(3), "bn2/moving_variance": 0.5 + np.abs(rnd(3)),
        "dense/kernel": rnd(5, 2), "dense/bias": rnd(2),
    }
    ch = "channels_last"
    L = [
        layer("InputLayer", "inp", {"batch_input_shape": [None, None, None, 4], "dtype": "float32",
              "sparse": False}, None),
        layer("DepthwiseConv2D", "dw", {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
              "depth_multiplier": 2, "data_format": ch, "dilation_rate": [1, 1],
              "activation": "relu6", "use_bias": True}, ["inp"]),
        layer("SeparableConv2D", "sep", {"filters": 6, "kernel_size": [3, 3], "strides": [1, 1],
              "padding": "same", "depth_multiplier": 1, "data_format": ch,
              "dilation_rate": [1, 1], "activation": "linear", "use_bias": True}, ["dw"]),
        layer("Conv2D", "gconv", {"filters": 6, "kernel_size": [1, 1], "strides": [1, 1],
              "padding": "valid", "groups": 2, "data_format": ch, "dilation_rate": [1, 1],
              "activation": "swish", "use_bias": True}, ["inp"]),
        layer("Add", "add", {}, ["sep", "gconv"]),
        layer("PReLU", "prelu", {"shared_axes": [1, 2]}, ["add"]),
        layer("Concatenate", "cat", {"axis": -1}, ["prelu", "gconv"]),
        layer("UpSampling2D", "up_nn", {"size": [2, 2], "data_format": ch, "interpolation": "nearest"}, ["cat"]),
        layer("UpSampling2D", "up_bl", {"size": [2, 2], "data_format": ch, "interpolation": "bilinear"}, ["cat"]),
        layer("Add", "up_add", {}, ["up_nn", "up_bl"]),
        layer("Conv2D", "up_conv", {"filters": 4, "kernel_size": [3, 3], "strides": [2, 2],
              "padding": "same", "data_format": ch, "dilation_rate": [1, 1],
              "activation": "hard_sigmoid", "use_bias": False}, ["up_add"]),
        layer("Conv2DTranspose", "convt", {"filters": 3, "kernel_size": [3, 3], "strides": [2, 2],
              "padding": "same", "data_format": ch, "dilation_rate": [1, 1], "output_padding": None,
              "activation": "linear", "use_bias": True}, ["up_conv"]),
        layer("BatchNormalization", "bn2", {"axis": 3, "epsilon": 0.01, "center": True,
              "scale": False}, ["convt"]),
        layer("Activation", "act", {"activation": "tanh"}, ["bn2"]),
        layer("GlobalAveragePooling2D", "gap", {"data_format": ch}, ["act"]),
        layer("Reshape", "resh", {"target_shape": [1, 3]}, ["gap"]),
        layer("Reshape", "resh2", {"target_shape": [3]}, ["resh"]),
        layer("Concatenate", "cat2", {"axis": 1}, ["resh2", "gap_pad"]),
        layer("Dense", "dense", {"units": 2, "activation": "linear", "use_bias": True}, ["cat2"]),
    ]
    # A second 2-feature branch so cat2 has 5 features: a Dense-free path via GAP of gconv.
    L.insert(-2, layer("GlobalAveragePooling2D", "gap_g", {"data_format": ch}, ["gconv"]))
    L.insert(-2, layer("Reshape", "gap_r", {"target_shape": [3, 2]}, ["gap_g"]))
    L.insert(-2, layer("Flatten", "gap_f", {"data_format": ch}, ["gap_r"]))
    L.insert(-2, layer("Dense", "gap_pad", {"units": 2, "activation": "linear", "use_bias": False}, ["gap_f"]))
    W["gap_pad/kernel"] = rnd(6, 2)
    # Layers listed out of order on purpose (the loader must not depend on the file order).
    L[3], L[4] = L[4], L[3]
    topo = {"class_name": "Functional", "config": {"name": "func", "layers": L,
            "input_layers": [["inp", 0, 0]], "output_layers": [["dense", 0, 0]]},
            "keras_version": "2.10.0", "backend": "tensorflow"}
    W = write_model("func", topo, W)
    dw = np.minimum(np.maximum(depthwise(x, W["dw/depthwise_kernel"], padding="same", bias=W["dw/bias"]), 0), 6)
    sep = conv2d(depthwise(dw, W["sep/depthwise_kernel"], padding="same"), W["sep/pointwise_kernel"],
                 bias=W["sep/bias"])
    g = conv2d(x, W["gconv/kernel"], groups=2, bias=W["gconv/bias"])
    g = g * sigmoid(g)
    a = sep + g
    p = np.where(a > 0, a, W["prelu/alpha"] * a)
    cat = np.concatenate([p, g], axis=-1)
    up = upsample(cat, 2, "nearest") + upsample(cat, 2, "bilinear")
    uc = conv2d(up, W["up_conv/kernel"], (2, 2), padding="same")
    uc = np.clip(0.2 * uc + 0.5, 0, 1)
    ct = conv_transpose_same(uc, W["convt/kernel"], 2, W["convt/bias"])
    b2 = (ct - W["bn2/moving_mean"]) / np.sqrt(W["bn2/moving_variance"] + 0.01) + W["bn2/beta"]
    gap = np.tanh(b2).mean(axis=(1, 2))
    gg = g.mean(axis=(1, 2)).reshape(1, 3, 2).reshape(1, 6) @ W["gap_pad/kernel"]
    y = np.concatenate([gap, gg], axis=1) @ W["dense/kernel"] + W["dense/bias"]
    save("func", "input.npy", nchw(x))
    save("func", "output.npy", y)
    # Intermediate check values (NCHW) for debugging a mismatch layer by layer.
    save("func", "cat.npy", nchw(cat))
    save("func", "convt.npy", nchw(ct))


# ---- quant -------------------------------------------------------------------------------------
def build_quant():
    x = rng.uniform(0, 1, (1, 5, 5, 2)).astype(np.float32)
    W = {"c1/kernel": rnd(3, 3, 2, 4), "c1/bias": rnd(4), "c2/kernel": rnd(1, 1, 4, 3), "c2/bias": rnd(3)}
    L = [
        layer("InputLayer", "in", {"batch_input_shape": [None, 5, 5, 2]}, None),
        layer("Conv2D", "c1", {"filters": 4, "kernel_size": 3, "strides": 1, "padding": "valid",
              "activation": "relu", "use_bias": True}, ["in"]),
        layer("Conv2D", "c2", {"filters": 3, "kernel_size": 1, "padding": "valid",
              "activation": "sigmoid", "use_bias": True}, ["c1"]),
    ]
    topo = {"keras_version": "2.4.0", "backend": "tensorflow",
            "model_config": {"class_name": "Model", "config": {"name": "q", "layers": L,
                             "input_layers": [["in", 0, 0]], "output_layers": [["c2", 0, 0]]}}}
    opt = np.arange(3, dtype="<f4").tobytes()
    W = write_model("quant", topo, W, shard_split=[37],
                    quant={"c1/kernel": "uint8", "c2/kernel": "uint16", "c1/bias": "float16"},
                    extra_manifest=[({"name": "Adam/iter", "shape": [3], "dtype": "float32",
                                      "group": "optimizer"}, opt)])
    h = np.maximum(conv2d(x, W["c1/kernel"], bias=W["c1/bias"]), 0)
    y = sigmoid(conv2d(h, W["c2/kernel"], bias=W["c2/bias"]))
    save("quant", "input.npy", nchw(x))
    save("quant", "output.npy", nchw(y))


# ---- hostile -----------------------------------------------------------------------------------
def build_bad():
    base = {"class_name": "Model", "config": {"name": "b", "layers": [
        layer("InputLayer", "in", {"batch_input_shape": [None, 4, 4, 1]}, None),
        layer("Conv2D", "c", {"filters": 1, "kernel_size": 1, "use_bias": False}, ["in"])],
        "input_layers": [["in", 0, 0]], "output_layers": [["c", 0, 0]]}}
    W = {"c/kernel": np.ones((1, 1, 1, 1), np.float32)}

    def variant(name, mutate_topo=None, mutate_mj=None, weights=None):
        topo = json.loads(json.dumps(base))
        if mutate_topo:
            mutate_topo(topo)
        write_model(name, topo, dict(weights or W))
        if mutate_mj:
            p = os.path.join(name, "model.json")
            with open(p) as f:
                mj = json.load(f)
            mutate_mj(mj)
            with open(p, "w") as f:
                json.dump(mj, f)

    def custom(t):
        t["config"]["layers"][1]["class_name"] = "MultiplyBeta"
    variant("bad-custom", custom)

    def keras3(t):
        t["config"]["layers"][1]["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__",
            "config": {"shape": [None, 4, 4, 1], "keras_history": ["in", 0, 0]}}], "kwargs": {}}]
    variant("bad-keras3", keras3)

    def shared(t):
        t["config"]["layers"][1]["inbound_nodes"].append([["in", 0, 0, {}]])
    variant("bad-shared", shared)

    def short(mj):
        mj["weightsManifest"][0]["weights"][0]["shape"] = [1, 1, 1, 2]
    variant("bad-size", mutate_mj=short)

    def rename(mj):
        mj["weightsManifest"][0]["weights"][0]["name"] = "other/kernel"
    variant("bad-missing", mutate_mj=rename)

    def escape(mj):
        mj["weightsManifest"][0]["paths"] = ["../seq/group1-shard1of1.bin"]
    variant("bad-path", mutate_mj=escape)

    def dtype(mj):
        mj["weightsManifest"][0]["weights"][0]["dtype"] = "string"
    variant("bad-dtype", mutate_mj=dtype)

    def dyn(t):
        t["config"]["layers"][0]["config"]["batch_input_shape"] = [None, None, None, 1]
    variant("dynamic", dyn)

    def wrongshape(mj):
        mj["weightsManifest"][0]["weights"][0]["shape"] = [1, 1, 1]
        mj["weightsManifest"][0]["weights"].append({"name": "pad", "shape": [1], "dtype": "float32"})
        with open("bad-wshape/group1-shard1of1.bin", "ab") as f:
            f.write(b"\0\0\0\0")
    os.makedirs("bad-wshape", exist_ok=True)
    variant("bad-wshape", mutate_mj=wrongshape)

    def cycle(t):
        t["config"]["layers"][1]["inbound_nodes"] = [[["c", 0, 0, {}]]]
    variant("bad-cycle", cycle)


def main():
    for d in os.listdir("."):
        if os.path.isdir(d):
            shutil.rmtree(d)
    build_seq()
    build_func()
    build_quant()
    build_bad()


if __name__ == "__main__":
    main()
