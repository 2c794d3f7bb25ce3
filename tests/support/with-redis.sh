#!/usr/bin/env bash
# with-redis.sh CMD [ARGS...]
# Start a private redis-server on a free loopback port with its own temporary
# directory, run CMD with RUNQ_TEST_URL / RUNQ_TEST_REDIS_URL pointing at it,
# stop the server, and exit with CMD's status. Never touches port 6379.
# Extra server flags may be passed in RUNQ_REDIS_FLAGS.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/runq-redis.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" ${RUNQ_REDIS_FLAGS:-} >/dev/null
for _ in $(seq 1 200); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "with-redis: redis-server did not start on $port" >&2
  cat "$dir/redis.log" >&2
  exit 1
fi
export RUNQ_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
export RUNQ_TEST_URL="$RUNQ_TEST_REDIS_URL"
export RUNQ_TEST_REDIS_PORT="$port"
"$@"
rc=$?
kill "$(cat "$dir/redis.pid")" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$(cat "$dir/redis.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.05; done
rm -rf "$dir"
exit $rc
