"""Queue gates from Python, on memory:// and on a private redis-server:
manual pause/resume, automatic pause with one probe, rate and concurrency
limits. Safety properties only (never more than the limit, nothing run while
paused, the probe runs alone); bounds on waits are generous upper bounds."""
from __future__ import annotations

import threading
import time

import pytest

import runq

from conftest import Harness

WAIT = 30


def test_pause_holds_jobs_and_resume_runs_them(h: Harness) -> None:
    q = h.queue("paused")

    @h.task("p", queue=q)
    def p(n: int) -> int:
        return n

    h.app.pause(q)
    ref = p.enqueue(7)  # enqueue still works
    h.worker([q])
    stats = h.app.queue_stats(q)
    assert stats["paused"] == 1 and stats["pending"] == 1
    with pytest.raises(runq.Timeout):
        ref.wait(0.5)
    assert ref.status() is runq.JobState.PENDING
    h.app.resume(q)
    assert ref.wait(WAIT) == 7
    assert h.app.queue_stats(q)["paused"] == 0


def test_auto_pause_then_one_probe_then_open(h: Harness) -> None:
    q = h.queue("flaky")
    h.app.configure_queue(q, pause_after_failures=2, pause_min=0.2, pause_max=1.0)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    @h.task("f", queue=q, retries=0)
    def f(n: int) -> int:
        if n < 0:
            raise RuntimeError("bad")
        with lock:
            events.append(("start", n))
        time.sleep(0.05)
        with lock:
            events.append(("end", n))
        return n

    bad = [f.enqueue(-1), f.enqueue(-2)]
    h.worker([q], concurrency=4)
    for ref in bad:
        with pytest.raises(runq.JobFailed):
            ref.wait(WAIT)
    stats = h.app.queue_stats(q)
    assert stats["paused"] == 2
    good = [f.enqueue(i) for i in range(4)]
    assert [r.wait(WAIT) for r in good] == [0, 1, 2, 3]
    # The first job after the pause is the probe: it ran alone, and only its
    # success let the others in.
    assert events[0][0] == "start" and events[1] == ("end", events[0][1])
    assert h.app.queue_stats(q)["paused"] == 0


def test_rate_limit_across_two_workers(h: Harness) -> None:
    q = h.queue("rated")
    limit, period = 2, 0.5
    h.app.configure_queue(q, rate_limit=(limit, period), rate_burst=1)
    starts: list[int] = []
    lock = threading.Lock()

    @h.task("r", queue=q)
    def r(job: runq.Job) -> int:
        with lock:
            starts.append(job.leased_at)  # the backend's lease time, ms
        return int(job.args[0])

    refs = [r.enqueue(i) for i in range(8)]
    h.worker([q], concurrency=4)
    h.worker([q], concurrency=4)
    assert sorted(ref.wait(WAIT) for ref in refs) == list(range(8))
    starts.sort()
    window = int(period * 1000)
    worst = max(sum(1 for t in starts if s <= t < s + window) for s in starts)
    # At most limit + rate_burst - 1 (= limit) leases in any window.
    assert all(starts) and worst <= limit


def test_concurrency_limit_across_two_workers(h: Harness) -> None:
    q = h.queue("narrow")
    h.app.configure_queue(q, concurrency_limit=2)
    lock = threading.Lock()
    running = [0, 0]  # now, most

    @h.task("c", queue=q)
    def c(n: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return n

    refs = [c.enqueue(i) for i in range(10)]
    h.worker([q], concurrency=4)
    h.worker([q], concurrency=4)
    assert sorted(ref.wait(WAIT) for ref in refs) == list(range(10))
    assert 1 <= running[1] <= 2


def test_bad_queue_options_are_invalid(h: Harness) -> None:
    with pytest.raises(runq.InvalidArgument):
        h.app.configure_queue(h.queue(), rate_limit=(5, 0))
    with pytest.raises(runq.InvalidArgument):
        h.app.configure_queue(h.queue(), pause_after_failures=2, pause_min=5, pause_max=1)
