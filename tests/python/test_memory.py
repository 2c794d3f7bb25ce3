"""Reference and memory sanity of the C glue over many jobs."""
from __future__ import annotations

import gc
import sys
import tracemalloc

import runq

from conftest import Harness

N = 10_000


def test_no_leaks_over_ten_thousand_jobs(h: Harness) -> None:
    arg = "payload-" + "x" * 64  # a fresh object: its refcount is ours to watch
    result_obj = {"ok": True}

    @h.task("leak")
    def leak(s: str, i: int, blob: bytes) -> dict[str, bool]:
        return result_obj

    def run(n: int) -> None:
        for start in range(0, n, 500):
            refs = h.app.enqueue_many([leak.prepare(arg, i, b"b" * 32)
                                          for i in range(start, start + 500)])
            for r in refs:
                assert r.wait(30) == {"ok": True}

    h.worker(concurrency=4)
    run(500)  # warm up caches, free lists, the engine's pools
    gc.collect()
    arg_refs = sys.getrefcount(arg)
    res_refs = sys.getrefcount(result_obj)
    fn_refs = sys.getrefcount(leak.fn)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    run(N)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()

    # Counted outside the asserts: pytest's rewriting keeps temporaries alive.
    now = (sys.getrefcount(arg), sys.getrefcount(result_obj), sys.getrefcount(leak.fn))
    assert now == (arg_refs, res_refs, fn_refs)
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"python heap growth over {N} jobs: {growth} bytes")
    # Python-side growth independent of N would be a few KiB; a leak of even
    # one small object per job would be hundreds of KiB here.
    assert growth < 256 * 1024, [str(s) for s in after.compare_to(before, "lineno")[:10]]
    live_jobs = [o for o in gc.get_objects() if isinstance(o, (runq.Job, runq._runq.Job))]
    assert live_jobs == []
