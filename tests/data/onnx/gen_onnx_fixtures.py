#!/usr/bin/python3
"""Generates the small ONNX fixtures used by tests/test_onnx.c.

Run with Debian's interpreter (python3-torch 1.13; the onnx Python package is not needed):

    /usr/bin/python3 tests/data/onnx/gen_onnx_fixtures.py

Two kinds of files:
  * torch.onnx.export of tiny modules (opset variants, folding patterns), with the input and
    the PyTorch output stored next to them as <name>.in.npy / <name>.out.npy;
  * hand-written protobuf bytes for odd or hostile cases (unpacked repeated fields, Constant
    node weights, float16 initializers, external data, unknown op, com.microsoft domain,
    dim_param inputs).
Everything is deterministic (fixed seeds); files are small (a few KiB).
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.dirname(os.path.abspath(__file__))


# ---- protobuf writer ----------------------------------------------------------------------

def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(num, wt):
    return varint(num << 3 | wt)


def f_varint(num, v):
    return tag(num, 0) + varint(v)


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return tag(num, 2) + varint(len(b)) + b


def f_f32(num, x):
    return tag(num, 5) + struct.pack('<f', x)


FLOAT, INT64, FLOAT16, DOUBLE, INT32 = 1, 7, 10, 11, 6


def tensor(name, arr, dtype=FLOAT, mode='raw', unpacked_dims=True, external=False):
    """TensorProto. mode: raw | typed | typed_unpacked."""
    arr = np.asarray(arr)
    b = b''
    for d in arr.shape:
        b += f_varint(1, d)                      # dims, unpacked (as most writers do)
    b += f_varint(2, dtype)
    b += f_bytes(8, name)
    flat = arr.reshape(-1)
    if external:
        b += f_bytes(13, f_bytes(1, 'location') + f_bytes(2, name + '.bin'))
        b += f_varint(14, 1)
        return b
    if mode == 'raw':
        npdt = {FLOAT: '<f4', INT64: '<i8', FLOAT16: '<f2', DOUBLE: '<f8', INT32: '<i4'}[dtype]
        b += f_bytes(9, flat.astype(npdt).tobytes())
    elif dtype == FLOAT:
        if mode == 'typed_unpacked':
            for x in flat:
                b += f_f32(4, float(x))
        else:
            b += f_bytes(4, flat.astype('<f4').tobytes())
    elif dtype == INT64:
        if mode == 'typed_unpacked':
            for x in flat:
                b += f_varint(7, int(x))
        else:
            b += f_bytes(7, b''.join(varint(int(x)) for x in flat))
    elif dtype == FLOAT16:
        bits = flat.astype('<f2').view('<u2')
        b += f_bytes(5, b''.join(varint(int(x)) for x in bits))
    elif dtype == DOUBLE:
        b += f_bytes(10, flat.astype('<f8').tobytes())
    return b


def attr_i(name, v):
    return f_bytes(1, name) + f_varint(3, v) + f_varint(20, 2)


def attr_f(name, v):
    return f_bytes(1, name) + f_f32(2, v) + f_varint(20, 1)


def attr_s(name, v):
    return f_bytes(1, name) + f_bytes(4, v) + f_varint(20, 3)


def attr_t(name, t):
    return f_bytes(1, name) + f_bytes(5, t) + f_varint(20, 4)


def attr_ints(name, vs, packed=False):
    b = f_bytes(1, name)
    if packed:
        b += f_bytes(8, b''.join(varint(v) for v in vs))
    else:
        for v in vs:
            b += f_varint(8, v)
    return b + f_varint(20, 7)


def attr_floats(name, vs):
    b = f_bytes(1, name)
    for v in vs:
        b += f_f32(7, v)
    return b + f_varint(20, 6)


def node(op, ins, outs, name='', attrs=(), domain=None):
    b = b''
    for i in ins:
        b += f_bytes(1, i)
    for o in outs:
        b += f_bytes(2, o)
    if name:
        b += f_bytes(3, name)
    b += f_bytes(4, op)
    for a in attrs:
        b += f_bytes(5, a)
    if domain is not None:
        b += f_bytes(7, domain)
    return b


def value_info(name, dims, elem=FLOAT):
    shp = b''
    for d in dims:
        if isinstance(d, str):
            shp += f_bytes(1, f_bytes(2, d))
        else:
            shp += f_bytes(1, f_varint(1, d))
    tt = f_varint(1, elem) + f_bytes(2, shp)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, tt))


def graph(nodes, inputs, outputs, inits=(), name='g'):
    b = b''
    for n in nodes:
        b += f_bytes(1, n)
    b += f_bytes(2, name)
    for t in inits:
        b += f_bytes(5, t)
    for i in inputs:
        b += f_bytes(11, i)
    for o in outputs:
        b += f_bytes(12, o)
    return b


def model(g, opset=13, ir=7, extra=()):
    b = f_varint(1, ir) + f_bytes(2, 'lkprobe-fixtures') + f_bytes(3, '1')
    b += f_bytes(7, g)
    b += f_bytes(8, f_bytes(1, '') + f_varint(2, opset))
    for dom, ver in extra:
        b += f_bytes(8, f_bytes(1, dom) + f_varint(2, ver))
    return b


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def save_npy(name, arr):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(arr, dtype=np.float32))


def rnd(seed, *shape):
    g = np.random.default_rng(seed)
    return g.uniform(-1.0, 1.0, size=shape).astype(np.float32)


# ---- torch exports ------------------------------------------------------------------------

class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        x = F.max_pool2d(x, 2)
        x = F.relu6(self.c2(x))
        x = F.adaptive_avg_pool2d(x, 1)
        x = x.reshape(x.size(0), -1)
        return self.fc(x)


class Variants(nn.Module):
    """Ops whose ONNX encoding changes between opsets 7 and 17."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(4, 6, 1)

    def forward(self, x):
        a, b = torch.split(x, [1, 3], dim=1)           # Split (attr <= 12, input >= 13)
        y = torch.cat([b, a], dim=1)
        y = self.c(y).clamp(0.0, 6.0)                   # Clip (attrs < 11, inputs >= 11)
        y = y[:, 1:5, :, 1:]                            # Slice (attrs < 10, inputs >= 10)
        y = y.unsqueeze(2).squeeze(2)                   # Unsqueeze/Squeeze axes
        y = F.pad(y, (1, 1, 0, 0))                      # Pad (attr < 11, input >= 11)
        y = torch.softmax(y, dim=1)                     # Softmax axis=1 on 4-D (flatten < 13)
        return y.mean(dim=(2, 3), keepdim=True)         # ReduceMean axes


class PadReflect(nn.Module):
    def forward(self, x):
        return F.pad(x, (1, 2, 0, 1), mode='reflect') * 2.385


class Upsample(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode='nearest') + 0.5


class Bilinear(nn.Module):
    def forward(self, x):
        return F.interpolate(x, size=(5, 7), mode='bilinear', align_corners=False)


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(2, 8, 3, padding=1)
        self.p = nn.PixelShuffle(2)

    def forward(self, x):
        return torch.sigmoid(self.p(self.c(x)))


def export(mod, x, name, opset, dynamic=False, keep_bn=False):
    torch.manual_seed(0)
    mod.eval()
    kw = {}
    if keep_bn:
        kw['training'] = torch.onnx.TrainingMode.PRESERVE
        kw['do_constant_folding'] = False
    if dynamic:
        kw['dynamic_axes'] = {'x': {0: 'N'}, 'y': {0: 'N'}}
    path = os.path.join(OUT, name + '.onnx')
    torch.onnx.export(mod, (x,), path, opset_version=opset, input_names=['x'],
                      output_names=['y'], **kw)
    with torch.no_grad():
        y = mod(x)
    save_npy(name + '.in.npy', x.numpy())
    save_npy(name + '.out.npy', y.numpy())


def torch_fixtures():
    torch.manual_seed(1)
    m = TinyCNN()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 1.5)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
    x = torch.from_numpy(rnd(11, 1, 3, 8, 8))
    export(m, x, 'tiny_cnn', 13, dynamic=True, keep_bn=True)
    torch.manual_seed(2)
    v = Variants()
    xv = torch.from_numpy(rnd(12, 1, 4, 5, 6))
    for op in (7, 9, 11, 13, 17):
        export(v, xv, 'variants_op%d' % op, op)
    export(PadReflect(), torch.from_numpy(rnd(13, 1, 2, 4, 5)), 'pad_reflect', 13)
    xu = torch.from_numpy(rnd(14, 1, 2, 3, 4))
    export(Upsample(), xu, 'upsample_op9', 9)
    export(Upsample(), xu, 'upsample_op13', 13)
    export(Bilinear(), xu, 'bilinear_op11', 11)
    torch.manual_seed(3)
    export(Shuffle(), torch.from_numpy(rnd(15, 1, 2, 3, 3)), 'shuffle', 14)


# ---- hand-written files -------------------------------------------------------------------

def conv_ref(x, w, b):
    with torch.no_grad():
        return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()


def hand_fixtures():
    x = rnd(21, 1, 2, 4, 4)
    w = rnd(22, 3, 2, 3, 3)
    b = rnd(23, 3)
    y = np.maximum(conv_ref(x, w, b), 0.0)
    inp = [value_info('x', [1, 2, 4, 4])]
    out = [value_info('y', [1, 3, 2, 2])]

    # Conv weights as unpacked float_data, bias as packed float_data, attribute ints packed,
    # initializers also listed as graph inputs (old IR style).
    g = graph([node('Conv', ['x', 'w', 'b'], ['c'], 'conv0',
                    [attr_ints('kernel_shape', [3, 3], packed=True),
                     attr_ints('strides', [1, 1])]),
               node('Relu', ['c'], ['y'], 'relu0')],
              inp + [value_info('w', [3, 2, 3, 3]), value_info('b', [3])], out,
              [tensor('w', w, mode='typed_unpacked'), tensor('b', b, mode='typed')])
    write('unpacked.onnx', model(g, opset=9, ir=4))
    save_npy('hand.in.npy', x)
    save_npy('hand.out.npy', y)

    # Weights in Constant nodes (paddle2onnx style) + Identity aliases + value_floats.
    g = graph([node('Constant', [], ['wc'], 'const_w', [attr_t('value', tensor('wc', w))]),
               node('Constant', [], ['bc'], 'const_b', [attr_floats('value_floats', list(b))]),
               node('Identity', ['wc'], ['wa'], 'alias_w'),
               node('Identity', ['bc'], ['ba'], 'alias_b'),
               node('Conv', ['x', 'wa', 'ba'], ['c'], 'conv0'),
               node('Relu', ['c'], ['y'], 'relu0')], inp, out)
    write('constant_nodes.onnx', model(g, opset=13))

    # float16 weight (raw) and float16 bias (int32_data bit patterns), double initializer.
    w16 = w.astype(np.float16)
    b16 = b.astype(np.float16)
    y16 = np.maximum(conv_ref(x, w16.astype(np.float32), b16.astype(np.float32)), 0.0)
    g = graph([node('Conv', ['x', 'w', 'b'], ['c'], 'conv0'),
               node('Relu', ['c'], ['y'], 'relu0')], inp, out,
              [tensor('w', w16, FLOAT16), tensor('b', b16, FLOAT16, mode='typed')])
    write('fp16_init.onnx', model(g, opset=13))
    save_npy('fp16_init.out.npy', y16)

    # External data, unknown op, com.microsoft domain.
    g = graph([node('Conv', ['x', 'w', 'b'], ['y'], 'conv0')], inp, out,
              [tensor('w', w, external=True), tensor('b', b)])
    write('external.onnx', model(g, opset=13))
    g = graph([node('FooBar', ['x'], ['y'], 'mystery_node')], inp, [value_info('y', [1, 2, 4, 4])])
    write('unknown_op.onnx', model(g, opset=13))
    g = graph([node('FusedConv', ['x', 'w', 'b'], ['y'], 'fused0', [], 'com.microsoft')],
              inp, out, [tensor('w', w), tensor('b', b)])
    write('ms_domain.onnx', model(g, opset=13, extra=[('com.microsoft', 1)]))

    # dim_param inputs: only the batch dynamic / spatial dims dynamic.
    g = graph([node('Relu', ['x'], ['y'], 'relu0')], [value_info('x', ['N', 2, 4, 4])],
              [value_info('y', ['N', 2, 4, 4])])
    write('dyn_batch.onnx', model(g, opset=13))
    g = graph([node('Relu', ['x'], ['y'], 'relu0')], [value_info('x', ['N', 2, 'H', 'W'])],
              [value_info('y', ['N', 2, 'H', 'W'])])
    write('dyn_hw.onnx', model(g, opset=13))

    # Input passed straight to an output through Identity (must become an IDENTITY node).
    g = graph([node('Identity', ['x'], ['y'], 'pass')], [value_info('x', [1, 2, 4, 4])],
              [value_info('y', [1, 2, 4, 4])])
    write('passthrough.onnx', model(g, opset=13))

    # Opset out of range.
    g = graph([node('Relu', ['x'], ['y'], 'relu0')], inp, [value_info('y', [1, 2, 4, 4])])
    write('opset6.onnx', model(g, opset=6))
    write('opset22.onnx', model(g, opset=22))


def main():
    os.makedirs(OUT, exist_ok=True)
    hand_fixtures()
    torch_fixtures()
    print('fixtures written to', OUT)


if __name__ == '__main__':
    sys.exit(main())
