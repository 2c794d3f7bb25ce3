#!/usr/bin/env bash
# tests/e2e/nginx/run.sh [BUILD_DIR]
# OpenResty end-to-end: a private redis-server (tests/support/with-redis.sh)
# and a private nginx (lua-nginx-module, LuaJIT build of runq.core) on free
# ports; HTTP requests enqueue jobs through runq.resty (cosockets); a runq
# worker processes every one. Never touches the Redis on port 6379.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=$(cd "${1:-./build}" && pwd) || exit 2

if [ -z "${RUNQ_E2E_INNER:-}" ]; then
  RUNQ_E2E_INNER=1 exec "$root/tests/support/with-redis.sh" "$0" "$build"
fi

for m in ndk_http_module ngx_http_lua_module; do
  if [ ! -f /usr/lib/nginx/modules/$m.so ]; then
    echo "e2e: /usr/lib/nginx/modules/$m.so missing (apt-get install libnginx-mod-http-lua)" >&2
    exit 1
  fi
done
if [ ! -f "$build/lua/jit/runq/core.so" ]; then
  echo "e2e: $build/lua/jit/runq/core.so not built" >&2
  exit 1
fi

export RUNQ_E2E_REDIS_URL="$RUNQ_TEST_REDIS_URL"
prefix=$(mktemp -d "${TMPDIR:-/tmp}/runq-nginx.XXXXXX")
chmod 755 "$prefix"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=""
[ "$(id -u)" = 0 ] && user="user root;"  # workers must read the build tree
sed -e "s|@PREFIX@|$prefix|g" -e "s|@ROOT@|$root|g" -e "s|@BUILD@|$build|g" \
    -e "s|@PORT@|$port|g" -e "s|@USER@|$user|g" "$here/nginx.conf.in" > "$prefix/nginx.conf"

cleanup() {
  if [ -f "$prefix/nginx.pid" ]; then
    pid=$(cat "$prefix/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -rf "$prefix"
}
trap cleanup EXIT

fail() {
  echo "e2e: $*" >&2
  echo "--- nginx error.log" >&2
  tail -n 40 "$prefix/error.log" >&2
  exit 1
}

nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" || fail "nginx did not start"
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$base/enqueue" && break
  sleep 0.05
done

# Jobs through nginx; ids are collected with the n they carry.
N=${RUNQ_E2E_JOBS:-200}
ids="$prefix/ids"
: > "$ids"
for n in $(seq 1 "$N"); do
  out=$(curl -s -w ' %{http_code}' "$base/enqueue?n=$n") || fail "request $n failed"
  id=${out% *}
  id=${id//$'\n'/}
  code=${out##* }
  [ "$code" = 201 ] || fail "enqueue n=$n: HTTP $code: $id"
  echo "$id $n" >> "$ids"
done

# A unique key: the second request gets 409 and the first job's id.
first=$(curl -s -w ' %{http_code}' "$base/enqueue?n=7&unique=e2e-once")
second=$(curl -s -w ' %{http_code}' "$base/enqueue?n=7&unique=e2e-once")
[ "${first##* }" = 201 ] || fail "unique enqueue: $first"
[ "${second##* }" = 409 ] || fail "duplicate enqueue was not refused: $second"
first_id=${first% *}
first_id=${first_id//$'\n'/}
second_id=${second% *}
second_id=${second_id//$'\n'/}
[ "$first_id" = "$second_id" ] || fail "409 did not name the holder: $first / $second"
echo "$first_id 7" >> "$ids"

# Bad input is an error response, not a crashed nginx worker.
bad=$(curl -s -w ' %{http_code}' "$base/bad")
[ "${bad##* }" = 400 ] || fail "bad input: $bad"
case "$bad" in *"cannot encode a function"*) ;; *) fail "bad input message: $bad" ;; esac
grep -q "\[alert\]\|\[crit\]\|\[emerg\]" "$prefix/error.log" && fail "nginx logged alerts"

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/jit/?.so;;"
luajit "$here/worker.lua" "$ids" || fail "worker did not process every job"
echo "e2e: $((N + 1)) jobs enqueued through nginx and processed"
