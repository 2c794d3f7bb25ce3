"""Per-key interval limit (rate_key + rate_interval) and unique-until-done,
on memory:// and on a private redis-server. Start times are the backend's
lease times (Job.leased_at), never the test's clock."""
from __future__ import annotations

import threading
import time

import pytest

import runq

from conftest import Harness

WAIT = 30  # generous upper bounds only; nothing here measures speed


def test_same_rate_key_starts_at_least_an_interval_apart(h: Harness) -> None:
    starts: list[tuple[int, int, str | None, int]] = []
    lock = threading.Lock()

    @h.task("call")
    def call(job: runq.Job) -> None:
        with lock:
            starts.append((job.leased_at, job.args[0], job.rate_key, job.rate_interval))

    refs = [call.options(rate_key="tenant:1", rate_interval=0.2).enqueue(i) for i in range(4)]
    h.worker(concurrency=4)
    for r in refs:
        r.wait(WAIT)
    starts.sort()
    assert [s[1] for s in starts] == [0, 1, 2, 3]  # FIFO within the key
    assert all(s[2] == "tenant:1" and s[3] == 200 for s in starts)
    for a, b in zip(starts, starts[1:]):
        assert b[0] - a[0] >= 200
    info = refs[0].info()
    assert info.rate_key == "tenant:1" and info.rate_interval == 200
    assert info.leased_at == 0  # a snapshot is no delivery


def test_waiting_rate_key_does_not_block_other_keys(h: Harness) -> None:
    @h.task("call")
    def call(n: int) -> int:
        return n

    slow = call.options(rate_key="A", rate_interval=60)
    a = [slow.enqueue(i) for i in range(5)]
    b = call.options(rate_key="B", rate_interval=60).enqueue(100)
    plain = call.enqueue(200)
    h.worker(concurrency=2)
    assert b.wait(WAIT) == 100  # enqueued after A's backlog, done before it drains
    assert plain.wait(WAIT) == 200
    assert a[0].wait(WAIT) == 0
    assert h.app.queue_stats(h.queue())["pending"] == 4
    assert all(r.status() is runq.JobState.PENDING for r in a[1:])


def test_rate_key_needs_an_interval(h: Harness) -> None:
    @h.task("call")
    def call(n: int) -> int:
        return n

    with pytest.raises(runq.InvalidArgument, match="rate_interval"):
        call.options(rate_key="k").enqueue(1)
    with pytest.raises(runq.InvalidArgument, match="rate_key"):
        call.options(rate_interval=1).enqueue(1)
    with pytest.raises(runq.InvalidArgument, match="unique_key"):
        call.options(unique_until_done=True).enqueue(1)


def test_unique_until_done(h: Harness) -> None:
    running = threading.Event()
    release = threading.Event()
    hold = threading.Event()

    @h.task("sync", retries=0)
    def sync(n: int) -> int:
        if n == 1:
            running.set()
            assert release.wait(WAIT)
        if n == 3:
            raise RuntimeError("fatal")
        if n == 4:
            assert hold.wait(WAIT)
        return n

    opts = sync.options(unique_key="acct-1", unique_until_done=True)
    a = opts.enqueue(1)
    assert a.info().unique_until_done

    def refused_by(holder: runq.JobRef) -> None:
        with pytest.raises(runq.DuplicateJob) as ei:
            opts.enqueue(2)
        assert ei.value.job_id == holder.id

    refused_by(a)  # pending
    h.worker(concurrency=1)
    assert running.wait(WAIT)
    refused_by(a)  # running
    release.set()
    assert a.wait(WAIT) == 1
    b = opts.enqueue(3)  # done: free at once (a TTL key would still hold)
    with pytest.raises(runq.JobFailed):
        b.wait(WAIT)
    c = opts.enqueue(4)  # dead: free too
    assert c.id not in (a.id, b.id)
    with pytest.raises(runq.DuplicateJob):
        h.app.retry_dead(b.id)  # c holds the key: b stays dead
    assert b.status() is runq.JobState.DEAD
    hold.set()
    assert c.wait(WAIT) == 4
    h.app.retry_dead(b.id)  # free again: b comes back (and fails again)
    with pytest.raises(runq.JobFailed):
        b.wait(WAIT)


def test_once_in_accepts_again_in_the_next_period(h: Harness) -> None:
    @h.task("digest")
    def digest(x: int) -> int:
        return x

    def next_bucket() -> None:  # the producer's clock picks the bucket
        b = int(time.time() * 1000) // 1000
        while int(time.time() * 1000) // 1000 == b:
            time.sleep(0.002)

    next_bucket()
    a = digest.enqueue_once_in(1.0, 1)
    with pytest.raises(runq.DuplicateJob) as ei:
        digest.enqueue_once_in(1.0, 1)
    assert ei.value.job_id == a.id
    next_bucket()
    b = digest.enqueue_once_in(1.0, 1)
    assert b.id != a.id and b.info().unique_key != a.info().unique_key
