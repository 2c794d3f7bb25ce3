#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]
#
# Runs every runq benchmark against a PRIVATE redis-server (free loopback
# port, temporary directory, no persistence) and prints a markdown table of
# medians next to what the same Redis does in the same run. Never touches the
# Redis on port 6379.
#
#   BUILD_DIR      reuse this build (default: configure and build ./build-bench)
# Environment:
#   REPEAT=3       runs per measurement (the median is reported)
#   PEERS=1        0 skips Celery/RQ/Dramatiq/BullMQ
#   BINDINGS=1     0 skips the Python and Lua runners
#   INSTALL=1      0: do not pip/npm install anything (use what is there)
#   PEER_N=4000    jobs per Celery/RQ/Dramatiq run (BullMQ: 20000)
#   OUT=bench/results/<date>.md   where the table is also written
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench"
REPEAT=${REPEAT:-3}
PEERS=${PEERS:-1}
BINDINGS=${BINDINGS:-1}
INSTALL=${INSTALL:-1}
started=$(date +%s)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$bench/results"
OUT=${OUT:-$bench/results/$stamp.md}
work=$(mktemp -d "${TMPDIR:-/tmp}/runq-bench.XXXXXX")
res="$work/results.tsv"   # name \t value \t unit \t runs...
: >"$res"
log="$work/log.txt"
echo "bench: work dir $work (log: $log)"

# ------------------------------------------------------------------ build
if [ $# -ge 1 ]; then
  build=$(cd "$1" && pwd)
else
  build="$root/build-bench"
  echo "bench: building into $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRUNQ_BUILD_BENCH=ON >>"$log" 2>&1 &&
    cmake --build "$build" -j"$(nproc)" --target runq_bench >>"$log" 2>&1 ||
    { echo "bench: build failed, see $log"; tail -30 "$log"; exit 1; }
  # The Lua modules, if their targets exist (not fatal).
  for t in runq_lua54 runq_luajit; do
    cmake --build "$build" -j"$(nproc)" --target "$t" >>"$log" 2>&1 || true
  done
fi
rb="$build/bench/runq_bench"
[ -x "$rb" ] || { echo "bench: $rb not built"; exit 1; }

# ------------------------------------------------------------------ redis
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
[ "$port" != 6379 ] || { echo "bench: refusing port 6379"; exit 1; }
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" >/dev/null
cleanup() {
  if [ -f "$work/redis.pid" ]; then
    kill "$(cat "$work/redis.pid")" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$work/dump.rdb"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$port" ping >/dev/null || { echo "bench: redis-server did not start"; exit 1; }
url="redis://127.0.0.1:$port/0"
rcli() { redis-cli -p "$port" "$@"; }
export RUNQ_BENCH_URL="$url" RUNQ_BENCH_PORT="$port"
echo "bench: private redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$port"

# ------------------------------------------------------------------ helpers
# record NAME UNIT VALUE... : store the median of the values.
record() {
  local name=$1 unit=$2
  shift 2
  local med
  med=$(printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}')
  printf '%s\t%s\t%s\t%s\n' "$name" "$med" "$unit" "$*" >>"$res"
  printf '  %-40s %12s %-8s (runs: %s)\n' "$name" "$med" "$unit" "$*"
}

# repeat_result NAME -- CMD...: run CMD $REPEAT times; collect every
# "RESULT <name> <value> <unit>" line it prints; record medians, prefixed.
repeat_result() {
  local prefix=$1
  shift
  local tmp="$work/rr.$$"
  : >"$tmp"
  for _ in $(seq 1 "$REPEAT"); do
    timeout 180 "$@" 2>>"$log" | tee -a "$log" | grep '^RESULT ' >>"$tmp"
  done
  local n
  for n in $(awk '{print $2}' "$tmp" | awk '!s[$0]++'); do
    # shellcheck disable=SC2046
    record "$prefix$n" "$(awk -v n="$n" '$2==n {print $4; exit}' "$tmp")" \
      $(awk -v n="$n" '$2==n {print $3}' "$tmp")
  done
}

# redis-benchmark requests/s for one test.
rbench() {
  redis-benchmark -p "$port" -q --csv "$@" 2>>"$log" | tail -1 | cut -d, -f2 | tr -d '"'
}

elapsed() { echo $(($(date +%s) - started)); }

# ------------------------------------------------------------------ references
echo "== reference: redis-benchmark on the same server"
for t in lpush rpop; do
  vals=(); for _ in $(seq 1 "$REPEAT"); do vals+=("$(rbench -n 300000 -P 16 -t $t)"); done
  record "ref_${t}_P16" ops/s "${vals[@]}"
  vals=(); for _ in $(seq 1 "$REPEAT"); do vals+=("$(rbench -n 100000 -t $t)"); done
  record "ref_${t}_P1_c50" ops/s "${vals[@]}"
  vals=(); for _ in $(seq 1 "$REPEAT"); do vals+=("$(rbench -n 30000 -c 1 -t $t)"); done
  record "ref_${t}_P1_c1" ops/s "${vals[@]}"
done
sha=$(rcli SCRIPT LOAD 'return 1')
vals=(); for _ in $(seq 1 "$REPEAT"); do vals+=("$(rbench -n 300000 -P 16 evalsha "$sha" 0)"); done
record ref_evalsha_return1_P16 ops/s "${vals[@]}"
vals=(); for _ in $(seq 1 "$REPEAT"); do vals+=("$(rbench -n 100000 evalsha "$sha" 0)"); done
record ref_evalsha_return1_P1_c50 ops/s "${vals[@]}"
vals=(); for _ in $(seq 1 "$REPEAT"); do vals+=("$(rbench -n 30000 -c 1 evalsha "$sha" 0)"); done
record ref_evalsha_return1_P1_c1 ops/s "${vals[@]}"
rcli FLUSHALL >/dev/null

# ------------------------------------------------------------------ runq C
echo "== runq C engine ($(elapsed) s)"
repeat_result c_ "$rb" enqueue --url "$url" -n 20000
repeat_result c_ "$rb" enqueue --url "$url" -n 20000 --threads 8
repeat_result c_ "$rb" enqueue --url "$url" -n 100000 --batch 100
# Runs of about a second at the rates of run 10 (150-200 k jobs/s): with
# 40 000 jobs a run was a quarter of a second, much of it start-up.
repeat_result c_ "$rb" process --url "$url" -n 200000 --concurrency 16 --max-seconds 40
repeat_result c_ "$rb" e2e --url "$url" -n 200000 --batch 100 --concurrency 16 --max-seconds 40
# Two producers: one producer thread waits out each round trip, behind the
# worker's fetch and ack scripts, before it sends its next batch.
repeat_result c_ "$rb" e2e --url "$url" -n 200000 --batch 100 --threads 2 --concurrency 16 --max-seconds 40
repeat_result c_ "$rb" e2e --url "$url" -n 100000 --batch 100 --concurrency 16 --max-seconds 40 --result-ttl 0
repeat_result c_ "$rb" e2e --url "$url" -n 20000 --threads 8 --concurrency 16 --max-seconds 40
repeat_result c_ "$rb" latency --url "$url" --rate 1000 --seconds 5
(REPEAT=1 repeat_result c_ "$rb" memory --url "$url" -n 100000)
# Name each EVALSHA by its script (the engine loads the files verbatim).
RUNQ_BENCH_SHAS=$(for f in "$root"/core/src/redis/scripts/*.lua; do
  printf '%s=%s,' "$(sha1sum <"$f" | cut -c1-8)" "$(basename "$f" .lua)"; done)
export RUNQ_BENCH_SHAS
(REPEAT=1 repeat_result c_ "$rb" commands --url "$url" -n 2000)
repeat_result c_ "$rb" servercpu --url "$url" -n 20000
rcli FLUSHALL >/dev/null

# ------------------------------------------------------------------ bindings
if [ "$BINDINGS" = 1 ]; then
  echo "== runq Python ($(elapsed) s)"
  venv="$bench/.venv"
  if [ "$INSTALL" = 1 ] && [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" >>"$log" 2>&1; fi
  if [ "$INSTALL" = 1 ] && [ -x "$venv/bin/pip" ]; then
    echo "  pip install . into $venv"
    "$venv/bin/pip" install -q "$root" >>"$log" 2>&1 || echo "  pip install failed (see $log)"
  fi
  if [ -x "$venv/bin/python" ] && (cd "$work" && "$venv/bin/python" -c 'import runq, runq._runq') >>"$log" 2>&1; then
    repeat_result py_ env -C "$work" "$venv/bin/python" "$bench/python_bench.py" --url "$url" -n 60000
  else
    echo "  SKIPPED: the runq Python package does not import in $venv (see $log)"
    printf 'py_skipped\tnan\t-\t\n' >>"$res"
  fi
  rcli FLUSHALL >/dev/null

  echo "== runq Lua ($(elapsed) s)"
  lua_done=0
  for v in lua5.4:5.4 luajit:jit; do
    interp=${v%%:*}; sub=${v#*:}
    if [ -f "$build/lua/$sub/runq/core.so" ] && command -v "$interp" >/dev/null; then
      repeat_result "lua_${sub}_" env LUA_CPATH="$build/lua/$sub/?.so;;" \
        LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" \
        "$interp" "$bench/lua_bench.lua" "$url" 20000 all 16 async
      # end-to-end: a producer process and a consumer process at once
      repeat_result "lua_${sub}_" env LUA_CPATH="$build/lua/$sub/?.so;;" \
        LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" \
        bash -c '"$1" "$2" "$3" "$4" consume 16 async & sleep 0.3; "$1" "$2" "$3" "$4" produce; wait' \
        _ "$interp" "$bench/lua_bench.lua" "$url" 100000
      lua_done=1
    else
      echo "  SKIPPED $interp: $build/lua/$sub/runq/core.so not built"
    fi
  done
  [ $lua_done = 1 ] || printf 'lua_skipped\tnan\t-\t\n' >>"$res"
  rcli FLUSHALL >/dev/null
fi

# ------------------------------------------------------------------ peers
if [ "$PEERS" = 1 ]; then
  echo "== peers ($(elapsed) s)"
  # The Python peers handle a few hundred to a few thousand jobs/s here:
  # fewer jobs keep each run within its bound.
  PEER_N=${PEER_N:-4000}
  pv="$bench/.venv-peers"
  if [ "$INSTALL" = 1 ]; then
    [ -x "$pv/bin/python" ] || python3 -m venv "$pv" >>"$log" 2>&1
    "$pv/bin/pip" install -q celery redis rq dramatiq packaging >>"$log" 2>&1 || echo "  pip install of peers failed (see $log)"
    (cd "$bench/peers/node" && npm install --no-audit --no-fund >>"$log" 2>&1) || echo "  npm install failed (see $log)"
  fi
  for peer in celery rq dramatiq; do
    if "$pv/bin/python" -c "import $peer" >>"$log" 2>&1; then
      repeat_result "peer_${peer}_" env -C "$bench/peers" "$pv/bin/python" "$bench/peers/py_peers.py" \
        "$peer" --url "$url" -n "$PEER_N" --max-seconds 15
      rcli FLUSHALL >/dev/null
    else
      echo "  SKIPPED $peer: not installed in $pv"
      printf 'peer_%s_skipped\tnan\t-\t\n' "$peer" >>"$res"
    fi
  done
  if [ -d "$bench/peers/node/node_modules/bullmq" ]; then
    repeat_result peer_bullmq_ node "$bench/peers/node/bullmq_bench.js" "$port" 20000 15
    rcli FLUSHALL >/dev/null
  else
    echo "  SKIPPED bullmq: not installed in $bench/peers/node"
    printf 'peer_bullmq_skipped\tnan\t-\t\n' >>"$res"
  fi
fi

# ------------------------------------------------------------------ report
rver=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
{
  echo "runq benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $mem, Redis $rver,"
  echo "median of $REPEAT runs, $(elapsed) s in all, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  python3 "$bench/report.py" "$res"
} | tee "$OUT"
echo "bench: table written to $OUT; raw results in $res"
