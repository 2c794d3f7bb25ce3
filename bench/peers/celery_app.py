"""Celery side of the peer benchmark: a no-op task on a Redis broker."""
import os

from celery import Celery

import peer_counter

app = Celery("runqbench", broker=os.environ["BENCH_URL"])
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False
app.conf.broker_connection_retry_on_startup = True


@app.task(name="bench.noop")
def noop(i):
    peer_counter.hit()
