"""Command line: ``runq worker module:app --queues high,default --concurrency 16``
(or ``--concurrency 2:16`` to autoscale between 2 and 16 handler threads)."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from .app import App


def load_app(spec: str) -> App:
    """Import ``module:attr`` (attr defaults to ``app``) and return the App."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: object = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise SystemExit(f"runq: {spec} is a {type(obj).__name__}, not a runq.App")
    return obj


def _concurrency(text: str) -> int | tuple[int, int]:
    """``N`` (a fixed pool) or ``MIN:MAX`` (autoscaling)."""
    try:
        if ":" in text:
            lo, hi = text.split(":")
            pair = (int(lo), int(hi))
            if not 1 <= pair[0] <= pair[1]:
                raise ValueError
            return pair
        n = int(text)
        if n < 1:
            raise ValueError
        return n
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected N or MIN:MAX with 1 <= MIN <= MAX") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runq", description="runq task queue")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run a worker for an app")
    w.add_argument("app", help="module:attribute of the runq.App, e.g. myproj.tasks:app")
    w.add_argument("--queues", "-q", default="default",
                   help="comma-separated queues, highest priority first (default: default)")
    w.add_argument("--weights", default=None,
                   help="comma-separated weights, one per queue (default: strict order)")
    w.add_argument("--concurrency", "-c", type=_concurrency, default=4,
                   help="handlers at once: N, or MIN:MAX to autoscale between them")
    w.add_argument("--idle-timeout", type=float, default=10.0,
                   help="with MIN:MAX, seconds a thread waits idle before it exits")
    w.add_argument("--url", default=None, help="backend URL (overrides the app's)")
    w.add_argument("--grace", type=float, default=30.0,
                   help="seconds running handlers get to finish on stop")
    w.add_argument("--lease", type=float, default=30.0, help="job lease in seconds")
    w.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = load_app(args.app)
    if args.url:
        app.url = args.url
    queues = [q for q in args.queues.split(",") if q]
    weights = [int(x) for x in args.weights.split(",")] if args.weights else None
    worker = app.worker(queues, concurrency=args.concurrency, weights=weights,
                        lease=args.lease, grace=args.grace, idle_timeout=args.idle_timeout)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
