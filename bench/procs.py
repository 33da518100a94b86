"""Child processes of the bench: started with a bounded wait for readiness, always stopped.

Every process the bench starts goes through ``Child``; ``Children`` stops
them all (SIGTERM, then SIGKILL after a grace) in a ``finally``, so a failed
or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import grpc

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def python() -> str:
    """The interpreter running the bench (the project's virtual environment)."""
    return sys.executable


def server_command() -> str:
    """``tongyeok-server`` from the same environment, as users run it."""
    candidate = Path(sys.executable).with_name("tongyeok-server")
    return str(candidate) if candidate.exists() else "tongyeok-server"


class Child:
    """One child process; its output goes to a log file under the results directory."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        # The bench imports tests.support.* in children: run them from the repository root.
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Still running?"""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's output (for error messages)."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, wait ``grace_s``, then SIGKILL the child's whole process group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace_s)
        # The group may hold grandchildren (pocketsphinx workers, apertium pipelines).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()


class Children:
    """Owns children; stops every one on exit, newest first."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> Child:
        """Start and remember a child."""
        child = Child(name, argv, log_dir, env)
        self._children.append(child)
        return child

    def stop(self, child: Child, grace_s: float = 5.0) -> None:
        """Stop one child now."""
        child.stop(grace_s)
        if child in self._children:
            self._children.remove(child)

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for child in reversed(self._children):
            child.stop(grace_s=2.0)
        self._children.clear()


def wait_for_grpc(child: Child, address: str, timeout_s: float, ca: str | None = None) -> None:
    """Block until ``address`` accepts a gRPC connection (TLS with ``ca``), or raise with the child's output."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        credentials = grpc.ssl_channel_credentials(Path(ca).read_bytes()) if ca else None
        with grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                continue
    raise RuntimeError(f"{child.name} did not listen on {address} within {timeout_s:.0f} s:\n{child.log_tail()}")


def wait_for_tcp(child: Child, port: int, timeout_s: float) -> None:
    """Block until ``127.0.0.1:port`` accepts a TCP connection (the HTTP fake)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not listen on port {port} within {timeout_s:.0f} s:\n{child.log_tail()}")
