"""Private redis-server processes for tests.

Each server runs on a free loopback port (never 6379) in its own temporary
directory, optionally with AOF or as a replica of another, and is stopped
(and its directory removed) by stop() or on leaving a ``with`` block.

    with RedisServer(appendonly=True) as r:
        r.url            # redis://127.0.0.1:PORT/0
        r.restart()      # same port and dir: AOF data survives
        with RedisServer(replica_of=r) as rep: ...
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Sequence

REDIS_SERVER = os.environ.get("RUNQ_REDIS_SERVER", "redis-server")


def free_port() -> int:
    """A loopback port nobody listens on now (never 6379)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port


def available() -> bool:
    return shutil.which(REDIS_SERVER) is not None


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _request(args: Sequence[str]) -> bytes:
    return f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )


def command(port: int, *args: str, timeout: float = 5.0) -> bytes:
    """Send one command (RESP) and return the raw reply's first chunk."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_request(args))
        return s.recv(65536)


def bulk(port: int, *args: str, timeout: float = 5.0) -> bytes | None:
    """Send one command whose reply is a bulk string; return it whole (None: nil)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_request(args))
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n")
        assert head.startswith(b"$"), buf
        n = int(head[1:])
        if n < 0:
            return None
        while len(rest) < n + 2:
            chunk = s.recv(65536)
            assert chunk, rest
            rest += chunk
        return rest[:n]


class RedisServer:
    def __init__(
        self,
        *,
        appendonly: bool = False,
        replica_of: "RedisServer | None" = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="runq-redis-")
        self.appendonly = appendonly
        self.replica_of = replica_of
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "redis.log")

    def _argv(self) -> list[str]:
        argv = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", self.dir, "--save", "", "--daemonize", "no",
            "--logfile", self.log_path,
            "--appendonly", "yes" if self.appendonly else "no",
        ]
        if self.appendonly:
            argv += ["--appendfsync", "always"]
        if self.replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        return argv + self.extra_args

    def start(self, timeout: float = 10.0) -> "RedisServer":
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            if _ping(self.port):
                return self
            time.sleep(0.02)
        log = ""
        if os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                log = f.read()[-2000:]
        self.stop(remove=False)
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")

    def wait_replica_synced(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if b"master_link_status:up" in command(self.port, "INFO", "replication"):
                return
            time.sleep(0.05)
        raise RuntimeError("replica did not sync")

    def kill(self) -> None:
        """SIGKILL the server (data not in the AOF is lost)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self, remove: bool = True) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port and directory."""
        self.stop(remove=False)
        self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
