"""Dramatiq side of the peer benchmark: a no-op actor on a Redis broker."""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

import peer_counter

broker = RedisBroker(url=os.environ["BENCH_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(i):
    peer_counter.hit()
