"""Fixtures: every API test runs on memory:// and on a private redis-server.

Nothing is skipped: a missing redis-server binary, a server that does not
start or an engine built without the redis backend is a failure.
"""
from __future__ import annotations

import os
import sys
import uuid
from typing import Any, Callable, Iterator

import pytest

import runq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import redisproc  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[redisproc.RedisServer]:
    if not redisproc.available():
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    with redisproc.RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    server: redisproc.RedisServer = request.getfixturevalue("redis_server")
    redisproc.command(server.port, "FLUSHALL")
    return server.url


@pytest.fixture
def redis_url(redis_server: redisproc.RedisServer) -> str:
    redisproc.command(redis_server.port, "FLUSHALL")
    return redis_server.url


class Harness:
    """An App plus the workers a test starts, all stopped at teardown."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = runq.App(url)
        self.workers: list[runq.Worker] = []
        # Unique task and queue names keep tests apart on a shared server.
        self.prefix = "t" + uuid.uuid4().hex[:10]

    def name(self, base: str) -> str:
        return f"{self.prefix}.{base}"

    def queue(self, base: str = "q") -> str:
        return f"{self.prefix}-{base}"

    def worker(self, queues: list[str] | None = None, **kw: Any) -> runq.Worker:
        kw.setdefault("grace", 5.0)
        w = self.app.worker(queues or [self.queue()], **kw)
        self.workers.append(w)
        return w.start()

    def task(self, base: str, **kw: Any) -> Callable[[Callable[..., Any]], runq.Task]:
        kw.setdefault("queue", self.queue())
        kw.setdefault("backoff", (0.01, 0.05))
        return self.app.task(name=self.name(base), **kw)

    def close(self) -> None:
        for w in self.workers:
            w.stop(grace=1.0)
        self.app.close()


@pytest.fixture
def h(backend_url: str) -> Iterator[Harness]:
    harness = Harness(backend_url)
    yield harness
    harness.close()
