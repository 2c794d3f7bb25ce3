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
readme_url="redis://127.0.0.1:6379/0"
"$root/tests/support/readme_block.py" nginx > "$prefix/readme.conf.in" || exit 1
grep -q "$readme_url" "$prefix/readme.conf.in" ||
  { echo "e2e: the README's nginx snippet no longer uses $readme_url" >&2; exit 1; }
sed -e "s|$readme_url|$RUNQ_TEST_REDIS_URL|" "$prefix/readme.conf.in" > "$prefix/readme.conf"
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

# get PATH -> sets $body and $code
get() {
  local out
  out=$(curl -s -w ' %{http_code}' "$base$1") || fail "request $1 failed"
  body=${out% *}
  code=${out##* }
}

# Jobs through nginx; ids are collected with the n they carry.
N=${RUNQ_E2E_JOBS:-200}
ids="$prefix/ids"
: > "$ids"
for n in $(seq 1 "$N"); do
  get "/enqueue?n=$n&priority=$((n % 3))"
  [ "$code" = 201 ] || fail "enqueue n=$n: HTTP $code: $body"
  echo "$body $n" >> "$ids"
done
total=$N

# A unique key: the second request gets 409 and the first job's id.
get "/enqueue?n=7&unique=e2e-once"
[ "$code" = 201 ] || fail "unique enqueue: $code $body"
first=$body
get "/enqueue?n=7&unique=e2e-once"
[ "$code" = 409 ] || fail "duplicate enqueue was not refused: $code $body"
[ "$body" = "$first" ] || fail "409 did not name the holder: $first / $body"
echo "$first 7" >> "$ids"
total=$((total + 1))

# After SCRIPT FLUSH the producer falls back to EVAL (and reloads it).
redis-cli -p "$RUNQ_TEST_REDIS_PORT" SCRIPT FLUSH >/dev/null
get "/enqueue?n=8"
[ "$code" = 201 ] || fail "enqueue after SCRIPT FLUSH: $code $body"
echo "$body 8" >> "$ids"
total=$((total + 1))

# No replicas: the job is written but durability fails, with its id.
get "/enqueue?n=9&replicate=1"
[ "$code" = 503 ] || fail "replicate=1 without replicas: $code $body"
echo "${body#EDURABILITY } 9" >> "$ids"
total=$((total + 1))

# once_in from nginx, then the same task+args from the C client: the C
# producer must see the nginx job as the holder (same derived key).
get "/enqueue?n=11&once_in=1000000"
[ "$code" = 201 ] || fail "once_in enqueue: $code $body"
echo "$body 11" >> "$ids"
total=$((total + 1))
checks="$prefix/checks"
echo "once $body 11" > "$checks"

# A delayed job on another queue stays scheduled.
get "/enqueue?n=12&delay=3600&queue=e2e-later"
[ "$code" = 201 ] || fail "delayed enqueue: $code $body"
echo "scheduled $body 12" >> "$checks"

# The README's snippet: a welcome job on the mail queue, its id in the body.
get "/signup?email=ada%40example.org"
[ "$code" = 200 ] || fail "README snippet: HTTP $code: $body"
echo "readme ${body%$'\n'} 0" >> "$checks"

# Bad input is an error response, not a crashed nginx worker.
get /bad
[ "$code" = 400 ] || fail "bad input: $code $body"
case "$body" in *"cannot encode a function"*) ;; *) fail "bad input message: $body" ;; esac
grep -q "\[alert\]\|\[crit\]\|\[emerg\]" "$prefix/error.log" && fail "nginx logged alerts"

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/jit/?.so;;"
luajit "$here/check.lua" "$checks" || fail "job checks failed"
luajit "$here/worker.lua" "$ids" || fail "worker did not process every job"
echo "e2e: $total jobs enqueued through nginx and processed"
