"""``tongyeok-server``: the composition root. Settings in, a server on ``asyncio.run``, until SIGINT or SIGTERM.

``main`` reads and checks every setting once (a bad value exits 2 with one
line), configures the logs, and either supervises ``--processes`` copies of
itself (``supervisor.py``) or runs one server on the process's event loop:
``TongyeokServer`` builds each component from its own settings group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from tongyeok_server.app import TongyeokServer
from tongyeok_server.errors import StartError
from tongyeok_server.observability import core_log, logs
from tongyeok_server.settings import PROCESS_INDEX_ENV, Settings, SettingsError, from_args, load_secret_files
from tongyeok_server.supervisor import supervise

log = logging.getLogger("tongyeok_server")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2: a setting has a value the server cannot run with)."""
    try:
        settings = from_args(argv)
        load_secret_files()  # OPENAI_API_KEY_FILE and the like: secrets mounted as files
    except SettingsError as error:
        print(f"tongyeok-server: {error}", file=sys.stderr)
        return 2
    index = os.environ.get(PROCESS_INDEX_ENV)
    seen = settings.observability
    logs.configure(seen.log_level, index, seen.log_format)
    if settings.security.tls_cert:
        core_log.filter_stderr(seen.log_format, index)  # gRPC core's line per failed handshake, counted instead
    if settings.server.translation_threads and index is None:  # once, not per process of --processes
        log.warning("--translation-threads is deprecated and ignored: translations run on the event loop")
    if settings.server.processes > 1 and index is None:
        return supervise(settings, list(sys.argv[1:] if argv is None else argv))
    try:
        # A supervised process writes its metrics for the supervisor to serve.
        return asyncio.run(serve(settings, serve_metrics=index is None))
    except StartError as error:  # what only starting finds out: a file, a package, a port, a credential
        print(f"tongyeok-server: {error}", file=sys.stderr)
        return 1


async def serve(settings: Settings, *, serve_metrics: bool = True) -> int:
    """Build the server from ``settings``, serve until SIGTERM or SIGINT, drain, stop; returns the exit status."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    server = TongyeokServer(settings, serve_metrics=serve_metrics)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_stop_signal, signum, stopping, settings.server.grace_period_s)
    # Certificates and keys rotate under cert-manager and the like: SIGHUP re-reads them (file changes are seen anyway).
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    port = await server.start()  # StartError: main says why
    _log_listening(settings, server, port)
    await stopping.wait()
    await server.stop()
    log.info("stopped")
    return 0


def _on_stop_signal(signum: int, stopping: asyncio.Event, grace_s: float) -> None:
    log.info("%s: stopping (grace %.1fs)", signal.Signals(signum).name, grace_s)
    stopping.set()


def _log_listening(settings: Settings, server: TongyeokServer, port: int) -> None:
    security = server.security
    log.info(
        "listening on %s:%d (%s, %s; recognizer=%s, translator=%s, max %d streams)",
        settings.server.host,
        port,
        ("mutual TLS" if settings.security.tls_client_ca else "TLS") if security.tls else "plaintext",
        "authentication on" if security.authenticator else "no authentication",
        server.recognizer.description.name,
        server.translator.description.name,
        settings.server.max_streams,
    )
    if server.web_port:
        scheme = "https" if security.tls else "http"
        host = settings.web.web_host or settings.server.host
        shown = "localhost" if host.strip("[]") in ("::", "0.0.0.0", "127.0.0.1", "::1") else host
        log.info("meeting page on %s://%s:%d/", scheme, shown, server.web_port)
    if server.observability.metrics_port:
        host = settings.observability.metrics_host or settings.server.host
        log.info("metrics on http://%s:%d/metrics", host, server.observability.metrics_port)


if __name__ == "__main__":
    sys.exit(main())
