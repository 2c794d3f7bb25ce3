"""runq quickstart: define tasks, enqueue jobs, run a worker, get results.

    python examples/quickstart.py                 # in-process memory:// backend
    RUNQ_URL=redis://127.0.0.1:6380/0 python examples/quickstart.py

In a real deployment producers only enqueue, and workers run with
``runq worker quickstart:app --queues default --concurrency 8``.
"""
from __future__ import annotations

import asyncio

import runq

app = runq.App()  # $RUNQ_URL, else memory://


@app.task(retries=2, backoff=(0.1, 1.0))
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def greet(name: str) -> str:
    await asyncio.sleep(0.01)
    return f"hello, {name}"


@app.task
def describe(job: runq.Job) -> str:
    # A single parameter annotated runq.Job receives the job itself.
    return f"{job.task} got {job.args} on attempt {job.attempt}"


@app.task(retries=0)
def flaky() -> None:
    raise RuntimeError("this one always fails")


def main() -> None:
    with app.worker(concurrency=4):
        total: int = add.enqueue(2, 3).wait(timeout=10)
        print("add ->", total)
        print("greet ->", greet.enqueue("world").wait(timeout=10))
        print("describe ->", describe.enqueue(1, "two").wait(timeout=10))
        later = add.options(delay=0.2, priority=5).enqueue(10, 20)
        print("delayed add ->", later.wait(timeout=10))
        try:
            flaky.enqueue().wait(timeout=10)
        except runq.JobFailed as e:
            print("flaky failed as expected; last line:", (e.error or "").strip().splitlines()[-1])


if __name__ == "__main__":
    main()
