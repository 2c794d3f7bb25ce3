#!/usr/bin/env bash
# tests/e2e/cross/run.sh [BUILD_DIR]
# Cross-language end-to-end on one private redis-server: jobs enqueued from
# Lua 5.4 are handled by a Python worker, jobs enqueued from Python by a Lua
# worker, and each side checks the results the other stored (args, kwargs
# and results cross msgpack both ways). Needs the Lua module in BUILD_DIR and
# a venv with runq installed (RUNQ_VENV, default ./.venv-test, which
# tests/python/run.sh creates). Never touches the Redis on port 6379.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=$(cd "${1:-./build}" && pwd) || exit 2

if [ -z "${RUNQ_E2E_INNER:-}" ]; then
  RUNQ_E2E_INNER=1 exec "$root/tests/support/with-redis.sh" "$0" "$build"
fi

py=${RUNQ_VENV:-$root/.venv-test}/bin/python
if ! "$py" -c "import runq" 2>/dev/null; then
  echo "cross: $py cannot import runq (tests/python/run.sh installs it)" >&2
  exit 1
fi
if [ ! -f "$build/lua/5.4/runq/core.so" ]; then
  echo "cross: $build/lua/5.4/runq/core.so not built" >&2
  exit 1
fi
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/5.4/?.so;;"
url=$RUNQ_TEST_REDIS_URL
N=${RUNQ_E2E_JOBS:-50}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runq-cross.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() {
  echo "cross: $1"
  shift
  "$@" || { echo "cross: FAILED: $*" >&2; exit 1; }
}
step "Lua enqueues $N jobs" sh -c "lua5.4 '$here/side.lua' produce '$url' $N > '$tmp/from_lua'"
step "a Python worker handles them" "$py" "$here/side.py" work "$url" "$tmp/from_lua"
step "Lua reads the Python results" lua5.4 "$here/side.lua" check "$url" "$tmp/from_lua"
step "Python enqueues $N jobs" "$py" "$here/side.py" produce "$url" "$tmp/from_py" "$N"
step "a Lua worker handles them" lua5.4 "$here/side.lua" work "$url" "$tmp/from_py"
step "Python reads the Lua results" "$py" "$here/side.py" check "$url" "$tmp/from_py"
echo "cross: $N jobs Lua -> Python and $N jobs Python -> Lua, all results checked"
