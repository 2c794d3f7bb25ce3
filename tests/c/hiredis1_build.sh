#!/usr/bin/env bash
# tests/c/hiredis1_build.sh [WORK_DIR]
# Build the engine against hiredis 1.x and run its Redis tests with it.
#
# Debian here ships hiredis 0.14, but users build runq against 1.x, whose
# async API differs (connect callbacks, redisOptions, its event hooks; runq
# brings its own, core/src/redis/uvev.c). No Debian package has 1.x; the
# npm package redis-fast-driver 2.2.6 vendors the complete hiredis 1.2.0
# source tree (Makefile included), so it is fetched with npm (nothing else
# leaves the machine), built into a private prefix as a static library, and
# runq is configured against that prefix through pkg-config. WORK_DIR
# (default ./build-hiredis1) keeps the download, the prefix and the build
# between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$root/build-hiredis1}
mkdir -p "$work"
work=$(cd "$work" && pwd)
pkg=redis-fast-driver@2.2.6
src=$work/src/package/deps/hiredis
prefix=$work/prefix
jobs=$(nproc 2>/dev/null || echo 2)

if [ ! -f "$src/hiredis.h" ]; then
  command -v npm >/dev/null || { echo "hiredis1_build.sh: npm is needed to fetch hiredis 1.x" >&2; exit 1; }
  rm -rf "$work/src" && mkdir -p "$work/src"
  # npm checks the tarball against the registry's integrity hash.
  (cd "$work/src" && npm pack --silent "$pkg" >/dev/null && tar xzf redis-fast-driver-*.tgz)
fi
major=$(awk '/#define HIREDIS_MAJOR/ {print $3}' "$src/hiredis.h")
if [ "$major" != 1 ]; then
  echo "hiredis1_build.sh: $pkg carries hiredis major $major, not 1" >&2
  exit 1
fi

if [ ! -f "$prefix/lib/libhiredis.a" ]; then
  make -C "$src" -j"$jobs" PREFIX="$prefix" USE_SSL=0 install >"$work/hiredis-make.log" 2>&1 ||
    { tail -20 "$work/hiredis-make.log" >&2; exit 1; }
  # Static only: nothing can then load Debian's libhiredis 0.14 at run time.
  rm -f "$prefix"/lib/libhiredis.so*
fi
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion hiredis)" = "$(awk '/#define HIREDIS_MAJOR/ {M=$3} /#define HIREDIS_MINOR/ {m=$3} /#define HIREDIS_PATCH/ {p=$3} END {print M"."m"."p}' "$src/hiredis.h")" ] ||
  { echo "hiredis1_build.sh: pkg-config does not see the 1.x prefix" >&2; exit 1; }

cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE=Debug -DRUNQ_BUILD_LUA=OFF \
  -DRUNQ_BUILD_BENCH=OFF >"$work/cmake.log" 2>&1 || { tail -20 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" -j"$jobs" >"$work/build.log" 2>&1 || { grep -E "error|warning" "$work/build.log" | head -40 >&2; exit 1; }
# The engine objects must have been compiled with the 1.x headers.
grep -q -- "$prefix/include" "$work/build/CMakeFiles/runq_objects.dir/flags.make" ||
  { echo "hiredis1_build.sh: the build did not use $prefix/include" >&2; exit 1; }
echo "runq built against hiredis $(pkg-config --modversion hiredis); running the Redis tests"
ctest --test-dir "$work/build" -j"$jobs" --timeout 300 -L redis --output-on-failure
