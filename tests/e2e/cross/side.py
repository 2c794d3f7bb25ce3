"""The Python side of tests/e2e/cross: python side.py MODE URL FILE [N].

    work URL FILE       handle the "cross.from_lua" jobs listed in FILE (queue cross-py)
    produce URL FILE N  enqueue N "cross.from_py" jobs on queue cross-lua, write "id n" lines
    check URL FILE      the Lua worker's results for those jobs
"""
from __future__ import annotations

import sys

import runq

WAIT = 30.0


def listed(path: str) -> list[tuple[str, int]]:
    with open(path) as f:
        jobs = [(line.split()[0], int(line.split()[1])) for line in f if line.strip()]
    assert jobs, f"no jobs listed in {path}"
    return jobs


def main() -> None:
    mode, url, path = sys.argv[1:4]
    app = runq.App(url)
    try:
        if mode == "work":
            @app.task(name="cross.from_lua", queue="cross-py")
            def from_lua(a: int, b: int, *, tag: str) -> dict[str, object]:
                return {"sum": a + b, "tag": tag}

            with app.worker(queues=["cross-py"], concurrency=4):
                for job_id, _ in listed(path):
                    app.job(job_id).wait(timeout=WAIT)
        elif mode == "produce":
            task = app.remote("cross.from_py", queue="cross-lua")
            with open(path, "w") as f:
                for n in range(1, int(sys.argv[4]) + 1):
                    ref = task.enqueue(n, n + 1, str(n), tag="py")
                    f.write(f"{ref.id} {n}\n")
        elif mode == "check":
            for job_id, n in listed(path):
                got = app.job(job_id).wait(timeout=WAIT)
                want = {"product": n * (n + 1), "text": f"{n}!"}
                assert got == want, f"job {job_id}: {got!r} != {want!r}"
        else:
            sys.exit(__doc__)
    finally:
        app.close()


if __name__ == "__main__":
    main()
