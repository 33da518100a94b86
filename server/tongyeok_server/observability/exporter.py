"""Serving ``/metrics``: one process's registry, or the sum of a supervisor's processes.

One server process serves its own registry from prometheus-client's
small HTTP server (a daemon thread; a scrape never touches the event
loop). Under ``--processes N`` the server processes write their values to
memory-mapped files (prometheus-client's multiprocess mode) in a directory
the supervisor makes for them (``MultiprocessDirectory``) and passes as
``PROMETHEUS_MULTIPROC_DIR``; the supervisor serves the sum
(``MultiProcessCollector``), marks a process that exited as dead (its
live gauges stop counting; its counters stay, so totals never go back),
and removes the directory when it stops. Why not one port per process:
Prometheus would need to find N targets per pod, and a pod's figures would
only add up in queries; the supervisor already owns the processes' lives.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import multiprocess as prom_multiprocess

from tongyeok_server.errors import StartError

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsExporter:
    """The ``/metrics`` HTTP endpoint of ``registry`` on ``host:port``."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host.strip("[]") or "::"
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Listen; returns the port. Raises ``StartError`` if the port is taken."""
        try:
            self._server, self._thread = start_http_server(self.port, self.host, self.registry)
        except OSError as e:
            raise StartError(f"cannot serve metrics on {self.host}:{self.port}: {e}") from None
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)


class MultiprocessDirectory:
    """The supervisor's ``PROMETHEUS_MULTIPROC_DIR``: made fresh, summed, removed.

    An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used as given (its
    ``*.db`` files from an earlier run are removed first, as
    prometheus-client asks, or the old counts would be added to the new);
    otherwise a private temporary directory is made and removed at the end.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        given = env.get(MULTIPROC_ENV)
        if given:
            self.path = Path(given)
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in self.path.glob("*.db"):
                stale.unlink()
            self._owned = False
        else:
            self.path = Path(tempfile.mkdtemp(prefix="tongyeok-metrics-"))
            self._owned = True

    def registry(self) -> CollectorRegistry:
        """A registry that collects the sum over every process's files."""
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry, path=str(self.path))  # type: ignore[no-untyped-call]
        return registry

    def mark_dead(self, pid: int) -> None:
        """Process ``pid`` exited: its live gauges (open streams) stop counting."""
        prom_multiprocess.mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]

    def remove(self) -> None:
        """At the supervisor's exit: the directory (ours) or its files (the operator's)."""
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for path in self.path.glob("*.db"):
                with contextlib.suppress(OSError):
                    path.unlink()
