#!/usr/bin/python3
"""Generates the PyTorch checkpoint fixtures of tests/test_pth.c (run with Debian's
/usr/bin/python3 and its torch 1.13):

    cd tests/data/pth && /usr/bin/python3 gen_pth_fixtures.py

For every checkpoint F.pth it writes F.expect/names.txt (one tensor name per line, in
the order lkprobe must report them) and F.expect/NNN.npy (the float32 value torch.load
gives, converted with numpy: exact for F16/BF16/ints, round-to-nearest for F64).
The torch-2.x-style zip is written by hand (byteorder and .data/serialization_id entries,
an archive prefix that differs from the file stem, 64-byte aligned stored entries), since
only torch 1.13 is installed.  hostile/ holds the malicious and malformed corpus; every
hostile pickle is assembled opcode by opcode so the bytes are exactly what the test means.
"""
import collections
import io
import os
import pickle
import shutil
import struct
import zipfile
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SENTINEL = "/tmp/lkprobe_pth_sentinel_must_not_exist"
torch.manual_seed(1234)


def rnd(*shape, dtype=torch.float32):
    return (torch.rand(*shape) * 4.77 - 2.385).to(dtype)


def expect(name, sd):
    """Writes name.expect/ from an ordered mapping of tensors (as torch.load returns)."""
    d = os.path.join(HERE, name + ".expect")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "names.txt"), "w") as f:
        for i, (k, t) in enumerate(sd.items()):
            f.write(k + "\n")
            if t.dtype == torch.bfloat16:
                a = t.float().numpy()
            else:
                a = t.numpy().astype(np.float32)
            np.save(os.path.join(d, "%03d.npy" % i), np.ascontiguousarray(a))


def check_roundtrip(path, sd_expected, key=None):
    got = torch.load(path, map_location="cpu")
    if key is not None:
        got = got[key]
    if isinstance(got, torch.nn.Module):
        got = got.state_dict()
    assert list(got.keys()) == list(sd_expected.keys()), (path, list(got.keys()))
    for k in got:
        assert torch.equal(got[k], sd_expected[k]), (path, k)


def basic_sd():
    sd = collections.OrderedDict()
    sd["conv.weight"] = rnd(8, 3, 3, 3)
    sd["conv.bias"] = rnd(8)
    base = rnd(4, 6)
    sd["fc.weight_t"] = base.t()                       # stride (1, 6)
    sd["fc.slice"] = rnd(20)[2:14].view(3, 4)          # storage offset 2
    sd["pw.weight_cl"] = rnd(16, 4, 1, 1).contiguous(memory_format=torch.channels_last)
    sd["dw.weight_cl"] = rnd(6, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    sd["half"] = rnd(5, 7, dtype=torch.float16)
    sd["half.special"] = torch.tensor([0.0, -0.0, 6.0e-8, 1.0e-5, 65504.0, float("inf"),
                                       -float("inf")], dtype=torch.float16)
    sd["bf16"] = rnd(3, 5, dtype=torch.bfloat16)
    sd["bf16_t"] = rnd(5, 3, dtype=torch.bfloat16).t()
    sd["double"] = rnd(2, 3, dtype=torch.float64)
    sd["bn.num_batches_tracked"] = torch.tensor(17, dtype=torch.int64)
    sd["long_vec"] = torch.arange(-3, 9, dtype=torch.int64)
    sd["int32"] = torch.tensor([[1, -2], [3, 2147483]], dtype=torch.int32)
    sd["int16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["int8"] = torch.tensor([-128, 127, 5], dtype=torch.int8)
    sd["uint8"] = torch.tensor([0, 255, 7], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar_f"] = torch.tensor(2.385)
    sd["empty"] = torch.zeros(0, 3)
    sd["shared_a"] = base[1]                             # views into one storage
    sd["shared_b"] = base[:, 2]
    return sd


def small_sd(scale):
    sd = collections.OrderedDict()
    sd["conv.weight"] = rnd(4, 2, 3, 3) * scale
    sd["conv.bias"] = rnd(4) * scale
    sd["bn.running_mean"] = rnd(4)
    sd["bn.num_batches_tracked"] = torch.tensor(3)
    return sd


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1),
                                        torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.stem(x).mean((2, 3)))


# ---- hand-made zip archives ----------------------------------------------------------------

def zip_bytes(entries, align=64, compress=()):
    """entries: [(name, bytes)].  Stored entries whose data starts 64-byte aligned (padding
    in an 'FB' extra field, as PyTorch writes); names in `compress` are deflated instead."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        method, payload = 0, data
        if name in compress:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
            method = 8
        off = len(out)
        extra = b""
        pad = (-(off + 30 + len(nb) + 4)) % align if method == 0 else 0
        if method == 0:
            extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        crc = zlib.crc32(data) & 0xffffffff
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, method, 0, 0x21, crc,
                           len(payload), len(data), len(nb), len(extra)) + nb + extra
        out += payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, method, 0, 0x21,
                               crc, len(payload), len(data), len(nb), 0, 0, 0, 0, 0, off) + nb
    cd_off = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(entries), len(entries), len(central),
                       cd_off, 0)
    return bytes(out)


class FakeStorage:
    def __init__(self, key, typ, numel):
        self.key, self.typ, self.numel = key, typ, numel


class FakeTensor:
    def __init__(self, st, off, size, stride):
        self.args = (st, off, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    raise RuntimeError("never called")


# torch 1.13 lacks this torch 2.x rebuilder; register a stand-in so pickle names it.
_rebuild_parameter_with_state.__module__ = "torch._utils"
if not hasattr(torch._utils, "_rebuild_parameter_with_state"):
    torch._utils._rebuild_parameter_with_state = _rebuild_parameter_with_state


class FakeParam:
    def __init__(self, t):
        self.t = t

    def __reduce__(self):
        return (torch._utils._rebuild_parameter_with_state,
                (self.t, True, collections.OrderedDict(), {"_is_param": True}))


class StoragePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.typ, obj.key, "cpu", obj.numel)
        return None


def fake_pickle(obj, protocol=2):
    b = io.BytesIO()
    StoragePickler(b, protocol=protocol).dump(obj)
    return b.getvalue()


def torch2_style():
    """A torch-2.x-like archive: prefix 'exported_ckpt' (not the stem), byteorder,
    .data/serialization_id, one F32 storage shared by a parameter and a strided view, and a
    BF16 storage."""
    w = rnd(6, 4)
    h = rnd(10, dtype=torch.bfloat16)
    s0 = FakeStorage("0", torch.FloatStorage, 24)
    s1 = FakeStorage("1", torch.BFloat16Storage, 10)
    obj = collections.OrderedDict()
    obj["layer.weight"] = FakeParam(FakeTensor(s0, 0, (6, 4), (4, 1)))
    obj["layer.weight_t"] = FakeTensor(s0, 0, (4, 6), (1, 4))
    obj["layer.tail"] = FakeTensor(s0, 20, (2, 2), (2, 1))
    obj["emb"] = FakeTensor(s1, 3, (7,), (1,))
    p = "exported_ckpt/"
    data = zip_bytes([(p + "data.pkl", fake_pickle(obj)), (p + "byteorder", b"little"),
                      (p + "data/0", w.numpy().tobytes()),
                      (p + "data/1", h.view(torch.int16).numpy().tobytes()),
                      (p + "version", b"3\n"),
                      (p + ".data/serialization_id", b"1234567890123456789012345678901234567890"),
                      (p + ".data/version", b"3\n")])
    with open(os.path.join(HERE, "torch2_style.pth"), "wb") as f:
        f.write(data)
    sd = collections.OrderedDict()
    sd["layer.weight"] = w
    sd["layer.weight_t"] = w.t()
    sd["layer.tail"] = w.reshape(-1)[20:24].reshape(2, 2)
    sd["emb"] = h[3:10]
    expect("torch2_style", sd)


# ---- pickle assembler for the hostile corpus --------------------------------------------------

def u(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def tensor_ops(key="0", numel=4, off=0, size=(4,), stride=(1,), typ="FloatStorage"):
    def tup(xs):
        return b"(" + b"".join(b"J" + struct.pack("<i", x) for x in xs) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" +
            b"(" + u("storage") + glob("torch", typ) + u(key) + u("cpu") +
            b"J" + struct.pack("<i", numel) + b"tQ" +
            b"J" + struct.pack("<i", off) + tup(size) + tup(stride) + b"\x89" +
            glob("collections", "OrderedDict") + b")Rt" + b"R")


def state_dict_pickle(extra=b""):
    """PROTO 2 dict {'w': tensor(storage '0', 4 floats), <extra key/value ops>}."""
    return b"\x80\x02}(" + u("w") + tensor_ops() + extra + b"u."


FOUR = np.array([2.385, -1.5, 0.25, 7.0], np.float32).tobytes()


def ckpt(pkl, storages=None, prefix="archive/"):
    ents = [(prefix + "data.pkl", pkl)]
    for k, v in (storages if storages is not None else {"0": FOUR}).items():
        ents.append((prefix + "data/" + k, v))
    ents.append((prefix + "version", b"3\n"))
    return zip_bytes(ents)


def hostile():
    d = os.path.join(HERE, "hostile")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

    def put(name, data):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    touch = "touch " + SENTINEL
    # Globals that would execute code: they must load as opaque objects.
    put("os_system.pth", ckpt(state_dict_pickle(u("evil") + glob("os", "system") +
                                                u(touch) + b"\x85R")))
    put("builtins_eval.pth", ckpt(state_dict_pickle(
        u("evil") + glob("builtins", "eval") +
        u("__import__('os').system('%s')" % touch) + b"\x85R")))
    put("posix_stack_global.pth", ckpt(
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}(" + u("w") + tensor_ops() +
        u("evil") + b"\x8c\x05posix\x94\x8c\x06system\x94\x93\x94" + u(touch) + b"\x85R" +
        b"u."))
    put("reduce_chain.pth", ckpt(state_dict_pickle(
        u("evil") + glob("builtins", "getattr") + b"(" + glob("builtins", "__import__") +
        u("os") + b"\x85Rq\x01" + u("system") + b"tR" + u(touch) + b"\x85R" +
        b"h\x01" + u("x") + b"\x85R" + b"b")))
    put("newobj_build.pth", ckpt(state_dict_pickle(
        u("evil") + glob("subprocess", "Popen") + b")\x81" + u("cmd") + b"\x85b")))
    # Caps and malformed pickles: clear errors.
    put("deep_marks.pth", ckpt(b"\x80\x02" + b"(" * 100000 + b"N."))
    put("deep_lists.pth", ckpt(b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b"."))
    put("self_list.pth", ckpt(b"\x80\x02]q\x00" + b"h\x00a" * 2000 + b"."))
    put("huge_memo.pth", ckpt(b"\x80\x02Nr\xf0\xff\xff\xff."))
    put("memo_undefined.pth", ckpt(b"\x80\x02h\x05."))
    put("binunicode_past_end.pth", ckpt(b"\x80\x02X\xff\xff\xff\x7fabc."))
    put("binbytes8_huge.pth", ckpt(b"\x80\x04\x8e" + b"\xff" * 8 + b"."))
    put("no_stop.pth", ckpt(b"\x80\x02}"))
    put("stack_underflow.pth", ckpt(b"\x80\x02R."))
    put("unhashable_key.pth", ckpt(b"\x80\x02}]Ns."))
    put("bad_opcode.pth", ckpt(b"\x80\x02\xff."))
    put("qtensor.pth", ckpt(b"\x80\x02}(" + u("q") + glob("torch._utils", "_rebuild_qtensor") +
                            b")Ru."))
    put("ext_code.pth", ckpt(b"\x80\x02\x82\x01."))
    put("bigint_shape.pth", ckpt(state_dict_pickle(
        u("x") + tensor_ops().replace(b"J\x04\x00\x00\x00t", b"\x8a\x09" + b"\x01" * 9 + b"t",
                                      1))))
    # Storages and tensors out of range.
    put("storage_missing.pth", ckpt(state_dict_pickle(u("x") + tensor_ops(key="7"))))
    put("storage_short.pth", ckpt(state_dict_pickle(u("x") + tensor_ops(key="1", numel=100)),
                                  {"0": FOUR, "1": FOUR}))
    put("tensor_oob.pth", ckpt(state_dict_pickle(u("x") + tensor_ops(off=2, size=(3,)))))
    put("tensor_oob_stride.pth", ckpt(state_dict_pickle(
        u("x") + tensor_ops(size=(2, 2), stride=(3, 1)))))
    put("negative_stride.pth", ckpt(state_dict_pickle(
        u("x") + tensor_ops(size=(4,), stride=(-1,), off=3))))
    put("negative_size.pth", ckpt(state_dict_pickle(u("x") + tensor_ops(size=(-4,)))))
    put("negative_offset.pth", ckpt(state_dict_pickle(u("x") + tensor_ops(off=-1))))
    put("complex_storage.pth", ckpt(state_dict_pickle(
        u("x") + tensor_ops(typ="ComplexFloatStorage", numel=2, size=(2,))),
        {"0": FOUR}))
    put("unknown_storage.pth", ckpt(state_dict_pickle(
        u("x") + tensor_ops(typ="QUInt8Storage"))))
    put("no_tensors.pth", ckpt(b"\x80\x02}(" + u("epoch") + b"K\x05u."))
    put("big_endian.pth", zip_bytes([("archive/data.pkl", state_dict_pickle()),
                                     ("archive/byteorder", b"big"),
                                     ("archive/data/0", FOUR)]))
    # Zip-level lies.
    good = ckpt(state_dict_pickle())
    put("zip_bomb.pth", zip_bytes([("archive/data.pkl", state_dict_pickle()),
                                   ("archive/data/0", b"\0" * (1 << 20))],
                                  compress=("archive/data/0",)))
    put("zip_deflated_pickle.pth", zip_bytes([("archive/data.pkl", state_dict_pickle()),
                                              ("archive/data/0", FOUR)],
                                             compress=("archive/data.pkl",)))
    eocd = good.rfind(b"PK\x05\x06")
    cd_off = struct.unpack_from("<I", good, eocd + 16)[0]
    b = bytearray(good)
    struct.pack_into("<I", b, eocd + 16, len(good) + 1000)        # CD offset past the end
    put("zip_cd_offset_past_end.pth", bytes(b))
    b = bytearray(good)
    struct.pack_into("<I", b, eocd + 12, 0x7fffffff)               # CD size lie
    put("zip_cd_size_lie.pth", bytes(b))
    b = bytearray(good)
    struct.pack_into("<HH", b, eocd + 8, 60000, 60000)             # entry count lie
    put("zip_count_lie.pth", bytes(b))
    b = bytearray(good)
    struct.pack_into("<I", b, cd_off + 42, len(good) - 10)          # local header offset lie
    put("zip_local_offset_past_end.pth", bytes(b))
    b = bytearray(good)
    second = cd_off + 46 + len("archive/data.pkl")
    struct.pack_into("<I", b, second + 20, 1 << 30)                 # data size past the end
    struct.pack_into("<I", b, second + 24, 1 << 30)
    put("zip_size_past_end.pth", bytes(b))
    b = bytearray(good)
    first_off = struct.unpack_from("<I", good, cd_off + 42)[0]
    struct.pack_into("<I", b, second + 42, first_off)               # two entries, one header
    put("zip_overlap.pth", bytes(b))
    b = bytearray(good)
    struct.pack_into("<I", b, second + 20, 20)                      # overlaps the next entry
    struct.pack_into("<I", b, second + 24, 20)
    put("zip_overlap_size.pth", bytes(b))
    # ZIP64: saturated EOCD fields pointing at a ZIP64 record with absurd counts and sizes.
    b = bytearray(good[:eocd])
    z64 = len(b)
    b += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, 1 << 60, 1 << 60, 1 << 62,
                     cd_off)
    b += struct.pack("<IIQI", 0x07064b50, 0, z64, 1)
    b += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
    put("zip64_absurd.pth", bytes(b))
    b = bytearray(good)
    struct.pack_into("<HH", b, eocd + 8, 0xffff, 0xffff)            # ZIP64 without a locator
    put("zip64_no_locator.pth", bytes(b))
    put("zip_no_pickle.pth", zip_bytes([("archive/other.txt", b"hello")]))
    put("zip_truncated_eocd.pth", good[:-5])
    # Legacy stream lies.
    legacy = open(os.path.join(HERE, "basic_legacy.pth"), "rb").read()
    put("legacy_truncated_data.pth", legacy[:-3])
    b = bytearray(legacy)
    i = b.index(b"little_endian") + len("little_endian") + 1
    while b[i] not in (0x88, 0x89):
        i += 1
    b[i] = 0x89
    put("legacy_big_endian.pth", bytes(b))


def main():
    # Plain zip and legacy saves of one dict covering dtypes and strided views.
    sd = basic_sd()
    torch.save(sd, os.path.join(HERE, "basic_zip.pth"))
    torch.save(sd, os.path.join(HERE, "basic_legacy.pth"), _use_new_zipfile_serialization=False)
    for n in ("basic_zip", "basic_legacy"):
        check_roundtrip(os.path.join(HERE, n + ".pth"), sd)
    expect("basic_zip", sd)
    expect("basic_legacy", sd)
    for proto in (4, 5):
        n = "proto%d" % proto
        torch.save(sd, os.path.join(HERE, n + ".pth"), pickle_protocol=proto)
        check_roundtrip(os.path.join(HERE, n + ".pth"), sd)
        expect(n, sd)
    torch.save(sd, os.path.join(HERE, "proto4_legacy.pth"), pickle_protocol=4,
               _use_new_zipfile_serialization=False)
    expect("proto4_legacy", sd)

    # {'model': sd, 'optimizer': ...}: 'model' is preferred over the optimizer's buffers.
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.rand(2, 3, 8, 8)).sum().backward()
    opt.step()
    ck = {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 7,
          "args": {"lr": 0.1, "name": "net"}}
    torch.save(ck, os.path.join(HERE, "nested_model.pth"))
    expect("nested_model", net.state_dict())
    check_roundtrip(os.path.join(HERE, "nested_model.pth"), net.state_dict(), key="model")

    # BasicSR style: params_ema preferred, params selectable with --key.
    a, b = small_sd(1.0), small_sd(0.5)
    torch.save({"params": a, "params_ema": b}, os.path.join(HERE, "params_ema.pth"))
    expect("params_ema", b)
    expect("params_ema.params", a)

    # 'state_dict' with DataParallel 'module.' prefixes (stripped), legacy container.
    sdm = collections.OrderedDict(("module." + k, v) for k, v in small_sd(2.0).items())
    torch.save({"state_dict": sdm, "meta": {"epoch": 3}},
               os.path.join(HERE, "state_dict_module.pth"), _use_new_zipfile_serialization=False)
    expect("state_dict_module", collections.OrderedDict((k[7:], v) for k, v in sdm.items()))

    # Two unnamed candidates: ambiguous without --key.
    torch.save({"a": small_sd(1.0), "b": small_sd(3.0)}, os.path.join(HERE, "ambiguous.pth"))

    # A whole pickled nn.Module (class from __main__ becomes an opaque global).
    net2 = Net()
    net2.stem[1].running_mean.uniform_(-1, 1)
    torch.save(net2, os.path.join(HERE, "whole_module.pth"))
    expect("whole_module", net2.state_dict())
    torch.save(net2, os.path.join(HERE, "whole_module_legacy.pth"),
               _use_new_zipfile_serialization=False)
    expect("whole_module_legacy", net2.state_dict())

    torch2_style()
    hostile()


if __name__ == "__main__":
    main()
