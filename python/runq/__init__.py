"""runq: a distributed task queue with a C engine.

    import runq
    app = runq.App("redis://localhost:6379/0")

    @app.task(retries=5)
    def add(x: int, y: int) -> int:
        return x + y

    add.enqueue(1, 2).wait(timeout=10)   # -> 3, once a worker runs

See docs/python.md.
"""
from . import _runq
from .app import App, ProcessOutcome
from .errors import (
    BackendError,
    Closed,
    DuplicateJob,
    DurabilityUnknown,
    Error,
    InvalidArgument,
    InvalidState,
    InvalidURL,
    JobFailed,
    LeaseLost,
    NotFound,
    OutOfMemory,
    PayloadTooLarge,
    ProtocolError,
    QueueFull,
    Retry,
    Timeout,
    UnknownTask,
)
from .job import Job, JobRef, JobState
from .task import Message, Task
from .worker import Worker

__version__: str = _runq.VERSION

__all__ = [
    "App", "Task", "Job", "JobRef", "JobState", "Message", "Worker", "Retry", "ProcessOutcome",
    "Error", "BackendError", "Closed", "DuplicateJob", "DurabilityUnknown",
    "InvalidArgument", "InvalidState", "InvalidURL", "JobFailed", "LeaseLost",
    "NotFound", "OutOfMemory", "PayloadTooLarge", "ProtocolError", "QueueFull",
    "Timeout", "UnknownTask", "__version__",
]
