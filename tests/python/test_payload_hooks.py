"""Compression, job metadata, hooks and OpenTelemetry tracing."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import runq
import runq.otel
from conftest import Harness

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import redisproc  # noqa: E402

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

WAIT = 20.0
ROOT = Path(__file__).resolve().parents[2]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


# The job record, version 2 (core/src/redis/scripts/_record.lua), in the hash
# {runq:Q}:jobs: "2|maxr|prio|created|eta|timeout|deadline|uttl|rint|uud|
# #task|#args|#ukey|#meta|#rkey|" then task, args, ukey, meta, rkey.
_REC_PARTS = ("task", "args", "ukey", "meta", "rkey")


def _parse_record(rec: bytes) -> dict[str, bytes]:
    fields = rec.split(b"|", 15)
    assert len(fields) == 16 and fields[0] == b"2", rec[:200]
    lens = [int(x) for x in fields[10:15]]
    body = fields[15]
    assert len(body) == sum(lens), (lens, len(body))  # a well-formed record
    out: dict[str, bytes] = {}
    pos = 0
    for name, n in zip(_REC_PARTS, lens):
        out[name] = body[pos:pos + n]
        pos += n
    return out


def _stored_len(url: str, queue: str, job_id: str, field: str) -> int:
    """How many bytes the backend stores for a job's args (from the job
    record in {runq:Q}:jobs) or result (from the done job's field there, which
    ack replaced by "4|expiry|finished|attempt|#result|#att|" result att
    record)."""
    if field == "result":
        fin = redisproc.bulk(_port(url), "HGET", f"{{runq:{queue}}}:jobs", job_id)
        assert fin is not None, "no kept result"
        parts = fin.split(b"|", 6)
        assert len(parts) == 7 and parts[0] == b"4", fin[:200]
        nres, natt = int(parts[4]), int(parts[5])
        rest = parts[6]
        assert len(rest) >= nres + natt, (nres, natt, len(rest))
        _parse_record(rest[nres + natt:])  # the record follows, intact
        return len(rest[:nres])
    rec = redisproc.bulk(_port(url), "HGET", f"{{runq:{queue}}}:jobs", job_id)
    assert rec is not None, "no job record"
    return len(_parse_record(rec)[field])


# ---- compression ---------------------------------------------------------

def test_compression_is_transparent(h: Harness) -> None:
    text = "the quick brown fox jumps over the lazy dog " * 400  # ~18 KB

    @h.task("echo")
    def echo(s: str, n: int = 0) -> dict[str, Any]:
        return {"back": s.upper(), "n": n}

    ref = echo.enqueue(text, n=3)
    if h.url.startswith("redis"):
        stored = _stored_len(h.url, h.queue(), ref.id, "args")
        assert 0 < stored < len(text) // 10  # stored compressed
    assert ref.info().args == [text]  # get unwraps it
    h.worker()
    assert ref.wait(WAIT) == {"back": text.upper(), "n": 3}
    if h.url.startswith("redis"):
        assert 0 < _stored_len(h.url, h.queue(), ref.id, "result") < len(text) // 10


def test_compress_threshold_zero_stores_plain(redis_url: str) -> None:
    app = runq.App(redis_url, compress_threshold=0)
    text = "z" * 5000
    try:
        ref = app.remote("nobody.handles.this", queue="plainq").enqueue(text)
        assert _stored_len(redis_url, "plainq", ref.id, "args") > 5000
        small = runq.App(redis_url)  # the default: 1024 bytes
        ref2 = small.remote("nobody.handles.this", queue="plainq").enqueue(text)
        assert _stored_len(redis_url, "plainq", ref2.id, "args") < 500
        # Either client reads both forms.
        assert small.job(ref.id).info().args == [text]
        assert app.job(ref2.id).info().args == [text]
        small.close()
        with pytest.raises(ValueError):
            runq.App(redis_url, compress_threshold=-1).client
    finally:
        app.close()


# ---- metadata ------------------------------------------------------------

def test_meta_round_trips(h: Harness) -> None:
    @h.task("meta")
    def meta(job: runq.Job) -> dict[str, str]:
        return job.meta

    ref = meta.options(meta={"tenant": "acme", "trace": "t-1", "empty": ""}).enqueue()
    assert ref.info().meta == {"tenant": "acme", "trace": "t-1", "empty": ""}
    plain = meta.enqueue()
    h.worker()
    assert ref.wait(WAIT) == {"tenant": "acme", "trace": "t-1", "empty": ""}
    assert plain.wait(WAIT) == {}
    with pytest.raises(TypeError):
        meta.options(meta={"n": 1}).enqueue()  # type: ignore[dict-item]
    with pytest.raises(runq.InvalidArgument):
        meta.options(meta={"": "x"}).enqueue()
    with pytest.raises(runq.PayloadTooLarge):
        meta.options(meta={"big": "v" * 70000}).enqueue()


# ---- hooks ---------------------------------------------------------------

def test_hooks_fire_in_order_with_outcomes(h: Harness) -> None:
    events: list[tuple[Any, ...]] = []
    lock = threading.Lock()

    @h.app.on_enqueue
    def stamp(job: runq.Job) -> None:
        job.set_meta("stamp", f"s-{job.args[0]}")
        with lock:
            events.append(("enqueue", job.args[0], job.task))

    @h.app.before_process
    def before(job: runq.Job) -> None:
        with lock:
            events.append(("before", job.args[0], job.meta["stamp"], job.attempt))

    @h.app.after_process
    def after(job: runq.Job, outcome: runq.app.ProcessOutcome) -> None:
        with lock:
            events.append(("after", job.args[0], outcome.outcome, outcome.error, outcome.duration_us))

    @h.task("flaky", retries=1)
    def flaky(job: runq.Job) -> str:
        kind = job.args[0]
        if kind == "dead" or (kind == "retry" and job.attempt == 1):
            raise RuntimeError(f"boom {kind}")
        return kind

    ok, retry, dead = flaky.enqueue("ok"), flaky.enqueue("retry"), flaky.enqueue("dead")
    assert ok.info().meta == {"stamp": "s-ok"}
    h.worker(concurrency=1)
    assert ok.wait(WAIT) == "ok"
    assert retry.wait(WAIT) == "retry"
    with pytest.raises(runq.JobFailed):
        dead.wait(WAIT)
    h.close()  # after_process of the last job has run once the worker stopped

    def of(name: str) -> list[tuple[Any, ...]]:
        return [e for e in events if e[1] == name]

    assert [e[0] for e in of("ok")] == ["enqueue", "before", "after"]
    assert of("ok")[1] == ("before", "ok", "s-ok", 1)
    assert of("ok")[2][2:4] == ("acked", None)
    assert [e[0] for e in of("retry")] == ["enqueue", "before", "after", "before", "after"]
    assert [e[2] for e in of("retry") if e[0] == "after"] == ["retried", "acked"]
    assert "boom retry" in of("retry")[2][3]
    assert [e[2] for e in of("dead") if e[0] == "after"] == ["retried", "dead"]
    assert all(e[4] >= 0 for e in events if e[0] == "after")


def test_on_enqueue_exception_refuses_the_job(h: Harness) -> None:
    class NoNegatives(Exception):
        pass

    @h.app.on_enqueue
    def check(job: runq.Job) -> None:
        if job.args[0] < 0:
            raise NoNegatives(f"refused {job.args[0]}")

    t = h.app.remote(h.name("t"), queue=h.queue())
    with pytest.raises(NoNegatives, match="refused -1"):
        t.enqueue(-1)
    t.enqueue(1)
    refs = h.app.enqueue_many([t.prepare(2), t.prepare(-3)], return_exceptions=True)
    assert isinstance(refs[0], runq.JobRef)
    assert isinstance(refs[1], runq.InvalidArgument) and "refused -3" in str(refs[1])
    assert h.app.queue_stats(h.queue())["pending"] == 2
    # The hooks stay with the App across a reconnect.
    h.app.close()
    with pytest.raises(NoNegatives):
        t.enqueue(-4)


def test_on_enqueue_failing_on_the_scheduler_thread_is_reported(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))

    @h.app.on_enqueue
    def refuse(job: runq.Job) -> None:
        raise RuntimeError(f"no periodic {job.task}")

    @h.task("tick")
    def tick() -> int:
        return 1

    h.app.schedule(tick, every=0.05)
    h.worker()
    deadline = time.monotonic() + WAIT
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen and isinstance(seen[0], RuntimeError)
    assert f"no periodic {tick.name}" in str(seen[0])
    assert h.app.queue_stats(h.queue())["pending"] == 0  # refused, not stored


def test_process_hook_exceptions_are_logged_not_fatal(h: Harness,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    @h.app.before_process
    def broken(job: runq.Job) -> None:
        raise KeyError("no such header")

    @h.task("fine")
    def fine() -> int:
        return 1

    with caplog.at_level(logging.ERROR, logger="runq"):
        ref = fine.enqueue()
        h.worker()
        assert ref.wait(WAIT) == 1
    assert any("before_process hook" in r.getMessage() and "no such header" in (r.exc_text or "")
               for r in caplog.records)


# ---- OpenTelemetry -------------------------------------------------------

def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_otel_consumer_span_continues_the_producer_trace(h: Harness) -> None:
    provider, exporter = _provider()
    runq.otel.instrument(h.app, tracer_provider=provider)
    tracer = provider.get_tracer("test")

    @h.task("traced", retries=0)
    def traced(x: int) -> int:
        with tracer.start_as_current_span("inside"):
            pass
        if x < 0:
            raise ValueError("negative")
        return x * 2

    ref = traced.enqueue(21)
    bad = traced.enqueue(-1)
    h.worker()
    assert ref.wait(WAIT) == 42
    with pytest.raises(runq.JobFailed):
        bad.wait(WAIT)
    traceparent = ref.info().meta["traceparent"]
    h.close()
    spans = exporter.get_finished_spans()
    by_job: dict[str, dict[str, Any]] = {}
    for s in spans:
        if s.attributes and "messaging.message.id" in s.attributes:
            by_job.setdefault(str(s.attributes["messaging.message.id"]), {})[s.kind] = s
    prod, cons = by_job[ref.id][SpanKind.PRODUCER], by_job[ref.id][SpanKind.CONSUMER]
    assert cons.context.trace_id == prod.context.trace_id
    assert cons.parent is not None and cons.parent.span_id == prod.context.span_id
    assert cons.attributes["runq.task"] == traced.name
    assert cons.attributes["messaging.destination.name"] == h.queue()
    assert cons.attributes["runq.attempt"] == 1
    assert cons.attributes["runq.outcome"] == "acked"
    inside = [s for s in spans if s.name == "inside"]
    assert any(s.parent is not None and s.parent.span_id == cons.context.span_id for s in inside)
    failed = by_job[bad.id][SpanKind.CONSUMER]
    assert failed.attributes["runq.outcome"] == "dead"
    assert not failed.status.is_ok
    assert traceparent.split("-")[1] == format(prod.context.trace_id, "032x")


WORKER_SCRIPT = textwrap.dedent("""
    import json, sys
    import runq, runq.otel
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = runq.App(sys.argv[1])
    runq.otel.instrument(app, tracer_provider=provider)

    @app.task(name="otel.remote", queue="otelq")
    def remote(x):
        return x + 1

    w = app.worker(["otelq"]).start()
    ref = app.job(sys.argv[2])
    ref.wait(20)
    w.stop(grace=5)
    spans = [s for s in exporter.get_finished_spans() if s.name == "otel.remote process"]
    print(json.dumps([{"trace": s.context.trace_id, "parent": s.parent.span_id if s.parent else None,
                       "outcome": s.attributes["runq.outcome"]} for s in spans]))
""")


def test_otel_trace_crosses_processes_over_redis(redis_url: str, tmp_path: Path) -> None:
    provider, exporter = _provider()
    app = runq.App(redis_url)
    runq.otel.instrument(app, tracer_provider=provider)
    try:
        ref = app.remote("otel.remote", queue="otelq").enqueue(1)
        script = tmp_path / "otel_worker.py"
        script.write_text(WORKER_SCRIPT)
        out = subprocess.run([sys.executable, str(script), redis_url, ref.id],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert ref.wait(WAIT) == 2
    finally:
        app.close()
    (prod,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    (remote,) = json.loads(out.stdout.strip().splitlines()[-1])
    assert remote["trace"] == prod.context.trace_id
    assert remote["parent"] == prod.context.span_id
    assert remote["outcome"] == "acked"
