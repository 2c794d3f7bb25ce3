#!/usr/bin/env bash
# install_consumer.sh SRC BUILD
# Install runq into a temporary prefix, then build a small program outside the
# tree twice: with `pkg-config --cflags --libs runq`, and with CMake's
# find_package(runq) and the runq::runq target. Both must build and run.
# The README's C quickstart is built the same way and run as written
# (memory://), so the README cannot drift from the API.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/runq.h"
lib=$(ls -d "$tmp"/prefix/lib*/ | head -1)
test -f "$lib/pkgconfig/runq.pc"
test -f "$lib/cmake/runq/runqConfig.cmake"
ls "$lib"/librunq.so* "$lib"/librunq.a >/dev/null

mkdir -p "$tmp/app"
cat > "$tmp/app/app.c" <<'C'
#include <runq.h>
#include <stdio.h>
int main(void) {
    if (runq_version() != RUNQ_VERSION_NUMBER) return 1;
    runq_client *c = NULL;
    if (runq_client_open(&c, "memory://", NULL) != 0) return 2;
    char id[RUNQ_ID_SIZE];
    static const unsigned char args[] = {0x90};
    if (runq_enqueue(c, id, "hello", args, 1, NULL) != 0) return 3;
    printf("enqueued %s\n", id);
    runq_client_close(c);
    return 0;
}
C
export PKG_CONFIG_PATH="$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# shellcheck disable=SC2046
cc -Wall -Werror -o "$tmp/app/app_pc" "$tmp/app/app.c" $(pkg-config --cflags --libs runq)
LD_LIBRARY_PATH="$lib" "$tmp/app/app_pc"

"$src/tests/support/readme_block.py" c > "$tmp/app/quickstart.c"
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -o "$tmp/app/quickstart" "$tmp/app/quickstart.c" $(pkg-config --cflags --libs runq)
out=$(env -u RUNQ_URL LD_LIBRARY_PATH="$lib" "$tmp/app/quickstart")
echo "$out"
grep -q "^job [0-9A-Z]*: done$" <<<"$out" || { echo "README C quickstart: no 'job ... done' line" >&2; exit 1; }

cat > "$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(runq REQUIRED)
add_executable(app_cmake app.c)
target_link_libraries(app_cmake PRIVATE runq::runq)
CM
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app/build" >/dev/null
LD_LIBRARY_PATH="$lib" "$tmp/app/build/app_cmake"
echo "install consumer: pkg-config, find_package and README quickstart builds ran"
