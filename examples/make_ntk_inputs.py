#!/usr/bin/python3
"""Writes Fashion-MNIST test images and labels for `lkprobe ntk` (README, "NTK spectra"): the
first N images of examples/train_examples.py's test split (interleaved by class, so N/10 per
class), on the 96x96 training canvas exactly as the models saw them in training (centred,
2x pixel repetition, grey copied to R, G and B, values in [0, 1], no mean/std).

    tools/fetch-data.sh
    /usr/bin/python3 examples/make_ntk_inputs.py 500 data/ntk-fmnist    # X.npy, Y.npy

Needs numpy and torch (Debian python3-torch), like train_examples.py.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_examples as tx  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "data", "ntk-fmnist")
    _, _, te, yte = tx.split(tx.load_fmnist())
    x = tx.to_canvas(te[:n], tx.CANVAS).numpy().astype(np.float32)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "X.npy"), x)
    np.save(os.path.join(out, "Y.npy"), yte[:n].astype(np.int64))
    print("%s: X %s, Y %s (%d per class)" % (out, x.shape, yte[:n].shape, n // 10))


if __name__ == "__main__":
    main()
