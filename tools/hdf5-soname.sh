#!/bin/sh
# Prints the soname that linking with HDF5's pkg-config flags resolves to, e.g.
# libhdf5_serial.so.103: the build loads that library with dlopen on first use instead of
# linking it, so that commands not writing HDF5 skip its 30 shared libraries at start-up.
# Usage: tools/hdf5-soname.sh CC [CC ARGS...]   (run by analysis/meson.build)
set -eu
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
printf 'int main(void) { return 0; }\n' >"$d/m.c"
"$@" "$d/m.c" -o "$d/m" -Wl,--no-as-needed $(pkg-config --libs hdf5)
readelf -d "$d/m" | sed -n 's/.*(NEEDED).*\[\(lib[^]]*hdf5[^]]*\)\]/\1/p' | head -n 1
