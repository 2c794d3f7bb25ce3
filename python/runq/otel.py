"""OpenTelemetry tracing for runq, built on the App hooks.

    import runq, runq.otel
    app = runq.App("redis://...")
    runq.otel.instrument(app)

Enqueue starts a PRODUCER span and injects its context into the job's
metadata (with the globally configured propagator: W3C ``traceparent`` by
default), so the context travels with the job to any worker, in any process
and any language that reads the metadata. Processing runs inside a CONSUMER
span whose parent is the extracted context, so both share one trace; spans
a handler starts are children of the CONSUMER span.

Needs ``opentelemetry-api`` (importing this module without it raises
ImportError with the package to install); spans go wherever the tracer
provider sends them (``opentelemetry-sdk`` and an exporter).
"""
from __future__ import annotations

import contextvars
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as e:  # pragma: no cover - exercised without the package only
    raise ImportError(
        "runq.otel needs the OpenTelemetry API: pip install opentelemetry-api "
        "(and opentelemetry-sdk to export spans)"
    ) from e

from . import _runq
from .app import App, ProcessOutcome
from .job import Job

#: messaging.system of every span (OpenTelemetry messaging conventions).
SYSTEM = "runq"


def _attributes(job: Job) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "runq.task": job.task,
        "runq.attempt": job.attempt,
    }


def instrument(app: App, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace every job the app enqueues and every job its workers process.

    ``tracer_provider``: where spans go; default: the global one. Call it
    once per App, before enqueueing or starting workers.
    """
    tracer = trace.get_tracer("runq", _runq.VERSION, tracer_provider=tracer_provider)
    # The span open between before_process and after_process: the App runs
    # both hooks of one delivery (and its handler) in one contextvars.Context
    # of its own, so a context variable carries it from one to the other.
    open_span: contextvars.ContextVar[tuple[trace.Span, object] | None] = \
        contextvars.ContextVar("runq.otel.span", default=None)

    @app.on_enqueue
    def _publish(job: Job) -> None:
        attrs = _attributes(job)
        attrs["messaging.operation"] = "publish"
        with tracer.start_as_current_span(f"{job.task} publish", kind=SpanKind.PRODUCER,
                                          attributes=attrs):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            for key, value in carrier.items():
                job.set_meta(key, value)

    @app.before_process
    def _start(job: Job) -> None:
        parent = propagate.extract(job.meta)
        attrs = _attributes(job)
        attrs["messaging.operation"] = "process"
        span = tracer.start_span(f"{job.task} process", context=parent, kind=SpanKind.CONSUMER,
                                 attributes=attrs)
        # The handler runs next on this thread: make the span current so
        # the handler's own spans are its children.
        token = otel_context.attach(trace.set_span_in_context(span))
        open_span.set((span, token))

    @app.after_process
    def _end(job: Job, outcome: ProcessOutcome) -> None:
        entry = open_span.get()
        open_span.set(None)
        if entry is None:
            return
        span, token = entry
        span.set_attribute("runq.outcome", outcome.outcome)
        span.set_attribute("runq.duration_us", outcome.duration_us)
        if outcome.outcome in ("retried", "dead", "lost"):
            span.set_status(Status(StatusCode.ERROR, (outcome.error or outcome.outcome)[:200]))
        span.end()
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:  # another thread or context: nothing to restore
            pass


__all__ = ["instrument", "SYSTEM"]
