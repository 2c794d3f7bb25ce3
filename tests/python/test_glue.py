"""The C glue itself: callbacks, stored exceptions, interpreter exit."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import runq
from runq import _runq


def test_callback_exception_is_reraised_by_worker_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _runq.Client("memory://")
    seen: list[str] = []
    reported: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def handler(job: _runq.Job) -> bool:
        seen.append(job.id)
        raise ZeroDivisionError(f"from the dispatcher {len(seen)}")

    client.register("glue.raises", handler, max_retries=0)
    worker = _runq.Worker(client, ["default"], concurrency=1)
    worker.start()
    ids = [client.enqueue("glue.raises", _runq.packb([[i], {}])) for i in range(3)]
    for job_id in ids:
        snap = client.wait(job_id, 30000)
        assert snap.state == _runq.STATE_DEAD
        assert "ZeroDivisionError" in (snap.error or "")
    with pytest.raises(ZeroDivisionError, match="from the dispatcher 1"):
        worker.stop(1000)
    # The first is raised, the others reported at once, none kept for later.
    assert [str(e) for e in reported] == ["from the dispatcher 2", "from the dispatcher 3"]
    worker.stop(1000)
    worker.close()
    with pytest.raises(runq.Closed):
        worker.start()
    client.close()
    assert seen == ids


def test_handler_job_is_cut_off_after_the_call() -> None:
    client = _runq.Client("memory://")
    kept: list[_runq.Job] = []

    def handler(job: _runq.Job) -> bool:
        kept.append(job)
        job.set_result(_runq.packb(job.attempt))
        return True

    client.register("glue.keep", handler)
    worker = _runq.Worker(client, None, concurrency=1)
    worker.start()
    job_id = client.enqueue("glue.keep", _runq.packb([[], {}]))
    assert _runq.unpackb(client.wait(job_id, 30000).result or b"") == 1
    worker.close()
    with pytest.raises(runq.InvalidState):
        kept[0].id
    assert "released" in repr(kept[0])
    with pytest.raises(runq.InvalidState):
        kept[0].set_error("too late")
    client.close()


def test_client_refuses_close_while_a_worker_lives() -> None:
    client = _runq.Client("memory://")
    worker = _runq.Worker(client)
    with pytest.raises(runq.InvalidState):
        client.close()
    worker.close()
    client.close()
    assert client.closed


def test_codec_round_trip_and_errors() -> None:
    value = [None, True, 1, -1, 2**64 - 1, 1.25, "s", b"b", [1, (2,)], {"k": {"n": None}}]
    assert _runq.unpackb(_runq.packb(value)) == [None, True, 1, -1, 2**64 - 1, 1.25, "s",
                                                  b"b", [1, [2]], {"k": {"n": None}}]
    with pytest.raises(ValueError):
        _runq.unpackb(b"\xc1")  # never-used byte
    with pytest.raises(ValueError):
        _runq.unpackb(_runq.packb(1) + b"\x00")  # trailing bytes
    with pytest.raises(TypeError) as ei:
        _runq.packb({"a": [0, 1, {"b": object()}]})
    assert ei.value.path == ("a", 2, "b")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        _runq.packb("\ud800")  # lone surrogate: not UTF-8


def test_running_worker_is_stopped_at_interpreter_exit() -> None:
    code = textwrap.dedent(
        """
        import runq
        app = runq.App("memory://")

        @app.task(name="exit.t")
        def t(x):
            return x

        w = app.worker(grace=5).start()
        print(t.enqueue(7).wait(30))
        # No stop: the atexit hook must stop the engine threads cleanly.
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"
