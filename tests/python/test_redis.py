"""Redis-only behaviour seen from Python: durability and restarts."""
from __future__ import annotations

import pytest

import runq

from conftest import redisproc


def test_replicate_without_replica_is_durability_unknown(redis_url: str) -> None:
    app = runq.App(redis_url)
    try:
        t = app.remote("dur.t")
        with pytest.raises(runq.DurabilityUnknown) as ei:
            t.options(replicate=1, replicate_timeout=0.1).enqueue(1)
        assert ei.value.job_id  # written, durability unknown
        assert app.job(ei.value.job_id).status() is runq.JobState.PENDING
    finally:
        app.close()


def test_replicate_with_a_replica() -> None:
    with redisproc.RedisServer() as primary:
        with redisproc.RedisServer(replica_of=primary) as replica:
            replica.wait_replica_synced()
            app = runq.App(primary.url)
            try:
                ref = app.remote("dur.t").options(replicate=1, replicate_timeout=5).enqueue(1)
                assert ref.status() is runq.JobState.PENDING
            finally:
                app.close()


def test_jobs_survive_an_aof_restart() -> None:
    with redisproc.RedisServer(appendonly=True) as server:
        app = runq.App(server.url)
        try:
            @app.task(name="aof.t")
            def t(x: int) -> int:
                return x + 1

            ref = t.enqueue(41)
            app.close()
            server.restart()
            with app.worker(["default"]):
                assert ref.wait(60) == 42
        finally:
            app.close()
