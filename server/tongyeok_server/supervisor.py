"""The supervisor of ``--processes N`` (N > 1): N copies of the server on one port, stopped together.

It starts N server processes on the same port (SO_REUSEPORT; the kernel
spreads connections among them), passes SIGTERM/SIGINT/SIGHUP on, and exits
when they have drained. One Python process serves from one event loop and
one GIL, so it uses about one core however many the machine has; processes
are how the service uses the rest (see ``make bench``). With
``--metrics-port`` the supervisor serves the sum of its processes' metrics
(see ``observability/exporter.py``). It runs no server and no event loop of
its own: it waits on its children.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from tongyeok_server.observability.exporter import MULTIPROC_ENV, MetricsExporter, MultiprocessDirectory
from tongyeok_server.session.resume_token import new_secret
from tongyeok_server.settings import PROCESS_INDEX_ENV, Settings

log = logging.getLogger("tongyeok_server")


def supervise(settings: Settings, argv: list[str]) -> int:
    """Run the servers until SIGTERM/SIGINT or until one of them exits; returns the exit status."""
    return _supervise(settings, argv, _stop_on_signals(settings))


def _stop_on_signals(settings: Settings) -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping (grace %.1fs)", signal.Signals(signum).name, settings.server.grace_period_s)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _supervise(settings: Settings, argv: list[str], stop: threading.Event) -> int:
    """Run ``--processes`` servers on one port until a signal, or until one of them exits."""
    seen = settings.observability
    metrics_dir: MultiprocessDirectory | None = None
    exporter: MetricsExporter | None = None
    shared: dict[str, str] = {}
    if seen.metrics_port:
        metrics_dir = MultiprocessDirectory()
        shared[MULTIPROC_ENV] = str(metrics_dir.path)
        exporter = MetricsExporter(metrics_dir.registry(), seen.metrics_host or settings.server.host, seen.metrics_port)
        exporter.start()
        log.info("metrics of all of them on http://%s:%d/metrics", exporter.host, exporter.port)
    try:
        with tempfile.TemporaryDirectory(prefix=f"tongyeok-{settings.server.port}-") as runtime:
            shared |= _shared_env(settings, Path(runtime))
            return _run_children(settings, argv, stop, shared, metrics_dir)
    finally:
        if exporter is not None:
            exporter.stop()
        if metrics_dir is not None:
            metrics_dir.remove()


def _shared_env(settings: Settings, runtime: Path) -> dict[str, str]:
    """What every server process of the supervisor shares: a directory for their sockets, a resume secret."""
    env = {"TONGYEOK_RUNTIME_DIR": str(runtime)}
    if not settings.resume.resume_secret:
        # One secret for all processes, so that a resume landing on any of them opens the token.
        secret = runtime / "resume-secret"
        secret.touch(mode=0o600)
        secret.write_bytes(base64.b64encode(new_secret()))
        env["TONGYEOK_RESUME_SECRET"] = str(secret)
    return env


def _run_children(
    settings: Settings,
    argv: list[str],
    stop: threading.Event,
    shared: dict[str, str],
    metrics_dir: MultiprocessDirectory | None,
) -> int:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tongyeok_server", *argv],
            env={**os.environ, **shared, PROCESS_INDEX_ENV: str(i)},
        )
        for i in range(settings.server.processes)
    ]
    log.info(
        "supervising %d server processes on port %d: %s", len(children), settings.server.port, [c.pid for c in children]
    )

    def forward_hup(_signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGHUP, forward_hup)
    while not stop.wait(0.5):
        exited = [c for c in children if c.poll() is not None]
        if exited:
            if metrics_dir is not None:
                metrics_dir.mark_dead(exited[0].pid)  # its open streams no longer count
            # A half-sized service would look healthy to a load balancer; let the orchestrator restart it whole.
            log.error("server process %d exited with %s; stopping the others", exited[0].pid, exited[0].returncode)
            break
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [child.wait() for child in children]
    if metrics_dir is not None:
        for child in children:
            metrics_dir.mark_dead(child.pid)
    failed = [code for code in codes if code != 0]
    log.info("stopped (%d processes, exit codes %s)", len(children), codes)
    if not stop.is_set():
        return failed[0] if failed and failed[0] > 0 else 1
    return 0 if not failed else 1
