#!/usr/bin/env bash
# tests/lua/run.sh [BUILD_DIR]
# Run the Lua binding's tests against an existing build (nothing is built
# here): busted specs on Lua 5.4 and LuaJIT, each against memory:// and a
# private redis-server (tests/support/with-redis.sh), then the OpenResty
# end-to-end test. Exits non-zero if anything failed or could not run.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-./build}
if [ ! -d "$build" ]; then
  echo "run.sh: build dir '$build' not found (configure and build first)" >&2
  exit 2
fi
build=$(cd "$build" && pwd)
with_redis="$root/tests/support/with-redis.sh"

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/tests/lua/?.lua;;"

failed=()
step() {
  local name=$1
  shift
  echo "=== $name"
  if "$@"; then
    echo "=== $name: ok"
  else
    echo "=== $name: FAILED"
    failed+=("$name")
  fi
}

for variant in lua5.4:5.4 luajit:jit; do
  interp=${variant%%:*}
  sub=${variant#*:}
  if [ ! -f "$build/lua/$sub/runq/core.so" ]; then
    echo "=== $interp: $build/lua/$sub/runq/core.so not built"
    failed+=("$interp: module missing")
    continue
  fi
  export LUA_CPATH="$build/lua/$sub/?.so;;"
  step "$interp memory://" env RUNQ_TEST_URL=memory:// \
    busted --lua="$interp" -o TAP "$root/tests/lua"
  step "$interp redis://" "$with_redis" \
    busted --lua="$interp" -o TAP "$root/tests/lua"
done

step "nginx e2e" "$root/tests/e2e/nginx/run.sh" "$build"

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all Lua tests passed"
