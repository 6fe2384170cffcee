#!/usr/bin/python3
"""Writes the ERF example inputs: the first 50 test images of examples/train_examples.py's split
(5 per class), each doubled to 56x56 by pixel repetition and centred on a black 256x256 canvas,
grey copied to R, G and B, as 8-bit PNG in examples/images/.  With `lkprobe erf --size 256
--mean 0 --std 1` these reproduce the inputs of the ERF reference in erf-reference.json exactly.

Needs the data set: tools/fetch-data.sh.  Run with /usr/bin/python3 (numpy, PIL).
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_examples as tx  # noqa: E402


def main():
    _, _, te, yte = tx.split(tx.load_fmnist())
    out = os.path.join(HERE, "images")
    os.makedirs(out, exist_ok=True)
    size, obj = tx.ERF_CANVAS, tx.OBJ
    c0 = (size - obj) // 2
    for j in range(tx.ERF_IMAGES):
        img = np.repeat(np.repeat(te[j], tx.UPSCALE, 0), tx.UPSCALE, 1)
        canvas = np.zeros((size, size), np.uint8)
        canvas[c0:c0 + obj, c0:c0 + obj] = img
        name = "fmnist-test-%02d-%s.png" % (j, tx.CLASS_NAMES[yte[j]].split("/")[0].lower().replace(" ", "-"))
        Image.fromarray(np.stack([canvas] * 3, -1), "RGB").save(os.path.join(out, name), optimize=True)
    print("wrote %d images to %s" % (tx.ERF_IMAGES, out))


if __name__ == "__main__":
    main()
