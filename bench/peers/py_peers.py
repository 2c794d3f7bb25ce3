#!/usr/bin/env python3
"""Celery / RQ / Dramatiq on the benchmark's private Redis (run by bench/run.sh
with bench/.venv-peers/bin/python, cwd bench/peers).

    py_peers.py celery|rq|dramatiq --url redis://127.0.0.1:PORT/0 [-n 10000]
                [--max-seconds 25] [--procs 2]

Three figures, like runq's: enqueue (no worker running), process (workers
started on the pre-filled queue; the clock starts at the first handled job,
so interpreter start-up is not counted), end-to-end (warm workers, a
producer enqueues n jobs; the clock runs until the n-th is handled).
Each peer gets 2 worker processes (the machine's core count) and its bulk
enqueue API where it has one (RQ enqueue_many); Celery and Dramatiq
enqueue one message per call.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

import redis


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["celery", "rq", "dramatiq"])
    ap.add_argument("--url", required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--max-seconds", type=float, default=25)
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    os.environ["BENCH_URL"] = a.url
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    bindir = os.path.dirname(sys.executable)
    r = redis.Redis.from_url(a.url)
    r.delete("bench:done")

    if a.peer == "celery":
        from celery_app import noop

        def produce(n):
            for i in range(n):
                noop.delay(i)

        cmds = [[os.path.join(bindir, "celery"), "-A", "celery_app", "worker", "-c", str(a.procs),
                 "--pool", "prefork", "-l", "WARNING", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"]]
    elif a.peer == "rq":
        from rq import Queue

        import rq_tasks

        q = Queue("bench", connection=r)

        def produce(n):
            for s in range(0, n, 100):
                q.enqueue_many([Queue.prepare_data(rq_tasks.noop, (i,), result_ttl=0)
                                for i in range(s, min(n, s + 100))])

        cmds = [[os.path.join(bindir, "rq"), "worker", "-w", "rq.worker.SimpleWorker", "--url",
                 a.url, "-q", "bench"] for _ in range(a.procs)]
    else:
        from dramatiq_app import noop

        def produce(n):
            for i in range(n):
                noop.send(i)

        cmds = [[os.path.join(bindir, "dramatiq"), "dramatiq_app", "--processes", str(a.procs),
                 "--threads", "8"]]

    def done():
        return int(r.get("bench:done") or 0)

    def result(name, v):
        print(f"RESULT {name} {v:.6g} jobs/s", flush=True)

    t0 = time.perf_counter()
    produce(a.n)
    result("enqueue", a.n / (time.perf_counter() - t0))

    procs = [subprocess.Popen(c, cwd=here, env=dict(os.environ), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
    ok = True
    try:
        deadline = time.perf_counter() + a.max_seconds + 15
        while done() == 0 and time.perf_counter() < deadline:
            time.sleep(0.002)
        t0 = time.perf_counter()
        while done() < a.n and time.perf_counter() - t0 < a.max_seconds:
            time.sleep(0.005)
        d = done()
        result("process", d / (time.perf_counter() - t0))
        ok = d >= a.n

        base = done()
        cpu = r.info("cpu")
        cpu0 = cpu["used_cpu_user"] + cpu["used_cpu_sys"]
        t0 = time.perf_counter()
        produce(a.n)
        while done() - base < a.n and time.perf_counter() - t0 < a.max_seconds:
            time.sleep(0.005)
        d = done() - base
        result("e2e", d / (time.perf_counter() - t0))
        time.sleep(0.1)
        cpu = r.info("cpu")
        cpu_us = (cpu["used_cpu_user"] + cpu["used_cpu_sys"] - cpu0) * 1e6 / max(1, d)
        print(f"RESULT redis_cpu_us_e2e {cpu_us:.6g} us/job", flush=True)
        ok = ok and d >= a.n
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
