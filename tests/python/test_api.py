"""The Python API over both backends: enqueue, wait, handlers, options."""
from __future__ import annotations

import contextvars
import threading
import time

import pytest

import runq

from conftest import Harness

WAIT = 30  # generous upper bounds only; nothing here measures speed


def test_enqueue_wait_result(h: Harness) -> None:
    @h.task("add")
    def add(x: int, y: int) -> int:
        return x + y

    ref = add.enqueue(2, 3)
    assert isinstance(ref, runq.JobRef) and len(ref.id) == 26
    assert ref.status() is runq.JobState.PENDING
    assert ref.result is None
    h.worker()
    assert ref.wait(WAIT) == 5
    assert ref.status() is runq.JobState.DONE
    assert ref.result == 5
    info = ref.info()
    assert info.task == add.name and info.queue == h.queue() and info.attempt == 1
    assert info.args == [2, 3] and info.kwargs == {}


def test_handler_signatures(h: Harness) -> None:
    @h.task("noargs")
    def noargs() -> str:
        return "none"

    @h.task("mixed")
    def mixed(a: int, b: int = 0, *rest: int, c: str = "c", **extra: int) -> list[object]:
        return [a, b, list(rest), c, extra]

    @h.task("withjob")
    def withjob(job: runq.Job) -> list[object]:
        # The annotation is the string "runq.Job" here (future annotations).
        return [job.id, job.task, job.args, job.kwargs, job.attempt, job.cancelled]

    @h.task("plainparam")
    def plainparam(job):  # type: ignore[no-untyped-def]
        return job  # not annotated: it is an ordinary argument

    h.worker()
    assert noargs.enqueue().wait(WAIT) == "none"
    assert mixed.enqueue(1, 2, 3, 4, c="x", d=5).wait(WAIT) == [1, 2, [3, 4], "x", {"d": 5}]
    ref = withjob.enqueue(7, k="v")
    assert ref.wait(WAIT) == [ref.id, withjob.name, [7], {"k": "v"}, 1, False]
    assert plainparam.enqueue("value").wait(WAIT) == "value"
    # Calling the task object runs the handler locally.
    assert mixed(1) == [1, 0, [], "c", {}]


def test_async_handler(h: Harness) -> None:
    import asyncio

    @h.task("aio")
    async def aio(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    @h.task("aiojob")
    async def aiojob(job: runq.Job) -> int:
        await asyncio.sleep(0)
        return job.attempt

    @h.task("aiofail", retries=0)
    async def aiofail() -> None:
        raise KeyError("async boom")

    h.worker(concurrency=3)
    refs = [aio.enqueue(i) for i in range(10)]
    assert [r.wait(WAIT) for r in refs] == [i * 2 for i in range(10)]
    assert aiojob.enqueue().wait(WAIT) == 1
    with pytest.raises(runq.JobFailed) as ei:
        aiofail.enqueue().wait(WAIT)
    assert "KeyError: 'async boom'" in (ei.value.error or "")


def test_retries_then_success(h: Harness) -> None:
    @h.task("flaky", retries=3)
    def flaky(job: runq.Job) -> int:
        if job.attempt < 3:
            raise RuntimeError(f"attempt {job.attempt}")
        return job.attempt

    h.worker()
    ref = flaky.enqueue()
    assert ref.wait(WAIT) == 3
    assert ref.info().attempt == 3


def test_retry_exception_sets_delay(h: Harness) -> None:
    @h.task("retrying", retries=2, backoff=(3600, 3600))
    def retrying(job: runq.Job) -> str:
        if job.attempt == 1:
            # Without the explicit delay the backoff (1 h) would apply.
            raise runq.Retry(delay=0.01)
        return "second"

    h.worker()
    ref = retrying.enqueue()
    assert ref.wait(WAIT) == "second"
    assert ref.info().attempt == 2


def test_dead_letters_fallback_and_retry(h: Harness) -> None:
    fell: list[runq.Job] = []
    calls: list[int] = []
    fixed = threading.Event()

    fell_done = threading.Event()

    def on_dead(job: runq.Job) -> None:
        fell.append(job)
        fell_done.set()

    @h.task("doomed", retries=1, fallback=on_dead)
    def doomed(n: int) -> int:
        calls.append(n)
        if not fixed.is_set():
            raise ValueError(f"bad input {n}")
        return n

    h.worker()
    ref = doomed.enqueue(41)
    with pytest.raises(runq.JobFailed) as ei:
        ref.wait(WAIT)
    assert isinstance(ei.value, runq.Error)
    assert ei.value.job_id == ref.id
    assert "Traceback" in (ei.value.error or "") and "ValueError: bad input 41" in (ei.value.error or "")
    info = ref.info()
    assert info.state is runq.JobState.DEAD and info.attempt == 2
    assert "ValueError" in (info.error or "")
    assert calls == [41, 41]
    # The fallback runs after the job is dead, so possibly after wait returned.
    assert fell_done.wait(WAIT)
    assert [j.id for j in fell] == [ref.id]
    assert ref in h.app.dead_letters(h.queue())
    assert h.app.queue_stats(h.queue())["dead"] == 1

    fixed.set()
    h.app.retry_dead(ref.id)
    assert ref.wait(WAIT) == 41
    assert ref not in h.app.dead_letters(h.queue())


def test_enqueue_options(h: Harness) -> None:
    import time

    @h.task("opt")
    def opt() -> None:
        pass

    delayed = opt.options(delay=3600).enqueue()
    assert delayed.status() is runq.JobState.SCHEDULED
    at = opt.options(eta=time.time() + 3600).enqueue()
    assert at.status() is runq.JobState.SCHEDULED
    other = opt.options(queue=h.queue("other"), priority=7, ttl=3600).enqueue()
    info = other.info()
    assert info.queue == h.queue("other") and info.priority == 7 and info.deadline > 0
    assert info.state is runq.JobState.PENDING
    stats = h.app.queue_stats(h.queue())
    assert stats["scheduled"] == 2 and stats["pending"] == 0
    with pytest.raises(ValueError):
        opt.options(delay=-1)
    with pytest.raises(TypeError):
        opt.options(bogus=1)


def test_priority_order(h: Harness) -> None:
    seen: list[int] = []

    @h.task("prio")
    def prio(n: int) -> None:
        seen.append(n)

    for n, p in ((1, 0), (2, 10), (3, 5)):
        prio.options(priority=p).enqueue(n)
    h.worker(concurrency=1)
    last = prio.options(priority=-1).enqueue(4)
    last.wait(WAIT)
    assert seen == [2, 3, 1, 4]


def test_unique_key_duplicate(h: Harness) -> None:
    @h.task("uniq")
    def uniq(x: int) -> int:
        return x

    first = uniq.options(unique_key="order-1").enqueue(1)
    with pytest.raises(runq.DuplicateJob) as ei:
        uniq.options(unique_key="order-1").enqueue(2)
    assert ei.value.job_id == first.id
    assert ei.value.existing == first  # type: ignore[attr-defined]
    assert uniq.options(unique_key="order-2").enqueue(3).id != first.id


def test_enqueue_once_in(h: Harness) -> None:
    @h.task("report")
    def report(day: str) -> str:
        return day

    a = report.enqueue_once_in(3600, "mon")
    with pytest.raises(runq.DuplicateJob) as ei:
        report.enqueue_once_in(3600, "mon")
    assert ei.value.job_id == a.id
    b = report.enqueue_once_in(3600, "tue")
    assert b.id != a.id
    key_a, key_b = a.info().unique_key, b.info().unique_key
    # The engine's derivation (docs/protocol.md), shared with C and Lua.
    assert key_a and key_a.startswith(f"once:{report.name}:") and key_a != key_b
    with pytest.raises(ValueError):
        report.enqueue_once_in(0, "x")


def test_enqueue_many(h: Harness) -> None:
    @h.task("many")
    def many(x: int, y: int = 0) -> int:
        return x + y

    refs = h.app.enqueue_many([
        many.prepare(1),
        many.options(priority=3).prepare(2, y=5),
        (many, (10,), {"y": 1}),
    ])
    assert len({r.id for r in refs}) == 3
    dup = many.options(unique_key="m").prepare(0)
    first = h.app.enqueue_many([dup])[0]
    out = h.app.enqueue_many([many.prepare(4), dup], return_exceptions=True)
    assert isinstance(out[0], runq.JobRef)
    assert isinstance(out[1], runq.DuplicateJob) and out[1].job_id == first.id
    with pytest.raises(runq.DuplicateJob) as ei:
        h.app.enqueue_many([dup])
    assert len(ei.value.results) == 1  # type: ignore[attr-defined]
    h.worker()
    assert [r.wait(WAIT) for r in refs] == [1, 7, 11]
    assert h.app.enqueue_many([]) == []


def test_value_round_trip(h: Harness) -> None:
    @h.task("echo")
    def echo(*args: object, **kwargs: object) -> list[object]:
        return [list(args), kwargs]

    values = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, -0.0,
              "", "héllo ✓", b"", b"\x00\xff", [], [1, [2, [3]]], (1, 2), {},
              {"a": {"b": [None]}}, {1: "int key"}]
    h.worker()
    got = echo.enqueue(*values, kw={"x": b"y"}).wait(WAIT)
    expect = [list(v) if isinstance(v, tuple) else v for v in values]
    assert got == [expect, {"kw": {"x": b"y"}}]


def test_unencodable_arguments_raise_type_error(h: Harness) -> None:
    @h.task("enc")
    def enc(*a: object, **k: object) -> None:
        pass

    with pytest.raises(TypeError, match=r"positional argument 1.*set"):
        enc.enqueue(1, {1, 2})
    with pytest.raises(TypeError, match=r"keyword argument 'when'.*datetime"):
        import datetime

        enc.enqueue(when=datetime.datetime.now())
    with pytest.raises(TypeError, match=r"positional argument 0 \(at \['k'\]\[1\]\).*object"):
        enc.enqueue({"k": [1, object()]})
    with pytest.raises(TypeError, match="64-bit"):
        enc.enqueue(2**64)
    with pytest.raises(TypeError, match="nested deeper"):
        deep: list[object] = []
        for _ in range(40):
            deep = [deep]
        enc.enqueue(deep)
    assert h.app.queue_stats(h.queue())["pending"] == 0


def test_result_unencodable_fails_job(h: Harness) -> None:
    @h.task("badresult", retries=0)
    def badresult() -> object:
        return {1, 2}

    h.worker()
    with pytest.raises(runq.JobFailed) as ei:
        badresult.enqueue().wait(WAIT)
    assert "cannot encode the handler's result" in (ei.value.error or "")


def test_payload_too_large(backend_url: str) -> None:
    app = runq.App(backend_url, max_payload=1024)
    try:
        t = app.remote("big.task")
        t.enqueue(b"x" * 100)
        with pytest.raises(runq.PayloadTooLarge) as ei:
            t.enqueue(b"x" * 4096)
        assert isinstance(ei.value, runq.InvalidArgument)
        assert ei.value.code == runq._runq.ETOOBIG
    finally:
        app.close()


def test_bad_urls() -> None:
    for url in ("bogus://x", "redis://host:notaport", "", "memory"):
        with pytest.raises(runq.InvalidURL):
            runq.App(url or "nope://").client


def test_bad_names(h: Harness) -> None:
    t = h.app.remote("has space")
    with pytest.raises(runq.InvalidArgument):
        t.enqueue()
    with pytest.raises(runq.InvalidArgument):
        h.app.remote("x").options(queue="{brace}").enqueue()


def test_result_ttl_zero_keeps_nothing_of_done_jobs(backend_url: str) -> None:
    app = runq.App(backend_url, result_ttl=0)
    ran = threading.Event()

    @app.task(name="nokeep.t", queue="nokeep")
    def t(x: int) -> int:
        ran.set()
        return x * 2

    try:
        ref = t.enqueue(21)
        w = app.worker(["nokeep"], concurrency=1)
        w.start()
        assert ran.wait(30)
        deadline = time.monotonic() + 30
        while w.stats().get("processed", 0) < 1:
            assert time.monotonic() < deadline, "the job was never acked"
            time.sleep(0.01)
        w.stop(5)
        with pytest.raises(runq.NotFound):
            ref.status()
        with pytest.raises(runq.NotFound):
            ref.wait(5)
    finally:
        app.close()


_seen_var: "contextvars.ContextVar[int]" = contextvars.ContextVar("seen")


def test_a_context_variable_set_by_a_handler_does_not_reach_the_next_job(h: Harness) -> None:
    seen: list[int] = []

    @h.task("ctx")
    def t(i: int) -> None:
        seen.append(_seen_var.get(-1))
        _seen_var.set(i)

    refs = [t.enqueue(i) for i in range(3)]
    h.worker(concurrency=1)  # one engine thread runs all three
    for r in refs:
        r.wait(30)
    assert seen == [-1, -1, -1]


def test_job_not_found_and_wait_timeout(h: Harness) -> None:
    with pytest.raises(runq.NotFound):
        h.app.job("0" * 26).status()

    @h.task("never")
    def never() -> None:
        pass

    ref = never.enqueue()  # no worker: it cannot finish
    with pytest.raises(runq.Timeout):
        ref.wait(0.05)


def test_cancelled_visible_to_long_handler(h: Harness) -> None:
    started = threading.Event()
    saw_cancel = threading.Event()

    @h.task("long", retries=0)
    def long(job: runq.Job) -> str:
        started.set()
        while not job.cancelled:
            threading.Event().wait(0.01)
        saw_cancel.set()
        return "stopped early"

    w = h.worker()
    ref = long.enqueue()
    assert started.wait(WAIT)
    assert w.stop(grace=0.05) is False  # past the grace: the handler was cancelled
    assert saw_cancel.is_set()
    assert ref.status() in (runq.JobState.DONE, runq.JobState.PENDING,
                            runq.JobState.SCHEDULED, runq.JobState.DEAD)


def test_eight_threads_enqueue(h: Harness) -> None:
    @h.task("count")
    def count(t: int, i: int) -> list[int]:
        return [t, i]

    ids: list[list[runq.JobRef]] = [[] for _ in range(8)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def produce(t: int) -> None:
        try:
            barrier.wait()
            for i in range(100):
                ids[t].append(count.enqueue(t, i))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    h.worker(concurrency=4)
    for th in threads:
        th.join()
    assert not errors
    refs = [r for per in ids for r in per]
    assert len({r.id for r in refs}) == 800
    for t, per in enumerate(ids):
        assert [r.wait(WAIT) for r in per] == [[t, i] for i in range(100)]


def test_worker_run_until_stop(h: Harness) -> None:
    @h.task("ping")
    def ping() -> str:
        return "pong"

    w = h.app.worker([h.queue()])
    t = threading.Thread(target=w.run)
    t.start()
    assert ping.enqueue().wait(WAIT) == "pong"
    w.stop()
    t.join(WAIT)
    assert not t.is_alive() and not w.running


def test_stop_from_inside_handler(h: Harness) -> None:
    holder: dict[str, runq.Worker] = {}

    @h.task("stopper")
    def stopper() -> str:
        holder["w"].stop()
        return "asked"

    @h.task("astopper")
    async def astopper() -> str:
        holder["w"].stop()  # from the worker's asyncio loop thread
        return "asked async"

    for task, expect in ((stopper, "asked"), (astopper, "asked async")):
        w = h.app.worker([h.queue()])
        holder["w"] = w
        t = threading.Thread(target=w.run)
        t.start()
        ref = task.enqueue()
        t.join(WAIT)
        assert not t.is_alive()
        assert ref.wait(WAIT) == expect


def test_env_url_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNQ_URL", raising=False)
    assert runq.App().url == "memory://"
    monkeypatch.setenv("RUNQ_URL", "memory://from-env")
    app = runq.App()
    assert app.url == "memory://from-env" and app.backend == "memory"
    app.close()
    assert runq.App("memory://explicit").url == "memory://explicit"


def test_error_classes() -> None:
    for code, cls in [
        (runq._runq.EINVAL, runq.InvalidArgument), (runq._runq.ETOOBIG, runq.PayloadTooLarge),
        (runq._runq.EDUPLICATE, runq.DuplicateJob), (runq._runq.EFULL, runq.QueueFull),
        (runq._runq.ETIMEOUT, runq.Timeout), (runq._runq.ESTALE, runq.LeaseLost),
        (runq._runq.EIO, runq.BackendError), (runq._runq.EDURABILITY, runq.DurabilityUnknown),
        (runq._runq.ENOTFOUND, runq.NotFound), (runq._runq.ECLOSED, runq.Closed),
        (runq._runq.EURL, runq.InvalidURL), (runq._runq.EPROTO, runq.ProtocolError),
    ]:
        e = runq._runq.make_error(code, "detail", None)
        assert type(e) is cls and isinstance(e, runq.Error) and e.code == code
        assert "detail" in str(e)
    assert issubclass(runq.Timeout, TimeoutError)
    assert issubclass(runq.InvalidArgument, ValueError)
    assert issubclass(runq.JobFailed, runq.Error)


def test_queue_full(h: Harness) -> None:
    h.app.configure_queue(h.queue("small"), max_len=2)
    t = h.app.remote("fill", queue=h.queue("small"))
    t.enqueue()
    t.enqueue()
    with pytest.raises(runq.QueueFull):
        t.enqueue()


def test_closed_client(h: Harness) -> None:
    raw = runq._runq.Client(h.url)
    raw.close()
    with pytest.raises(runq.Closed):
        raw.enqueue("x", runq._runq.packb([[], {}]))
    raw.close()  # idempotent


def test_once_key_matches_the_protocol(h: Harness) -> None:
    import time

    from runq.codec import encode_args

    t = h.app.remote(h.name("once"), queue=h.queue())
    payload = encode_args(t.name, (1, "x"), {})
    digest = 14695981039346656037
    for byte in payload:
        digest = ((digest ^ byte) * 1099511628211) % 2**64
    before = int(time.time() * 1000) // 60000
    key = t.enqueue_once_in(60, 1, "x").info().unique_key
    after = int(time.time() * 1000) // 60000
    assert key in {f"once:{t.name}:{digest:016x}:{b}" for b in (before, after)}


def test_periodic_schedule(h: Harness) -> None:
    ticks = threading.Event()
    seen: list[list[object]] = []

    @h.task("tick")
    def tick(n: int, tag: str = "") -> None:
        seen.append([n, tag])
        ticks.set()

    h.app.schedule(tick, every=0.05, args=(1,), kwargs={"tag": "t"})
    with pytest.raises(ValueError):
        h.app.schedule(tick)
    with pytest.raises(ValueError):
        h.app.schedule(tick, every=1, cron="* * * * *")
    h.worker()
    assert ticks.wait(WAIT)
    assert seen[0] == [1, "t"]


def test_bad_cron_is_invalid_argument(h: Harness) -> None:
    h.app.schedule("whatever", cron="not a cron")
    with pytest.raises(runq.InvalidArgument):
        h.worker()
    h.app._schedules.clear()


def test_task_timeout_cancels_and_fails(h: Harness) -> None:
    saw_cancel = threading.Event()

    @h.task("slowpoke", retries=0, timeout=0.05)
    def slowpoke(job: runq.Job) -> str:
        while not job.cancelled:  # turns True at the task's timeout
            threading.Event().wait(0.01)
        saw_cancel.set()
        # The engine fails a handler that ran *longer* than its timeout, and
        # cancelled turns on *at* it: step past the boundary millisecond.
        threading.Event().wait(0.01)
        return "too late"

    h.worker()
    ref = slowpoke.enqueue()
    with pytest.raises(runq.JobFailed) as ei:
        ref.wait(WAIT)
    assert saw_cancel.is_set()
    assert "timed out" in (ei.value.error or "")
    assert ref.info().timeout == 50


def test_weighted_and_multiple_queues(h: Harness) -> None:
    @h.task("wq")
    def wq(n: int) -> int:
        return n

    a, b = h.queue("a"), h.queue("b")
    refs = [wq.options(queue=q).enqueue(i) for i, q in enumerate([a, b, a, b])]
    with pytest.raises(ValueError):
        h.app.worker([a, b], weights=[1]).start()
    h.worker([a, b], weights=[3, 1])
    assert [r.wait(WAIT) for r in refs] == [0, 1, 2, 3]
