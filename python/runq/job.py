"""Jobs as Python sees them: Job (a view of one job) and JobRef (a handle
returned by enqueue)."""
from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Any

from . import _runq
from .codec import decode_args, decode_value
from .errors import JobFailed, Timeout

if TYPE_CHECKING:
    from .app import App


class JobState(str, enum.Enum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    DEAD = "dead"

    @classmethod
    def _from_code(cls, code: int) -> JobState:
        return _STATES[code]


_STATES = {
    _runq.STATE_SCHEDULED: JobState.SCHEDULED,
    _runq.STATE_PENDING: JobState.PENDING,
    _runq.STATE_ACTIVE: JobState.ACTIVE,
    _runq.STATE_DONE: JobState.DONE,
    _runq.STATE_DEAD: JobState.DEAD,
}


class Job:
    """One job: the one a handler is running, or a snapshot from JobRef.info().

    Times are Unix milliseconds of the backend's clock. A handler's Job is
    usable only during the handler call (the engine owns it).
    """

    __slots__ = (
        "_raw", "id", "task", "queue", "args", "kwargs", "attempt", "max_retries",
        "priority", "created_at", "eta", "timeout", "deadline", "unique_key",
        "rate_key", "rate_interval", "unique_until_done", "leased_at", "meta",
    )

    def __init__(self, raw: _runq.Job) -> None:
        self._raw = raw
        self.id: str = raw.id
        self.task: str = raw.task
        self.queue: str = raw.queue
        args, kwargs = decode_args(raw.args)
        self.args: list[Any] = args
        self.kwargs: dict[str, Any] = kwargs
        self.attempt: int = raw.attempt
        self.max_retries: int = raw.max_retries
        self.priority: int = raw.priority
        self.created_at: int = raw.created_at
        self.eta: int = raw.eta
        self.timeout: int = raw.timeout
        self.deadline: int = raw.deadline
        self.unique_key: str | None = raw.unique_key
        # Per-key interval limit (interval in ms, like timeout) and
        # unique-until-done.
        self.rate_key: str | None = raw.rate_key
        self.rate_interval: int = raw.rate_interval
        self.unique_until_done: bool = raw.unique_until_done
        # When this delivery was leased (its start), backend clock, Unix ms;
        # 0 in snapshots.
        self.leased_at: int = raw.leased_at
        # Metadata ("headers", str -> str) carried from the producer; a copy.
        self.meta: dict[str, str] = raw.meta

    def set_meta(self, key: str, value: str | None) -> None:
        """Add (or with None remove) a metadata pair of a job being enqueued:
        only inside an ``App.on_enqueue`` hook (else InvalidState)."""
        self._raw.set_meta(key, value)
        if value is None:
            self.meta.pop(key, None)
        else:
            self.meta[key] = value

    @property
    def cancelled(self) -> bool:
        """True once the worker is stopping past its grace period or the
        job's timeout has passed: a long handler should return soon."""
        return self._raw.cancelled

    @property
    def state(self) -> JobState:
        return JobState._from_code(self._raw.state)

    @property
    def error(self) -> str | None:
        """The last failure message (a Python traceback for Python handlers)."""
        return self._raw.error

    @property
    def result(self) -> Any:
        return decode_value(self._raw.result)

    def __repr__(self) -> str:
        return f"<runq.Job {self.id} {self.task} attempt={self.attempt}>"


class JobRef:
    """A handle on an enqueued job."""

    __slots__ = ("_app", "id", "task", "duplicate")

    def __init__(self, app: App, id: str, task: str | None = None) -> None:
        self._app = app
        self.id = id
        self.task = task
        #: Always False for refs returned by enqueue (duplicates raise
        #: DuplicateJob); kept so code can check it uniformly.
        self.duplicate = False

    def info(self) -> Job:
        """A snapshot of the job. NotFound once it has expired."""
        return Job(self._app.client.get(self.id))

    def status(self) -> JobState:
        return self.info().state

    def wait(self, timeout: float | None = None) -> Any:
        """Wait until the job is done and return its result.

        Raises JobFailed when it went to the dead letters, runq.Timeout when
        `timeout` seconds pass first. The wait is done in slices so that
        signals (Ctrl-C) are handled while waiting.
        """
        client = self._app.client
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            slice_ms = 1000
            if deadline is not None:
                left = deadline - time.monotonic()
                slice_ms = max(0, min(slice_ms, int(left * 1000)))
            try:
                raw = client.wait(self.id, slice_ms)
                break
            except Timeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
        return self._outcome(Job(raw))

    @staticmethod
    def _outcome(job: Job) -> Any:
        if job.state is JobState.DEAD:
            raise JobFailed(job.id, job.error)
        return job.result

    @property
    def result(self) -> Any:
        """The result if the job is done, else None (see status())."""
        job = self.info()
        return job.result if job.state is JobState.DONE else None

    def __repr__(self) -> str:
        return f"<runq.JobRef {self.id} {self.task or ''}>".replace(" >", ">")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)
