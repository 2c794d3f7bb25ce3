"""Exceptions: the engine's (from the C module) plus the Python-only ones."""
from __future__ import annotations

from ._runq import (
    BackendError,
    Closed,
    DuplicateJob,
    DurabilityUnknown,
    Error,
    InvalidArgument,
    InvalidState,
    InvalidURL,
    LeaseLost,
    NotFound,
    OutOfMemory,
    PayloadTooLarge,
    ProtocolError,
    QueueFull,
    Timeout,
    UnknownTask,
)

__all__ = [
    "BackendError", "Closed", "DuplicateJob", "DurabilityUnknown", "Error",
    "InvalidArgument", "InvalidState", "InvalidURL", "JobFailed", "LeaseLost",
    "NotFound", "OutOfMemory", "PayloadTooLarge", "ProtocolError", "QueueFull",
    "Retry", "Timeout", "UnknownTask",
]


class Retry(Exception):
    """Raise from a handler to fail this attempt and be retried.

    ``delay`` (seconds) replaces the task's backoff for this retry; None keeps
    the backoff. The engine still counts the attempt: when none are left the
    job goes to the dead letters like any failure.
    """

    def __init__(self, delay: float | None = None, message: str = "retry requested") -> None:
        super().__init__(message)
        if delay is not None and delay < 0:
            raise ValueError("Retry delay must be >= 0")
        self.delay = delay


class JobFailed(Error):
    """The job went to the dead letters; ``error`` is its last failure."""

    def __init__(self, job_id: str, error: str | None) -> None:
        super().__init__(f"job {job_id} failed: {error or 'no error message'}")
        self.job_id = job_id
        self.error = error
        self.code = 0
