"""A real Redis server for the tests, started on loopback in a temporary directory.

The binary comes from Debian's ``redis-server`` package (``make test``
installs it where it is missing). It keeps nothing on disk and listens on
127.0.0.1 only, on a free port; ``stop`` and ``start`` take it away and
bring it back on the same port, as an outage does; ``freeze`` and ``thaw``
stop it answering without closing anything, as a partition does.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.metrics import free_port


class RedisServer:
    """One redis-server process; ``url`` is a ``--limits-storage`` value for it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run `make test` (it installs the redis-server package)")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="tongyeok-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) it; returns when it accepts connections."""
        argv = [
            self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--dir", str(self.root), "--protected-mode", "yes", "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=(self.root / "log").open("wb"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {(self.root / 'log').read_text()}")

    def stop(self) -> None:
        """Stop it now (its connections are closed; the port refuses new ones)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def freeze(self) -> None:
        """It stops answering, connections open (SIGSTOP)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """It answers again (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        """Stop it and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started Redis, destroyed at the end."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
