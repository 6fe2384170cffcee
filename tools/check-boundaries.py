#!/usr/bin/python3
"""check-boundaries.py: the folder rules of doc/CONTRIBUTING.md, checked on the sources.

1. A folder's private headers (model/*, loaders/*-impl.h, ...) are included only from that
   folder; tests/ and fuzz/ may include them (white-box tests).
2. Outside model/ops/, model/transform.c (graph rewrites) and loaders/ (format -> op tables),
   no code tests a node's op against a specific op (`LK_OP_<NAME>`): what an op is comes from
   its descriptor (lk_op_rf_kind, lk_op_roles, lk_node_axis, flags).  LK_OP_COUNT is allowed.
3. Every .c file of a library folder is listed in its meson.build (explicit source lists).
Prints one line per violation and exits 1 when there is any.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
FOLDERS = ["util", "model", "fftconv", "loaders", "render", "analysis", "reports", "cli", "dist"]
WHITE_BOX = {"tests", "fuzz"}
OP_BRANCH_OK = ("model/ops/", "model/transform.c", "loaders/")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
OP_USE = re.compile(r"\bLK_OP_(?!COUNT\b)[A-Z0-9_]+\b")

bad = []
for top in sorted(os.listdir(ROOT)):
    d = os.path.join(ROOT, top)
    if not os.path.isdir(d) or top.startswith(".") or top.startswith("build") or top == "data":
        continue
    for dirpath, _, files in os.walk(d):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
            text = open(path, encoding="utf-8", errors="replace").read()
            for inc in INCLUDE.findall(text):
                head = inc.split("/")[0]
                if head in FOLDERS and head != "util" and head != top and top not in WHITE_BOX:
                    bad.append(f"{rel}: includes '{inc}', private to {head}/")
            if top in WHITE_BOX or top in ("include", "bench", "doc") or rel.startswith(OP_BRANCH_OK):
                continue
            # strip comments and strings before looking for op names
            code = re.sub(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\])*\"", "", text, flags=re.S)
            for m in sorted(set(OP_USE.findall(code))):
                bad.append(f"{rel}: names {m}; read the op's descriptor instead (lk_op_roles, "
                           "lk_op_rf_kind, lk_node_axis)")

for top in FOLDERS:
    mb = os.path.join(ROOT, top, "meson.build")
    if not os.path.exists(mb):
        continue
    listed = open(mb).read()
    for f in sorted(os.listdir(os.path.join(ROOT, top))):
        if f.endswith(".c") and f"'{f}'" not in listed and top != "model":
            bad.append(f"{top}/{f}: not listed in {top}/meson.build")

for line in bad:
    print(line)
if bad:
    print(f"{len(bad)} boundary violation(s)")
    sys.exit(1)
print("boundaries: ok")
