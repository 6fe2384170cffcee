#!/usr/bin/python3
"""Generates small test images and PIL reference outputs for tests/test_image.c.

Run with Debian's /usr/bin/python3 (python3-pil, python3-numpy).  Outputs next to this script:
  rgb.png gray.png palette.png rgba.png photo.jpg gray.jpg       inputs
  <name>.<WxH>.<filter>.npy                                        PIL resize results (float32)
  rgb.tensor.npy                                                   ToTensor+Normalize of rgb.png resized bicubic to 40x30
  bad-*.png / bad-*.jpg                                            corrupt inputs
"""
import os
import numpy as np
from PIL import Image

D = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)

h, w = 73, 97
yy, xx = np.mgrid[0:h, 0:w]
rgb = np.stack([(xx * 255 // (w - 1)), (yy * 255 // (h - 1)), ((xx + yy) * 3) % 256], -1)
rgb = np.clip(rgb + rng.integers(-40, 40, size=rgb.shape), 0, 255).astype(np.uint8)
Image.fromarray(rgb, "RGB").save(os.path.join(D, "rgb.png"))
Image.fromarray(rgb[..., 0], "L").save(os.path.join(D, "gray.png"))
Image.fromarray(rgb, "RGB").convert("P", palette=Image.ADAPTIVE, colors=16).save(os.path.join(D, "palette.png"))
rgba = np.concatenate([rgb, rng.integers(0, 255, size=(h, w, 1)).astype(np.uint8)], -1)
Image.fromarray(rgba, "RGBA").save(os.path.join(D, "rgba.png"))
Image.fromarray(rgb, "RGB").save(os.path.join(D, "photo.jpg"), quality=90)
Image.fromarray(rgb[..., 1], "L").save(os.path.join(D, "gray.jpg"), quality=85)

filters = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
for name in ["rgb.png", "gray.png", "palette.png", "rgba.png", "photo.jpg", "gray.jpg"]:
    im = Image.open(os.path.join(D, name)).convert("RGB")
    np.save(os.path.join(D, f"{name}.decoded.npy"), np.asarray(im).astype(np.float32))
    for size in [(40, 30), (120, 90), (97, 50)]:
        for fn, f in filters.items():
            if name != "rgb.png" and (fn != "bicubic" or size != (40, 30)):
                continue
            r = np.asarray(im.resize(size, f)).astype(np.float32)
            np.save(os.path.join(D, f"{name}.{size[0]}x{size[1]}.{fn}.npy"), r)

im = Image.open(os.path.join(D, "rgb.png")).convert("RGB").resize((40, 30), Image.BICUBIC)
t = np.asarray(im).astype(np.float32).transpose(2, 0, 1) / np.float32(255)
mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
np.save(os.path.join(D, "rgb.tensor.npy"), ((t - mean) / std)[None].astype(np.float32))

raw = open(os.path.join(D, "rgb.png"), "rb").read()
open(os.path.join(D, "bad-truncated.png"), "wb").write(raw[: len(raw) // 2])
flip = bytearray(raw)
flip[len(raw) // 2] ^= 0x55
open(os.path.join(D, "bad-crc.png"), "wb").write(bytes(flip))
j = open(os.path.join(D, "photo.jpg"), "rb").read()
open(os.path.join(D, "bad-truncated.jpg"), "wb").write(j[:200])
open(os.path.join(D, "bad-notimage.png"), "wb").write(b"GIF89a not really an image")
