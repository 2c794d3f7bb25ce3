"""The job payload convention shared by every runq language.

Args travel as one msgpack array ``[positional_args, kwargs_map]`` (see
docs/python.md). Encoding and decoding are done in C; this module only
names the offending argument when a value cannot be encoded.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from . import _runq


def _describe(path: Sequence[object]) -> str:
    if len(path) >= 2 and path[0] == 0:
        where = f"positional argument {path[1]}"
    elif len(path) >= 2 and path[0] == 1:
        where = f"keyword argument {path[1]!r}"
    else:
        return "the value"
    inner = "".join(f"[{p!r}]" for p in path[2:])
    return where + (f" (at {inner})" if inner else "")


def encode_args(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """Encode a call; TypeError naming the argument when it cannot be sent."""
    try:
        return _runq.packb([args, kwargs])
    except TypeError as e:
        where = _describe(getattr(e, "path", ()))
        raise TypeError(f"task {task!r}: cannot encode {where}: {e}") from e


def decode_args(payload: bytes | None) -> tuple[list[Any], dict[str, Any]]:
    """Split a payload into (args, kwargs).

    Producers in other languages may send a bare array or map; those are
    read as positional args or keyword args rather than refused.
    """
    if payload is None:
        return [], {}
    value = _runq.unpackb(payload)
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], list)
        and isinstance(value[1], dict)
        and all(isinstance(k, str) for k in value[1])
    ):
        return value[0], value[1]
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return [], value
    return [value], {}


def encode_value(value: Any) -> bytes:
    try:
        return _runq.packb(value)
    except TypeError as e:
        raise TypeError(f"cannot encode the handler's result: {e}") from e


def decode_value(payload: bytes | None) -> Any:
    return None if payload is None else _runq.unpackb(payload)
