#!/usr/bin/env python3
"""runq Python binding benchmark (run by bench/run.sh).

    python_bench.py --url redis://127.0.0.1:PORT/0 [-n 30000] [--concurrency 8]

Prints RESULT lines: enqueue, enqueue_many, process, e2e (jobs/s; run.sh
prefixes them with py_).
The handler is a no-op Python function taking one int.
"""
import argparse
import threading
import time

import runq


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("-n", type=int, default=30000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=40)
    a = ap.parse_args()

    # result_ttl=0: done jobs are not kept, as the peers are run (bench/README.md)
    app = runq.App(a.url, command_timeout=30, result_ttl=0)
    app.client  # connect now, not inside the timed part

    @app.task(name="bench.noop", queue="pybench")
    def noop(i):
        return None

    def result(name, value, unit="jobs/s"):
        print(f"RESULT {name} {value:.6g} {unit}", flush=True)

    def wait_processed(w, target, t0):
        while time.perf_counter() - t0 < a.max_seconds:
            if w.stats().get("processed", 0) >= target:
                break
            time.sleep(0.001)
        return w.stats().get("processed", 0)

    def fill(n, batch=100):
        for s in range(0, n, batch):
            app.enqueue_many([noop.prepare(i) for i in range(s, min(n, s + batch))])

    # enqueue, one at a time (a third of n: it is the slowest path)
    n1 = max(1, a.n // 3)
    t0 = time.perf_counter()
    for i in range(n1):
        noop.enqueue(i)
    result("enqueue", n1 / (time.perf_counter() - t0))

    # enqueue_many, batches of 100
    t0 = time.perf_counter()
    fill(a.n)
    result("enqueue_many", a.n / (time.perf_counter() - t0))

    # process: n1 + n jobs are waiting now
    total = n1 + a.n
    w = app.worker(["pybench"], concurrency=a.concurrency, grace=5)
    t0 = time.perf_counter()
    w.start()
    done = wait_processed(w, total, t0)
    result("process", done / (time.perf_counter() - t0))
    base = done

    # end-to-end: a producer thread (batches of 100) while the worker runs
    t0 = time.perf_counter()
    prod = threading.Thread(target=fill, args=(a.n,))
    prod.start()
    done = wait_processed(w, base + a.n, t0) - base
    result("e2e", done / (time.perf_counter() - t0))
    prod.join()
    w.stop(5)
    app.close()
    return 0 if done >= a.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
