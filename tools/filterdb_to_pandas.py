#!/usr/bin/python3
"""Adds the pandas `meta` table to a filter database written by `lkprobe filters --db DIR`, so
the CNN Filter DB analysis notebooks can read it unchanged:

    meta    = pd.read_hdf("DIR/dataset.h5", "meta")      # MultiIndex model_id, conv_depth, conv_depth_norm
    filters = h5py.File("DIR/dataset.h5")["filters"]     # N x 9 float32

lkprobe writes `filters` (and `filters.npy`) and `meta.csv` itself; pandas' HDFStore layout is
produced here, with pandas (Debian python3-pandas and python3-tables).  lkprobe rewrites
dataset.h5 when it appends models, so run this again after each `--db` append.

Usage: /usr/bin/python3 tools/filterdb_to_pandas.py DIR
"""
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: filterdb_to_pandas.py DIR")
    d = sys.argv[1]
    try:
        import pandas as pd
    except ImportError:
        sys.exit("filterdb_to_pandas: pandas is missing (apt-get install python3-pandas python3-tables)")
    csv = os.path.join(d, "meta.csv")
    if not os.path.exists(csv):
        sys.exit("filterdb_to_pandas: %s: no meta.csv (not an lkprobe filter database?)" % d)
    meta = pd.read_csv(csv)
    meta = meta.set_index(["model_id", "conv_depth", "conv_depth_norm"])
    h5 = os.path.join(d, "dataset.h5")
    if not os.path.exists(h5):
        print("note: %s has no dataset.h5 (lkprobe built without HDF5); writing meta only" % d,
              file=sys.stderr)
    meta.to_hdf(h5, key="meta", mode="a")
    back = pd.read_hdf(h5, "meta")
    assert back.shape == meta.shape
    print("%s: meta table with %d rows written (key 'meta')" % (h5, len(back)))


if __name__ == "__main__":
    main()
