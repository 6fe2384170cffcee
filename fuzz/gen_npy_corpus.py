#!/usr/bin/python3
"""Writes the seed corpus of fuzz/fuzz_npy.c into fuzz/corpus/npy/: small .npy files of every
dtype kind lk_npy_read converts (float 2/4/8, signed and unsigned ints, bool), C and Fortran
order, format versions 1.0, 2.0 and 3.0, a 0-d and an empty array.  Needs NumPy.

Usage: /usr/bin/python3 fuzz/gen_npy_corpus.py
"""
import os

import numpy as np
from numpy.lib import format as npf

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "npy")


def save(name, a, version=None):
    with open(os.path.join(HERE, name + ".npy"), "wb") as f:
        if version is None:
            np.save(f, a)
        else:
            npf.write_array(f, a, version=version)


rng = np.random.default_rng(3)
x = rng.standard_normal((2, 3, 4)).astype(np.float32)
save("f4", x)
save("f8", x.astype(np.float64))
save("f2", x.astype(np.float16))
save("i2", (x * 100).astype(np.int16))
save("i8", (x * 1e6).astype(np.int64))
save("u1", (np.abs(x) * 50).astype(np.uint8))
save("b1", x > 0)
save("fortran", np.asfortranarray(x[0]))
save("v2", x[:, :, :2], version=(2, 0))
save("v3", x[1], version=(3, 0))
save("scalar", np.float32(1.5))
save("empty", np.zeros((0, 3), np.float32))
