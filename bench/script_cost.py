"""Server instructions per job of the enqueue, fetch and ack scripts.

    bench/.venv-peers/bin/python bench/script_cost.py [N [EB FB AB]]

(any Python with redis-py; valgrind from Debian's packages; about 15 s.)

Starts a private redis-server under valgrind's callgrind on a free port,
calls the three scripts directly, as the C client lays out their arguments
(core/src/redis/backend.c), for N plain jobs (default 5000): enqueue in
batches of EB (100), fetch in batches of FB (200), ack in batches of AB
(64) keeping nothing, then again keeping every result for an hour, then
again keeping each for 1 ms and counting what it takes to be rid of them
(Redis's expiry or the scripts' sweeps, whichever the scripts use, with
idle fetches until the queue holds no more keys than one that keeps
nothing). Prints
the server's instructions per job for each phase. With batches of 1 (N 500
1 1 1) that is each script call's cost on the light-load path, where every
call carries one job. Instruction counts do not depend on
what else the machine is doing, so two builds of the scripts can be
compared on a noisy host where timings cannot; they are no timings (the
CPU per job in bench/README.md is measured by runq_bench servercpu).
"""
from __future__ import annotations

import glob
import itertools
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "core", "src", "redis", "scripts")
PREFIX = "{runq:cost}:"
QUEUE = "cost"
ARGS = b"\x91\xcf" + bytes(8)  # [uint64], as runq_bench sends
TASK = b"noop"


def script(name: str) -> str:
    """The script text as cmake/embed_scripts.cmake joins it."""
    prelude = "".join(open(f).read() for f in sorted(glob.glob(os.path.join(SCRIPTS, "_*.lua"))))
    return prelude + open(os.path.join(SCRIPTS, name + ".lua")).read()


def key(suffix: str) -> str:
    return PREFIX + suffix


def new_id() -> str:
    return "%013d%013d" % (int(time.time() * 1000), random.getrandbits(40))


class Server:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="runq-cost.")
        self.out = os.path.join(self.dir, "callgrind.out")
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}",
             "redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.r = redis.Redis(port=self.port)
        for _ in range(600):
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.dumps = 0

    def control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    def measure(self, fn) -> int:
        """Instructions the server ran during fn()."""
        self.control("-z")
        fn()
        self.control("-d")
        self.dumps += 1
        with open(f"{self.out}.{self.dumps}") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("totals:"))

    def stop(self) -> None:
        try:
            self.r.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    eb, fb, ab = (int(v) for v in sys.argv[2:5]) if len(sys.argv) > 4 else (100, 200, 64)
    srv = Server()
    r = srv.r
    sha = {name: r.script_load(script(name)) for name in ("enqueue", "fetch", "ack")}
    ekeys = [key(k) for k in ("jobs", "scheduled", "pending", "marker", "config", "ready",
                              "rkeys", "rkwait", "dl", "uud")] + ["runq:queues"]
    fkeys = [key(k) for k in ("scheduled", "pending", "active", "dead", "marker", "config", "gate",
                              "rkeys", "rkwait", "rkflight", "jobs", "ready", "lease", "att", "dl",
                              "uud", "waiters", "lgroups", "rttl")]
    akeys = [key(k) for k in ("jobs", "active", "lease", "att", "config", "gate", "pending",
                              "marker", "uud", "dl", "waiters", "ready", "lgroups", "rttl")]
    # A plain job's record but for its times (docs/protocol.md).
    tail = b"|0|0|0|%d|%d|0|0|0|" % (len(TASK), len(ARGS)) + TASK + ARGS

    def enqueue() -> None:
        for b in range(0, n, eb):
            k = min(eb, n - b)
            argv: list = [QUEUE, "2|3|0|", "|0|", "0" * k]
            for _ in range(k):
                argv += [new_id(), tail]
            out = r.evalsha(sha["enqueue"], len(ekeys), *ekeys, *argv)
            assert out == 2 or all(code == 2 for code in out), out  # one code for all, or each

    leased: list = []

    def fetch() -> None:
        while True:
            token = str(random.getrandbits(63) + 1)
            res = r.evalsha(sha["fetch"], len(fkeys), *fkeys, PREFIX, "60000", str(fb), QUEUE, token)
            w = (len(res) - 4) // res[2] if res[2] else 3  # 2 without attempt states
            for i in range(res[2]):
                leased.append((res[4 + w * i], token))
            if res[2] == 0:
                return

    def ack(ttl: str) -> None:
        """Ack every leased job, keeping each result for ttl ms ('' keeps none)."""
        for b in range(0, len(leased), ab):
            argv: list = [PREFIX, "k" if ttl else "n"]
            group = leased[b:b + ab]
            for g, (jid, token) in enumerate(group):
                if g == 0 or token != group[g - 1][1]:
                    argv += [token, sum(1 for _ in itertools.takewhile(
                        lambda x: x[1] == token, group[g:]))]
                argv += [jid]
                if ttl:
                    argv += ["|1|1|", b"\xc0", ttl]
            out = r.evalsha(sha["ack"], len(akeys), *akeys, *argv)
            assert out == 0 or all(code == 0 for code in out), out

    def expire() -> None:
        """Kept results past their time, until they are gone: the server's own
        key expiry, or idle fetches that sweep them, whichever the scripts use."""
        for _ in range(100):
            if r.dbsize() <= drained:
                return
            fetch()
            time.sleep(0.1)
        raise AssertionError(f"kept results did not go: {r.keys()}")

    drained = 0  # keys left once a queue that keeps nothing is drained
    phases = (("nothing kept", ""), ("results kept 1 h", "3600000"),
              ("results kept 1 ms, and their expiry", "1"))
    rows = []
    for name, ttl in phases:
        leased.clear()
        rows.append((f"enqueue (batches of {eb})", srv.measure(enqueue)))
        rows.append((f"fetch (batches of {fb})", srv.measure(fetch)))
        assert len(leased) == n, len(leased)
        if ttl == "1":
            rows.append((f"ack (batches of {ab}), {name}",
                         srv.measure(lambda: (ack(ttl), time.sleep(0.2), expire()))))
        else:
            rows.append((f"ack (batches of {ab}), {name}", srv.measure(lambda: ack(ttl))))
        assert r.zcard(key("active")) == 0
        if not ttl:
            drained = r.dbsize()
        r.flushall()
    srv.stop()
    print(f"server instructions per job, {n} jobs (callgrind):")
    for name, total in rows[:3] + rows[5::3]:
        print(f"  {name:42s} {total / n:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
