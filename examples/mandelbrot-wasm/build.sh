#!/bin/sh
# Build the mandelbrot sample app into a WASI module:  build.sh [OUTPUT.wasm]
# (default: build/mandelbrot.wasm next to this script; prints the module's path).
#
# Needs Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32. No --sysroot: Debian's
# clang finds wasi-libc by itself. Symbols are stripped so the module is small and the same
# compiler gives the same bytes, hence the same checksum, on every machine. Re-running is
# instant while the module is newer than its sources.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/build/mandelbrot.wasm"}

if [ -f "$out" ] && [ "$out" -nt "$here/app.c" ] && [ "$out" -nt "$here/build.sh" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$(dirname "$out")"
partial="$out.partial.$$"
trap 'rm -f "$partial"' EXIT
clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -Wl,--strip-all -o "$partial" "$here/app.c"
mv "$partial" "$out"
echo "$out"
