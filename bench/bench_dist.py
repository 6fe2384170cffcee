#!/usr/bin/python3
"""Strong scaling of the distributed commands on one machine: the same work as 1 rank x T
threads and as T ranks x 1 thread (mpirun), in one run, with the efficiency
t(1 x T) / t(T x 1) printed (1.0 = the ranks lose nothing to the split and the merge).

  erf:     `lkprobe erf` on the RepLKNet-31B shape (deployed form, bench/models.py) at SIZE,
           N noise images;  the JSON's per-image time and reduce_seconds feed the 64-node model
           printed at the end (README "Running on a cluster").
  filters: `lkprobe filters --db` over M checkpoints: ResNet-50 and RepLKNet-31B (bench/models.py,
           exported once to bench/out/) alternating, hard-linked under distinct names (every one
           is extracted and appended); --small: copies of the bundled example models and two
           test-zoo models instead.  Also timed without --db (extraction and statistics only),
           so the time of rank 0 writing the database and the launch separate from the rest.

Usage: /usr/bin/python3 bench/bench_dist.py [--build build] [--threads 2] [--size 512]
                                             [--images 16] [--checkpoints 40] [--skip-erf]
                                             [--small]
Needs an MPI build (meson -Dmpi=enabled) and mpirun; torch only to export the model once
(bench/out/, not committed).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The bundled Fashion-MNIST models (examples/, 0.3 M parameters each) and test-zoo models.
ZOO = ["examples/replknet-fmnist.onnx", "examples/resnet-fmnist.onnx",
       "tests/fixtures/zoo/resnet.onnx", "tests/fixtures/zoo/mobilenetv2.onnx"]


def mpirun(n):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(n)], env


def timed(cmd, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return dt, r.stdout


def launch_seconds(lk, T):
    """Best of 3: mpirun starting T lkprobe processes that join MPI (`filters --help`)
    and exit."""
    pre, env = mpirun(T)
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(pre + [lk, "filters", "--help"], capture_output=True, env=env)
        best = min(best, time.perf_counter() - t0)
    return best


def export_model(lk, size):
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    binf = os.path.join(out, f"replknet31b_features_{size}.bin")
    if not os.path.exists(binf):
        import torch
        sys.path.insert(0, HERE)
        import models
        onnx = binf[:-4] + ".onnx"
        m = models.build("replknet31b", features_only=True)
        torch.onnx.export(m, torch.randn(1, 3, size, size), onnx, opset_version=14)
        subprocess.run([lk, "convert", onnx, "-o", binf], check=True)
        os.remove(onnx)
    return binf


def bench_erf(a, lk, T):
    model = export_model(lk, a.size)
    args = [model, "--noise", str(a.images), "--size", str(a.size), "--n", str(a.images),
            "--json", "-q"]
    pre, env = mpirun(T)
    t1, o1 = timed([lk, "erf"] + args + ["--threads", str(T)])
    tp, op = timed(pre + [lk, "erf"] + args + ["--threads", "1"], env)
    j1, jp = json.loads(o1), json.loads(op)
    assert j1["ratios"] == jp["ratios"], (j1["ratios"], jp["ratios"])
    print(f"erf RepLKNet-31B {a.size}x{a.size}, {a.images} images:")
    print(f"  1 rank x {T} threads: {t1:7.2f} s   (in the pass {j1['image_seconds']:.2f} s)")
    print(f"  {T} ranks x 1 thread: {tp:7.2f} s   (in the pass {jp['image_seconds']:.2f} s "
          f"over the ranks; reduce {jp['reduce_seconds'] * 1e3:.1f} ms)")
    print(f"  efficiency t(1x{T}) / t({T}x1) = {t1 / tp:.3f}; ratios equal")
    # Per-image cost on one core (the ranks' pass time per image) and the reduction cost.
    per_image = jp["image_seconds"] / a.images
    return {"t1": t1, "tp": tp, "per_image_1core": per_image, "reduce": jp["reduce_seconds"],
            "map_mb": a.size * a.size * 8 / 1e6}


def export_checkpoints():
    """ResNet-50 and RepLKNet-31B (full classifiers, BN kept) as ONNX, exported once."""
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    paths = []
    for name in ["resnet50", "replknet31b"]:
        p = os.path.join(out, f"ckpt_{name}.onnx")
        if not os.path.exists(p):
            import torch
            sys.path.insert(0, HERE)
            import models
            torch.onnx.export(models.build(name), torch.randn(1, 3, 224, 224), p,
                              opset_version=14)
        paths.append(p)
    return paths


def same_files(a, b, names):
    for n in names:
        with open(os.path.join(a, n), "rb") as fa, open(os.path.join(b, n), "rb") as fb:
            while True:
                x, y = fa.read(1 << 24), fb.read(1 << 24)
                if x != y:
                    return False
                if not x:
                    break
    return True


def bench_filters(a, lk, T):
    tmp = tempfile.mkdtemp(prefix="lkprobe-bench-dist-")
    try:
        srcs = [os.path.join(ROOT, z) for z in ZOO] if a.small else export_checkpoints()
        paths = []
        for i in range(a.checkpoints):
            src = srcs[i % len(srcs)]
            dst = os.path.join(tmp, f"ckpt{i:03d}_{os.path.basename(src)}")
            try:  # distinct paths are distinct checkpoints for the DB; no copy of 300 MB files
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            paths.append(dst)
        lst = os.path.join(tmp, "list.txt")
        with open(lst, "w") as f:
            f.write("\n".join(paths) + "\n")
        pre, env = mpirun(T)
        base = [lk, "filters", "--models", lst, "--json", "-q"]
        # Extraction and statistics only, then the same with the database.
        s1, _ = timed(base + ["--threads", str(T)])
        sp, _ = timed(pre + base + ["--threads", "1"], env)
        t1, o1 = timed(base + ["--db", os.path.join(tmp, "db1"), "--threads", str(T)])
        tp, op = timed(pre + base + ["--db", os.path.join(tmp, "dbp"), "--threads", "1"], env)
        same = same_files(os.path.join(tmp, "db1"), os.path.join(tmp, "dbp"),
                          ["filters.npy", "meta.csv", "lkprobe-db.tsv", "dataset.h5"])
        nfil = json.loads(o1)['pca']['n_filters']
        print(f"filters --db, {a.checkpoints} checkpoints ({nfil} 3x3 filters, "
              f"{nfil * 36 / 1e6:.0f} MB; {'small models' if a.small else 'ResNet-50 / RepLKNet-31B'}):")
        print(f"  1 rank x {T} threads: {t1:7.2f} s   (without --db {s1:7.2f} s)")
        print(f"  {T} ranks x 1 thread: {tp:7.2f} s   (without --db {sp:7.2f} s)")
        # The launch alone (mpirun starting T processes that join MPI and exit).
        t0 = launch_seconds(lk, T)
        print(f"  launch of {T} ranks {t0:.2f} s; writing the database (rank 0, serial) "
              f"{t1 - s1:.2f} s in one process, {tp - sp:.2f} s under mpirun")
        print(f"  efficiency t(1x{T}) / t({T}x1) = {t1 / tp:.3f} (without --db {s1 / sp:.3f}); "
              f"without the launch: {t1 / max(tp - t0, 1e-9):.3f}; databases and JSON "
              f"identical: {same and o1 == op}")
    finally:
        shutil.rmtree(tmp)


def model_64(r, cores):
    """Time of N images on P nodes of `cores` cores: each rank (one per core) computes its
    images (per-image cost on one core), then the map (H x W doubles) is summed to rank 0."""
    n_img = 50
    print(f"model, {n_img} images at this size, per-image cost {r['per_image_1core']:.2f} s on one "
          f"core, reduction {r['reduce'] * 1e3:.1f} ms for a {r['map_mb']:.1f} MB map on this node:")
    for nodes in [1, 8, 64]:
        ranks = nodes * cores
        per_rank = -(-n_img // ranks)
        t = per_rank * r["per_image_1core"] + r["reduce"] * max(1, (ranks - 1).bit_length())
        print(f"  {nodes:3d} nodes x {cores} cores: {t:7.2f} s (images per rank {per_rank})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--checkpoints", type=int, default=40)
    ap.add_argument("--skip-erf", action="store_true")
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    lk = os.path.join(a.build, "cli", "lkprobe")
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name'"], capture_output=True,
                         text=True).stdout.split(":")[-1].strip()
    print(f"CPU: {cpu}; {os.cpu_count()} cores; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; load {os.getloadavg()[0]:.1f}")
    if not a.skip_erf:
        r = bench_erf(a, lk, a.threads)
        model_64(r, a.threads)
    bench_filters(a, lk, a.threads)


if __name__ == "__main__":
    main()
