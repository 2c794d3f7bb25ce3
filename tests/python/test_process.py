"""Workers as processes: the CLI, SIGTERM in the middle of a job, and the
quickstart example (run, and type-checked with mypy)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import runq

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60

WORKER_MODULE = textwrap.dedent(
    """
    import os, time
    import runq

    app = runq.App(os.environ["RUNQ_TEST_URL"])
    MARK = os.environ["RUNQ_TEST_MARK"]
    RELEASE = MARK + ".release"

    @app.task(name="proc.slow", retries=5, backoff=(0.01, 0.05))
    def slow(job: runq.Job) -> str:
        open(MARK, "w").close()           # tell the test we are running
        for _ in range(6000):            # at most ~60 s
            if job.cancelled:
                raise RuntimeError("cancelled by worker stop")
            if os.path.exists(RELEASE):  # the test lets it finish
                return "slow"
            time.sleep(0.01)
        return "slow"
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


@pytest.mark.parametrize("how", ["module", "console-script"])
def test_cli_help(how: str) -> None:
    if how == "module":
        argv = [sys.executable, "-m", "runq"]
    else:
        script = Path(sys.executable).parent / "runq"
        assert script.exists(), "the runq console script is not installed"
        argv = [str(script)]
    out = subprocess.run(argv + ["worker", "--help"], capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 0 and "--concurrency" in out.stdout and "--queues" in out.stdout


def test_cli_rejects_a_non_app(tmp_path: Path) -> None:
    (tmp_path / "notapp.py").write_text("app = 42\n")
    out = subprocess.run([sys.executable, "-m", "runq", "worker", "notapp:app"],
                         capture_output=True, text=True, timeout=WAIT, cwd=tmp_path)
    assert out.returncode != 0 and "not a runq.App" in out.stderr


@pytest.mark.parametrize("grace", ["30", "0.2"])
def test_sigterm_mid_job_loses_nothing(redis_url: str, tmp_path: Path, grace: str) -> None:
    """SIGTERM while a handler runs: with a long grace the job finishes; with a
    short one the handler is cancelled and the job returns to the queue. In
    both cases it is done in the end, never lost."""
    (tmp_path / "slowapp.py").write_text(WORKER_MODULE)
    mark = tmp_path / "running"
    env = _env(RUNQ_TEST_URL=redis_url, RUNQ_TEST_MARK=str(mark),
               PYTHONPATH=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runq", "worker", "slowapp:app", "--queues", "default",
         "--concurrency", "2", "--grace", grace],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    producer = runq.App(redis_url)
    try:
        ref = producer.remote("proc.slow").enqueue()
        end = time.monotonic() + WAIT
        while not mark.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < end, "the worker never started the job"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        if grace == "30":
            # Within the grace period the running handler may finish.
            (tmp_path / "running.release").touch()
        out, _ = proc.communicate(timeout=WAIT + 60)
        assert proc.returncode == 0, out
        assert "SIGTERM" in out and "stopped" in out, out

        state = ref.status()
        assert state is not runq.JobState.DEAD
        if state is not runq.JobState.DONE:
            # Returned to the queue (pending, or scheduled for a retry): a new
            # worker finishes it.
            @producer.task(name="proc.slow", retries=5, backoff=(0.01, 0.05))
            def fast() -> str:
                return "fast"

            with producer.worker(["default"]):
                assert ref.wait(WAIT) in ("fast", "slow")
        else:
            assert ref.wait(WAIT) == "slow"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        producer.close()


def test_quickstart_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                         capture_output=True, text=True, timeout=WAIT,
                         env=_env(RUNQ_URL="memory://"))
    assert out.returncode == 0, out.stderr
    assert "add -> 5" in out.stdout and "flaky failed as expected" in out.stdout


def test_quickstart_type_checks() -> None:
    # mypy is a test dependency (tests/python/run.sh installs it).
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         str(ROOT / "examples" / "quickstart.py"), str(ROOT / "python" / "runq")],
        capture_output=True, text=True, timeout=300, cwd=ROOT / "tests",
    )
    assert out.returncode == 0, out.stdout + out.stderr
