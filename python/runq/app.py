"""App: one connection to a backend, and the tasks registered on it."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import threading
from typing import Any, Awaitable, Callable, NamedTuple, Sequence, TypeVar, overload

from . import _runq
from .codec import encode_args
from .errors import DuplicateJob
from .job import Job, JobRef
from .task import Message, Seconds, Task, _ms, make_messages

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("runq")


class ProcessOutcome(NamedTuple):
    """How one delivery of a job ended (``App.after_process``)."""

    outcome: str       # "acked", "retried", "dead", "released", "lost"
    error: str | None  # the failure message for retried and dead
    duration_us: int   # from before_process to the end of the settle

    @property
    def duration(self) -> float:
        """The duration in seconds."""
        return self.duration_us / 1e6

DEFAULT_URL = "memory://"


class _LoopThread:
    """An asyncio loop on its own thread, for async def handlers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="runq-asyncio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def run(self, aw: Awaitable[Any], raw: _runq.Job) -> Any:
        async def wrap() -> Any:
            return await aw

        fut = asyncio.run_coroutine_threadsafe(wrap(), self.loop)
        # Wait in slices so a cancelled job (worker stopping past its grace,
        # or job timeout) cancels the coroutine instead of being waited on.
        while True:
            done, _ = concurrent.futures.wait([fut], timeout=0.2)
            if done:
                return fut.result()
            if raw.cancelled:
                fut.cancel()

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


class App:
    """Tasks and a client for one backend.

    ``url``: ``memory://``, ``memory://NAME``, ``redis://host:port/db``,
    ``unix:///path.sock``; default: $RUNQ_URL, else ``memory://``. The
    connection opens on first use.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        max_payload: int | None = None,
        result_ttl: Seconds | None = None,
        connect_timeout: Seconds | None = None,
        command_timeout: Seconds | None = None,
        compress_threshold: int | None = None,
    ) -> None:
        self.url = url or os.environ.get("RUNQ_URL") or DEFAULT_URL
        self.tasks: dict[str, Task] = {}
        self._client_opts: dict[str, int] = {}
        if max_payload is not None:
            self._client_opts["max_payload"] = int(max_payload)
        if compress_threshold is not None:  # bytes; 0: never compress
            self._client_opts["compress_threshold"] = int(compress_threshold)
        self._hook_fns: dict[str, list[Callable[..., Any]]] = {
            "before_enqueue": [], "before_process": [], "after_process": []}
        self._hooks_client: _runq.Client | None = None
        self._hooks_added: set[str] = set()  # engine hooks on _hooks_client
        self._job_contexts: dict[str, contextvars.Context] = {}
        for key, val in (("result_ttl_ms", result_ttl), ("connect_timeout_ms", connect_timeout),
                         ("command_timeout_ms", command_timeout)):
            ms = _ms(val, key)
            if key == "result_ttl_ms" and ms == 0:
                ms = -1  # RUNQ_RESULT_TTL_NONE: done jobs are not kept
            if ms is not None:
                self._client_opts[key] = ms
        self._client: _runq.Client | None = None
        self._lock = threading.Lock()
        self._loops: list[_LoopThread] = []
        self._running_workers: set[Worker] = set()
        self._schedules: list[dict[str, Any]] = []

    # ---- connection ---------------------------------------------------
    @property
    def client(self) -> _runq.Client:
        """The engine client, opened on first use (raises InvalidURL, BackendError)."""
        c = self._client
        if c is not None:
            return c
        with self._lock:
            if self._client is None:
                client = _runq.Client(self.url, **self._client_opts)
                for task in self.tasks.values():
                    task._register(client)
                self._install_hooks(client)
                self._client = client
            return self._client

    # ---- hooks ----------------------------------------------------------
    # The App registers one set of engine hooks (docs/python.md, "Hooks")
    # that runs the callables added here, in the order added, with the GIL
    # held, on the thread that enqueues (on_enqueue) or runs the handler
    # (before/after_process). The engine gives each such call a fresh Python
    # thread state, so contextvars would not carry from a before_process
    # hook to the handler: one contextvars.Context per delivery is kept by
    # job id and the hooks and the handler all run in it (that is what lets
    # runq.otel make its span current for the handler).
    def _add_hook(self, kind: str, fn: Callable[..., Any]) -> None:
        with self._lock:
            self._hook_fns[kind].append(fn)
            if self._client is not None:
                self._install_hooks(self._client)

    def _install_hooks(self, client: _runq.Client) -> None:
        # Each engine hook once per engine client (the App opens a new one
        # after close()), and only once a callable of its kind is added: an
        # engine after_process hook turns off the worker's batched acks.
        # before_process comes with after_process, which drops the context.
        if self._hooks_client is not client:
            self._hooks_client, self._hooks_added = client, set()
        want = {"before_enqueue"} if self._hook_fns["before_enqueue"] else set()
        if self._hook_fns["before_process"] or self._hook_fns["after_process"]:
            want |= {"before_process", "after_process"}
        if new := want - self._hooks_added:
            client.add_hooks(
                before_enqueue=self._run_enqueue_hooks if "before_enqueue" in new else None,
                before_process=self._run_before_hooks if "before_process" in new else None,
                after_process=self._run_after_hooks if "after_process" in new else None)
            self._hooks_added |= new

    def _run_enqueue_hooks(self, raw: _runq.Job) -> None:
        fns = list(self._hook_fns["before_enqueue"])
        if fns:
            job = Job(raw)
            for fn in fns:
                fn(job)

    def _run_before_hooks(self, raw: _runq.Job) -> None:
        ctx = contextvars.copy_context()
        self._job_contexts[raw.id] = ctx
        fns = list(self._hook_fns["before_process"])
        if fns:
            job = Job(raw)
            for fn in fns:
                try:
                    ctx.run(fn, job)
                except Exception:
                    log.exception("runq: before_process hook %r failed for job %s", fn, raw.id)

    def _run_after_hooks(self, raw: _runq.Job, outcome: str, error: str | None,
                         duration_us: int) -> None:
        ctx = self._job_contexts.pop(raw.id, None) or contextvars.copy_context()
        fns = list(self._hook_fns["after_process"])
        if fns:
            job, info = Job(raw), ProcessOutcome(outcome, error, duration_us)
            for fn in fns:
                try:
                    ctx.run(fn, job, info)
                except Exception:
                    log.exception("runq: after_process hook %r failed for job %s", fn, raw.id)

    def _in_job_context(self, job_id: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a handler in the context its before_process hooks ran in, or
        in a new empty one: an engine thread keeps its Python thread state
        from job to job, so a context variable a handler sets must not
        reach the next job."""
        ctx = self._job_contexts.get(job_id) or contextvars.Context()
        return ctx.run(fn, *args)

    def on_enqueue(self, fn: F) -> F:
        """``fn(job)`` before each job is stored: it may add metadata with
        ``job.set_meta(key, value)`` (trace context). An exception refuses
        the job: ``enqueue`` raises it (``enqueue_many`` fails that item)."""
        self._add_hook("before_enqueue", fn)
        return fn

    def before_process(self, fn: F) -> F:
        """``fn(job)`` right before a handler runs. An exception is logged
        (logger ``runq``) and does not change the job's outcome."""
        self._add_hook("before_process", fn)
        return fn

    def after_process(self, fn: F) -> F:
        """``fn(job, outcome)`` once the job is settled; ``outcome`` is a
        ``ProcessOutcome`` (outcome "acked", "retried", "dead", "released" or
        "lost", the error text, the duration). An exception is logged."""
        self._add_hook("after_process", fn)
        return fn

    @property
    def backend(self) -> str:
        return self.client.backend

    def close(self) -> None:
        """Close the connection (stop the app's workers first)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- tasks ----------------------------------------------------------
    @overload
    def task(self, fn: F) -> Task: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        retries: int = 3,
        backoff: tuple[float, float] = (1.0, 3600.0),
        timeout: Seconds | None = None,
        unique_for: Seconds | None = None,
        fallback: Callable[..., Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Task]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str = "default",
        retries: int = 3,
        backoff: tuple[float, float] = (1.0, 3600.0),
        timeout: Seconds | None = None,
        unique_for: Seconds | None = None,
        fallback: Callable[..., Any] | None = None,
    ) -> Task | Callable[[Callable[..., Any]], Task]:
        """Register a handler: ``@app.task`` or ``@app.task(name=..., ...)``.

        The handler is called with the job's args and kwargs, with nothing
        if it takes no parameters, or with the runq.Job if its single
        parameter is annotated ``runq.Job``. ``async def`` handlers run on
        the worker's asyncio loop.
        """

        def decorate(f: Callable[..., Any]) -> Task:
            task_name = name or f"{f.__module__}.{f.__qualname__}"
            t = Task(self, f, task_name, queue=queue, retries=retries, backoff=backoff,
                     timeout=timeout, unique_for=unique_for, fallback=fallback)
            self._add(t)
            return t

        return decorate(fn) if fn is not None else decorate

    def remote(self, name: str, *, queue: str = "default") -> Task:
        """A task handled elsewhere (another process or language): enqueue only."""
        t = Task(self, None, name, queue=queue)
        with self._lock:
            self.tasks.setdefault(name, t)
        return t

    def _add(self, t: Task) -> None:
        with self._lock:
            self.tasks[t.name] = t
            if self._client is not None:
                t._register(self._client)

    # ---- enqueue ----------------------------------------------------------
    def enqueue_many(
        self,
        items: Sequence[Message | tuple[Task, Sequence[Any], dict[str, Any]]],
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Enqueue several jobs in one round trip.

        Items are ``task.prepare(*args, **kw)`` /
        ``task.options(...).prepare(...)`` messages or (task, args, kwargs)
        tuples. Returns one JobRef per item. A failed item raises its error
        after every item was tried (``.results`` on the exception holds the
        per-item outcomes); with return_exceptions=True the exception is put
        in the list instead.
        """
        msgs = make_messages(items)
        raw = self.client.enqueue_many([(m.task, m.payload, m.options) for m in msgs])
        results: list[Any] = []
        first: BaseException | None = None
        for m, (code, job_id, detail) in zip(msgs, raw):
            if code == 0 and job_id:
                results.append(JobRef(self, job_id, m.task))
                continue
            exc = _runq.make_error(code, detail, job_id)
            if isinstance(exc, DuplicateJob) and job_id:
                exc.existing = JobRef(self, job_id, m.task)  # type: ignore[attr-defined]
            results.append(exc)
            first = first or exc
        if first is not None and not return_exceptions:
            first.results = results  # type: ignore[attr-defined]
            raise first
        return results

    def schedule(
        self,
        task: Task | str,
        *,
        every: Seconds | None = None,
        cron: str | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        """Enqueue `task` periodically: every `every` seconds (fire times
        aligned to multiples of it) or on a 5-field UTC `cron` expression.

        Workers of this app started afterwards carry the schedule; however
        many run, each fire time enqueues one job.
        """
        if (every is None) == (cron is None):
            raise ValueError("give exactly one of every= and cron=")
        name = task.name if isinstance(task, Task) else task
        every_ms = _ms(every, "every") if every is not None else 0
        if every is not None and not every_ms:
            raise ValueError("every must be > 0")
        payload = encode_args(name, args, kwargs or {})
        if queue is None and isinstance(task, Task):
            queue = task.queue
        with self._lock:
            self._schedules.append(dict(task=name, payload=payload, every_ms=every_ms,
                                        cron=cron, queue=queue))

    def job(self, job_id: str) -> JobRef:
        return JobRef(self, job_id)

    # ---- queues -------------------------------------------------------------
    def configure_queue(
        self,
        queue: str,
        *,
        max_len: int = 0,
        rate_limit: tuple[int, Seconds] | None = None,
        rate_burst: int = 0,
        concurrency_limit: int = 0,
        pause_after_failures: int = 0,
        pause_min: Seconds | None = None,
        pause_max: Seconds | None = None,
    ) -> None:
        """Set every option of a queue, for every worker of every process.

        rate_limit=(n, period): at most n jobs leased per period seconds
        (rate_burst at once after an idle spell; 0: n // 20, at least 1, so
        late wake-ups do not cost slots); concurrency_limit: at most
        that many leased at once; pause_after_failures=N: N failed attempts in
        a row pause the queue for pause_min seconds, doubling up to pause_max,
        then one probe job runs (pause_min and pause_max left out: the
        engine's defaults, 1 s and 300 s). Options left out are turned off."""
        opts: dict[str, int] = {}
        if rate_limit is not None:
            n, period = rate_limit
            opts.update(rate_limit=int(n), rate_period_ms=_ms(period, "rate_limit period") or 0)
        for key, val in (("pause_min_ms", pause_min), ("pause_max_ms", pause_max)):
            if (ms := _ms(val, key[:-3])) is not None:
                opts[key] = ms
        self.client.queue_configure(
            queue, max_len=max_len, rate_burst=rate_burst, concurrency_limit=concurrency_limit,
            pause_after_failures=pause_after_failures, **opts)

    def pause(self, queue: str = "default") -> None:
        """No worker of any process leases the queue's jobs until resume()."""
        self.client.queue_pause(queue)

    def resume(self, queue: str = "default") -> None:
        """Undo pause() (and end an automatic pause); blocked workers wake at once."""
        self.client.queue_resume(queue)

    def queue_stats(self, queue: str = "default") -> dict[str, int]:
        return self.client.queue_stats(queue)

    def dead_letters(self, queue: str = "default", limit: int = 100) -> list[JobRef]:
        return [JobRef(self, i) for i in self.client.dead_list(queue, limit)]

    def retry_dead(self, job_id: str) -> None:
        self.client.dead_retry(job_id)

    # ---- workers ---------------------------------------------------------------
    def worker(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | tuple[int, int] = 4,
        weights: Sequence[int] | None = None,
        lease: Seconds = 30.0,
        grace: Seconds = 30.0,
        idle_timeout: Seconds = 10.0,
    ) -> Worker:
        """A worker for this app's tasks; ``concurrency=(min, max)`` autoscales
        its handler threads (see Worker)."""
        return Worker(self, queues, concurrency=concurrency, weights=weights,
                      lease=lease, grace=grace, idle_timeout=idle_timeout)

    # Async handlers run on the loop of the most recently started worker
    # (a worker owns its loop); one is made on demand when none runs.
    def _push_loop(self) -> _LoopThread:
        lt = _LoopThread()
        with self._lock:
            self._loops.append(lt)
        return lt

    def _pop_loop(self, lt: _LoopThread) -> None:
        with self._lock:
            if lt in self._loops:
                self._loops.remove(lt)
        lt.stop()

    def _run_coroutine(self, aw: Awaitable[Any], raw: _runq.Job) -> Any:
        with self._lock:
            lt = self._loops[-1] if self._loops else None
        if lt is None:
            lt = self._push_loop()
        return lt.run(aw, raw)


from .worker import Worker  # noqa: E402  (Worker needs App defined)
