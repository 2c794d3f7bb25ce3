"""Worker: runs the app's task handlers on engine threads until stopped."""
from __future__ import annotations

import logging
import signal
import threading
import types
from typing import TYPE_CHECKING, Any, Sequence

from . import _runq
from .task import Seconds, _ms, in_handler

if TYPE_CHECKING:
    from .app import App, _LoopThread

log = logging.getLogger("runq")


class Worker:
    """Fetches jobs from ``queues`` (strict order, or ``weights``) and runs up
    to ``concurrency`` handlers at once on engine threads.

    ``concurrency=(min, max)`` autoscales the handler threads: the pool
    grows towards max while every handler is busy and jobs keep coming, and a
    thread idle for ``idle_timeout`` seconds exits, down to min.

    ``run()`` blocks until SIGINT/SIGTERM or ``stop()``; ``start()`` /
    ``stop()`` run it in the background. On stop, fetched jobs not started
    go back to pending at once, running handlers get ``grace`` seconds, then
    see ``job.cancelled``; a job whose handler never returns stays leased
    and is delivered again after its lease expires.
    """

    def __init__(
        self,
        app: App,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | tuple[int, int] = 4,
        weights: Sequence[int] | None = None,
        lease: Seconds = 30.0,
        grace: Seconds = 30.0,
        idle_timeout: Seconds = 10.0,
    ) -> None:
        self.min_concurrency = self.max_concurrency = 0
        if isinstance(concurrency, tuple):
            if len(concurrency) != 2:
                raise ValueError("concurrency=(min, max) takes two numbers")
            lo, hi = (int(x) for x in concurrency)
            if not 1 <= lo <= hi:
                raise ValueError(f"concurrency=(min, max) needs 1 <= min <= max, got {concurrency}")
            self.min_concurrency, self.max_concurrency = lo, hi
            concurrency = hi
        elif concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.app = app
        self.queues = list(queues) if queues else ["default"]
        self.concurrency = concurrency
        self.idle_timeout_ms = _ms(idle_timeout, "idle_timeout") or 0
        if self.max_concurrency and self.idle_timeout_ms < 1:
            raise ValueError("idle_timeout must be > 0")
        self.weights = list(weights) if weights else None
        self.lease_ms = _ms(lease, "lease") or 30000
        self.grace_ms = _ms(grace, "grace") or 0
        self._raw: _runq.Worker | None = None
        self._loop: _LoopThread | None = None
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._running_run = False
        self._requested_grace: Seconds | None = None

    @property
    def running(self) -> bool:
        return self._raw is not None

    def stats(self) -> dict[str, int]:
        raw = self._raw
        return raw.stats() if raw is not None else {}

    def start(self) -> Worker:
        with self._lock:
            if self._raw is not None:
                raise _runq.InvalidState("the worker is already running")
            self._stop_requested.clear()
            self._requested_grace = None
            raw = _runq.Worker(self.app.client, self.queues, weights=self.weights,
                               concurrency=self.concurrency, lease_ms=self.lease_ms,
                               grace_ms=self.grace_ms, min_concurrency=self.min_concurrency,
                               max_concurrency=self.max_concurrency,
                               idle_timeout_ms=self.idle_timeout_ms)
            self._loop = self.app._push_loop()
            try:
                for sched in self.app._schedules:
                    raw.schedule(sched["task"], sched["payload"], every_ms=sched["every_ms"],
                                 cron=sched["cron"], queue=sched["queue"])
                raw.start()
            except BaseException:
                raw.close()
                self.app._pop_loop(self._loop)
                self._loop = None
                raise
            self._raw = raw
            # A started worker stays alive while it runs even if the caller
            # drops it (freeing it would stop it).
            self.app._running_workers.add(self)
        log.info("runq worker started: backend=%s queues=%s concurrency=%s",
                 self.app.backend, ",".join(self.queues),
                 f"{self.min_concurrency}:{self.max_concurrency}" if self.max_concurrency
                 else self.concurrency)
        return self

    def stop(self, grace: Seconds | None = None) -> bool:
        """Stop gracefully. Returns True when every handler finished in time.

        From a handler, or while run() is blocking in another thread, it only
        asks for the stop; run() does it.
        """
        self._requested_grace = grace
        self._stop_requested.set()
        if self._running_run:
            return True
        if in_handler() or self._on_loop_thread():
            # Stopping here would wait for this very handler: only ask the
            # engine to stop fetching; whoever owns the worker frees it.
            raw = self._raw
            if raw is not None and in_handler():
                raw.stop(self.grace_ms)
            return True
        return self._shutdown(grace)

    def _on_loop_thread(self) -> bool:
        loop = self._loop
        return loop is not None and loop.is_current()

    def _shutdown(self, grace: Seconds | None = None) -> bool:
        with self._lock:
            raw, self._raw = self._raw, None
            loop, self._loop = self._loop, None
        self.app._running_workers.discard(self)
        if raw is None:
            return True
        grace_ms = self.grace_ms if grace is None else (_ms(grace, "grace") or 0)
        log.info("runq worker stopping: no new jobs; waiting up to %.1fs for %d running handler(s)",
                 grace_ms / 1000, raw.stats().get("running", 0))
        try:
            finished = raw.stop(grace_ms)
            stats = raw.stats()
        finally:
            raw.close()
            if loop is not None:
                self.app._pop_loop(loop)
        if finished:
            log.info("runq worker stopped gracefully: %d processed, %d failed, %d dead",
                     stats["processed"], stats["failed"], stats["dead"])
        else:
            log.warning("runq worker stopped: handlers still running after the grace period "
                        "were cancelled (%d processed, %d failed)",
                        stats["processed"], stats["failed"])
        return finished

    def run(self) -> bool:
        """Start and block until SIGINT/SIGTERM (main thread) or stop()."""
        old: dict[signal.Signals, Any] = {}
        is_main = threading.current_thread() is threading.main_thread()

        def on_signal(signum: int, frame: types.FrameType | None) -> None:
            log.info("runq worker received %s: stopping gracefully", signal.Signals(signum).name)
            self._stop_requested.set()

        self._running_run = True
        try:
            if is_main:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    old[sig] = signal.signal(sig, on_signal)
            self.start()
            raw = self._raw
            while not self._stop_requested.wait(0.5):
                if raw is not None:
                    raw.check()  # re-raise what a handler callback stored
        finally:
            self._running_run = False
            try:
                finished = self._shutdown(self._requested_grace)
            finally:
                for sig, handler in old.items():
                    signal.signal(sig, handler)
        return finished

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
