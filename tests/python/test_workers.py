"""Autoscaling workers: concurrency=(min, max) and the CLI's MIN:MAX."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import runq
from runq import cli

from conftest import Harness

WAIT = 60


def _wait_for(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    # A generous bound so a broken pool fails the test instead of hanging it.
    end = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_pool_grows_with_a_backlog_then_shrinks_to_min(h: Harness) -> None:
    lock = threading.Lock()
    now = [0]
    peak = [0]
    threads_seen = [0]
    w: list[runq.Worker] = []

    @h.task("slow")
    def slow(i: int) -> int:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        threads_seen[0] = max(threads_seen[0], w[0].stats().get("threads", 0))
        # Hold until another handler overlaps, which with min 1 only a grown
        # pool can provide (bounded: the test then fails on the peak).
        end = time.monotonic() + 20
        while peak[0] < 2 and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return i

    refs = h.app.enqueue_many([slow.prepare(i) for i in range(30)])
    w.append(h.worker(concurrency=(1, 6), idle_timeout=0.2))
    assert [r.wait(WAIT) for r in refs] == list(range(30))
    assert 1 < peak[0] <= 6
    assert 1 < threads_seen[0] <= 6
    _wait_for(lambda: w[0].stats()["threads"] == 1, "the pool to shrink to min")
    stats = w[0].stats()
    assert stats["threads"] == 1 and stats["running"] == 0 and stats["processed"] == 30


def test_fixed_concurrency_reports_its_threads(h: Harness) -> None:
    w = h.worker(concurrency=3)
    _wait_for(lambda: w.stats()["idle"] == 3, "three idle threads")
    assert w.stats()["threads"] == 3


@pytest.mark.parametrize("bad", [(0, 2), (3, 2), (1, 2, 3), (-1, 1)])
def test_bad_concurrency_range_is_a_value_error(bad: tuple[int, ...]) -> None:
    app = runq.App("memory://")
    with pytest.raises(ValueError, match="concurrency"):
        app.worker(concurrency=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idle_timeout"):
        app.worker(concurrency=(1, 2), idle_timeout=0)
    app.close()


def test_engine_refuses_a_bad_range_with_its_detail() -> None:
    client = runq._runq.Client("memory://")
    with pytest.raises(runq.InvalidArgument, match="min_concurrency"):
        runq._runq.Worker(client, ["default"], min_concurrency=5, max_concurrency=2)
    client.close()


def test_cli_concurrency_argument() -> None:
    assert cli._concurrency("4") == 4
    assert cli._concurrency("2:16") == (2, 16)
    for bad in ["0", "3:2", "0:4", "a:b", "1:2:3", ""]:
        with pytest.raises(argparse.ArgumentTypeError, match="MIN:MAX"):
            cli._concurrency(bad)


APP_MODULE = textwrap.dedent(
    """
    import os
    import runq

    app = runq.App(os.environ["RUNQ_TEST_URL"])

    @app.task(name="scale.echo")
    def echo(i: int) -> int:
        return i
    """
)


def test_cli_worker_with_a_range_runs_jobs(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "scaleapp.py").write_text(APP_MODULE)
    env = dict(os.environ, RUNQ_TEST_URL=redis_url, PYTHONPATH=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq", "worker", "scaleapp:app", "--concurrency", "1:4",
         "--idle-timeout", "0.5"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    producer = runq.App(redis_url)
    try:
        refs = [producer.remote("scale.echo").enqueue(i) for i in range(20)]
        assert [r.wait(WAIT) for r in refs] == list(range(20))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=WAIT)
        producer.close()
    assert proc.returncode == 0, out
    assert "concurrency=1:4" in out, out
