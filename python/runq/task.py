"""Tasks: a name bound to a Python handler, and the ways to enqueue it."""
from __future__ import annotations

import contextvars
import datetime as _dt
import inspect
import logging
import threading
import traceback
import typing
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from . import _runq
from .codec import decode_args, encode_args, encode_value
from .errors import DuplicateJob, Retry
from .job import Job, JobRef

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("runq")

Seconds = float | int | _dt.timedelta
_handler_thread = threading.local()


def in_handler() -> bool:
    """True on a thread that is running a runq handler right now."""
    return bool(getattr(_handler_thread, "active", False))


def _ms(value: Seconds | None, what: str) -> int | None:
    if value is None:
        return None
    secs = value.total_seconds() if isinstance(value, _dt.timedelta) else float(value)
    if secs < 0:
        raise ValueError(f"{what} must be >= 0 seconds")
    return int(round(secs * 1000))


def _eta_ms(eta: float | int | _dt.datetime) -> int:
    if isinstance(eta, _dt.datetime):
        if eta.tzinfo is None:
            raise ValueError("eta must be an aware datetime (or Unix seconds)")
        return int(eta.timestamp() * 1000)
    return int(float(eta) * 1000)


def options_to_engine(
    *,
    queue: str | None = None,
    delay: Seconds | None = None,
    eta: float | int | _dt.datetime | None = None,
    priority: int | None = None,
    unique_key: str | None = None,
    unique_ttl: Seconds | None = None,
    ttl: Seconds | None = None,
    retries: int | None = None,
    timeout: Seconds | None = None,
    replicate: int | None = None,
    replicate_timeout: Seconds | None = None,
    rate_key: str | None = None,
    rate_interval: Seconds | None = None,
    unique_until_done: bool | None = None,
    meta: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Python-friendly enqueue options (seconds, datetimes) -> engine ones (ms)."""
    o: dict[str, Any] = {}
    if meta is not None:  # metadata ("headers"), str -> str, carried to the worker
        o["meta"] = dict(meta)
    # Per-key interval limit and unique-until-done (the engine checks that
    # they come together: rate_key with rate_interval, unique_until_done
    # with unique_key).
    if rate_key is not None:
        o["rate_key"] = rate_key
    if (v := _ms(rate_interval, "rate_interval")) is not None:
        o["rate_interval_ms"] = v
    if unique_until_done is not None:
        o["unique_until_done"] = bool(unique_until_done)
    if queue is not None:
        o["queue"] = queue
    if (v := _ms(delay, "delay")) is not None:
        o["delay_ms"] = v
    if eta is not None:
        o["eta_ms"] = _eta_ms(eta)
    if priority is not None:
        o["priority"] = int(priority)
    if unique_key is not None:
        o["unique_key"] = unique_key
    if (v := _ms(unique_ttl, "unique_ttl")) is not None:
        o["unique_ttl_ms"] = v
    if (v := _ms(ttl, "ttl")) is not None:
        o["ttl_ms"] = v
    if retries is not None:
        o["max_retries"] = int(retries)
    if (v := _ms(timeout, "timeout")) is not None:
        o["timeout_ms"] = v
    if replicate is not None:
        o["replicate"] = int(replicate)
    if (v := _ms(replicate_timeout, "replicate_timeout")) is not None:
        o["replicate_timeout_ms"] = v
    return o


class Message:
    """One prepared enqueue (task, encoded args, options) for App.enqueue_many."""

    __slots__ = ("task", "payload", "options")

    def __init__(self, task: str, payload: bytes, options: dict[str, Any]) -> None:
        self.task = task
        self.payload = payload
        self.options = options


def _wants_job(fn: Callable[..., Any]) -> bool:
    """A handler whose single parameter is annotated runq.Job gets the Job."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) != 1 or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD
    ):
        return False
    try:
        hints = typing.get_type_hints(fn)
        ann: Any = hints.get(params[0].name, params[0].annotation)
    except Exception:
        ann = params[0].annotation
    if ann is Job:
        return True
    return isinstance(ann, str) and ann.split(".")[-1] == "Job"


def _call_style(fn: Callable[..., Any]) -> str:
    """How to call the handler: 'none' (no parameters), 'job' or 'args'."""
    if _wants_job(fn):
        return "job"
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return "args"
    return "none" if len(params) == 0 else "args"


class _Bound:
    """A task with enqueue options applied: task.options(...)."""

    def __init__(self, task: Task, options: dict[str, Any]) -> None:
        self._task = task
        self._options = options

    def options(self, **options: Any) -> _Bound:
        return _Bound(self._task, {**self._options, **options_to_engine(**options)})

    def prepare(self, *args: Any, **kwargs: Any) -> Message:
        return Message(self._task.name, encode_args(self._task.name, args, kwargs),
                       dict(self._options))

    def enqueue(self, *args: Any, **kwargs: Any) -> JobRef:
        return self._task._send(self.prepare(*args, **kwargs))

    def enqueue_once_in(self, period: Seconds, *args: Any, **kwargs: Any) -> JobRef:
        """Enqueue at most once per `period` for these args.

        The engine derives the unique key from task, args and the period's
        bucket (docs/protocol.md), the same way for every language, and
        holds it for the period. DuplicateJob when it is held.
        """
        period_ms = _ms(period, "period")
        if not period_ms:
            raise ValueError("period must be > 0")
        msg = self.prepare(*args, **kwargs)
        msg.options["once_in_ms"] = period_ms
        return self._task._send(msg)


class Task:
    """A registered task. Call it to run the handler locally; enqueue it to
    have a worker run it."""

    def __init__(
        self,
        app: App,
        fn: Callable[..., Any] | None,
        name: str,
        *,
        queue: str = "default",
        retries: int = 3,
        backoff: tuple[float, float] = (1.0, 3600.0),
        timeout: Seconds | None = None,
        unique_for: Seconds | None = None,
        fallback: Callable[..., Any] | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if len(backoff) != 2 or not 0 <= backoff[0] <= backoff[1]:
            raise ValueError("backoff must be (min_seconds, max_seconds) with min <= max")
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.unique_for = unique_for
        self.fallback = fallback
        self.is_async = fn is not None and inspect.iscoroutinefunction(fn)
        self._style = _call_style(fn) if fn is not None else "args"
        self._fallback_style = _call_style(fallback) if fallback is not None else "job"
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fn is None:
            raise TypeError(f"task {self.name!r} has no handler in this process")
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<runq.Task {self.name} queue={self.queue}>"

    # ---- enqueue ------------------------------------------------------
    def options(self, **options: Any) -> _Bound:
        """Per-enqueue options: delay, eta, priority, unique_key, unique_ttl,
        unique_until_done, queue, ttl, retries, timeout, replicate,
        replicate_timeout, rate_key, rate_interval (jobs with the same
        rate_key start at least rate_interval seconds apart), meta (a dict of
        str to str carried to the worker as job.meta)."""
        return _Bound(self, {"queue": self.queue, **options_to_engine(**options)})

    def prepare(self, *args: Any, **kwargs: Any) -> Message:
        return self.options().prepare(*args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> JobRef:
        return self.options().enqueue(*args, **kwargs)

    def enqueue_once_in(self, period: Seconds, *args: Any, **kwargs: Any) -> JobRef:
        return self.options().enqueue_once_in(period, *args, **kwargs)

    def _send(self, msg: Message) -> JobRef:
        try:
            job_id = self.app.client.enqueue(msg.task, msg.payload, **msg.options)
        except DuplicateJob as e:
            e.existing = JobRef(self.app, e.job_id, msg.task) if e.job_id else None  # type: ignore[attr-defined]
            raise
        return JobRef(self.app, job_id, msg.task)

    # ---- engine registration and dispatch -------------------------------
    def _register(self, client: _runq.Client) -> None:
        bmin, bmax = self.backoff
        opts: dict[str, Any] = dict(
            queue=self.queue,
            max_retries=self.retries,
            backoff_min_ms=int(bmin * 1000),
            backoff_max_ms=int(bmax * 1000),
            timeout_ms=_ms(self.timeout, "timeout") or 0,
        )
        if self.unique_for is not None:
            opts["unique_ttl_ms"] = _ms(self.unique_for, "unique_for")
        client.register(
            self.name,
            self._dispatch if self.fn is not None else None,
            fallback=self._dispatch_fallback if self.fallback is not None else None,
            **opts,
        )

    def _invoke(self, fn: Callable[..., Any], style: str, raw: _runq.Job) -> Any:
        # A Job reads every field of the engine's job; only a handler that
        # takes one gets it (the others were paying for it on every job).
        if style == "none":
            result = fn()
        elif style == "job":
            result = fn(Job(raw))
        else:
            args, kwargs = decode_args(raw.args)
            result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = self.app._run_coroutine(result, raw)
        return result

    def _dispatch(self, raw: _runq.Job) -> bool:
        """Called by the engine on a worker thread (GIL held). Never raises:
        the outcome goes to the engine as success/failure + error text."""
        assert self.fn is not None
        _handler_thread.active = True
        try:
            result = self.app._in_job_context(raw.id, self._invoke, self.fn, self._style, raw)
            raw.set_result(encode_value(result))
            return True
        except Retry as r:
            if r.delay is not None:
                raw.retry_in(int(r.delay * 1000))
            raw.set_error(f"Retry: {r}")
            return False
        except BaseException:
            raw.set_error(traceback.format_exc())
            return False
        finally:
            _handler_thread.active = False

    def _dispatch_fallback(self, raw: _runq.Job) -> bool:
        assert self.fallback is not None
        try:
            # A new context, as for handlers (App._in_job_context).
            contextvars.Context().run(self._invoke, self.fallback, self._fallback_style, raw)
        except BaseException:
            log.exception("runq: fallback of task %s failed for job %s", self.name, raw.id)
        return True


def make_messages(items: Sequence[Message | tuple[Task, Sequence[Any], Mapping[str, Any]]]) -> list[Message]:
    out = []
    for it in items:
        if isinstance(it, Message):
            out.append(it)
        else:
            task, args, kwargs = it
            out.append(task.prepare(*args, **kwargs))
    return out


__all__ = ["Task", "Message", "options_to_engine", "in_handler", "_runq"]
