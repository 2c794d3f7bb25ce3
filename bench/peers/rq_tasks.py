"""RQ side of the peer benchmark: a no-op job function."""
import peer_counter


def noop(i):
    peer_counter.hit()
