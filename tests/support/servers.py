"""``tongyeok-server`` as users run it, in a process of its own, for tests that signal it or balance over it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.metrics import Samples, free_port, scrape


class ServerProcess:
    """One server on 127.0.0.1 with its metrics and health ports; its stderr (JSON lines) in a file."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, name: str = "server") -> None:
        """``{port}`` in ``args`` is replaced by the server's own port (e.g. for ``--advertise-address``)."""
        self.name = name
        self.port, self.metrics_port, self.health_port = free_port(), free_port(), free_port()
        args = [a.replace("{port}", str(self.port)) for a in args]
        self.log_path = Path(tempfile.mkstemp(prefix=f"tongyeok-{name}-", suffix=".log")[1])
        argv = [
            sys.executable, "-m", "tongyeok_server", "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
            "--log-format", "json", *args,
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stderr=self._log)

    @property
    def address(self) -> str:
        """Its gRPC address."""
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 60.0) -> ServerProcess:
        """Block until its health service says SERVING."""
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(f"127.0.0.1:{self.health_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
                with contextlib.suppress(grpc.RpcError):
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within {timeout_s:.0f} s:\n{self.log_tail()}")

    def metrics(self) -> Samples:
        """A scrape of its /metrics."""
        return scrape(self.metrics_port)

    def log_lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines so far."""
        self._log.flush()
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    lines.append(json.loads(line))
        return lines

    def sessions(self, *, moved: bool = False) -> set[str]:
        """Ids of the sessions it started (from its session_start lines), or (``moved``) that moved in."""
        return {
            line["session_id"]
            for line in self.log_lines()
            if line.get("event") == "session_start" and bool(line.get("moved")) == moved
        }

    def log_tail(self, lines: int = 30) -> str:
        """The end of its log."""
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM: it drains and exits."""
        self.process.send_signal(signal.SIGTERM)

    def stop(self, grace_s: float = 15.0) -> int:
        """SIGTERM and wait (SIGKILL after ``grace_s``); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait(10)
        self._log.close()
        return code

    def remove_log(self) -> None:
        """Delete its log file."""
        with contextlib.suppress(OSError):
            self.log_path.unlink()


__all__ = ["ServerProcess", "free_port"]
