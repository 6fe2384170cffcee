#!/bin/sh
# Prints the soname that linking with a package's pkg-config flags resolves to for the library
# whose name matches PATTERN (a sed basic regex inside lib...), e.g. libhdf5_serial.so.103,
# libcairo.so.2, libmpi.so.40.  The build loads such libraries with dlopen on first use
# instead of linking them, so that commands not using them skip their shared libraries (and
# those libraries' own dependencies) at start-up.  PKGS lists pkg-config names to try, in
# order, separated by spaces; the first one pkg-config knows is used.
# Usage: tools/lib-soname.sh PATTERN "PKG [PKG...]" CC [CC ARGS...]   (run by meson.build files)
set -eu
pattern=$1
pkgs=$2
shift 2
libs=
for p in $pkgs; do
    if pkg-config --exists "$p" 2>/dev/null; then
        libs=$(pkg-config --libs "$p")
        break
    fi
done
[ -n "$libs" ] || exit 0
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
printf 'int main(void) { return 0; }\n' >"$d/m.c"
"$@" "$d/m.c" -o "$d/m" -Wl,--no-as-needed $libs
readelf -d "$d/m" | sed -n "s/.*(NEEDED).*\[\(lib$pattern\.so[^]]*\)\]/\1/p" | head -n 1
