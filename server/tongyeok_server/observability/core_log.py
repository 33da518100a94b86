"""gRPC core's own log lines, on the server's stderr, with failed TLS handshakes counted instead of one line each.

gRPC's C core logs every failed TLS handshake at INFO, straight to file
descriptor 2 ("Handshake failed with error SSL_ERROR_SSL: ...
WRONG_VERSION_NUMBER"), so anyone who can open a TCP connection to a TLS
port writes a line per connection into the server's log, and no Python
hook sees those lines. With TLS on, ``main`` therefore points descriptor 2
at a pipe read by this module running as a small process of its own
(``filter_stderr``): every line passes through unchanged, except handshake
failures, which are counted and reported like the other refusals, at most
once per ``REPORT_EVERY_S``, with the count and the latest reasons, in the
server's log format.

Why a process and not a thread: gRPC core ends the process with abort()
right after its fatal line, and a thread of the dying process would lose
that line, the one that explains the crash; a process of its own reads the
pipe until every writer has gone. It ignores SIGINT and SIGTERM (a Ctrl-C
reaches the whole process group, and the server's last lines come after
it) and exits at the end of its input.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence

from tongyeok_server.observability import logs

REPORT_EVERY_S = 10.0
#: Set in the environment of the processes whose stderr is filtered, so that their own children do not filter again.
FILTERED_ENV = "TONGYEOK_STDERR_FILTERED"
_HANDSHAKE_FAILED = re.compile(
    rb"^[IWE]\d{4} [\d:.]+\s+\d+ \S*ssl_transport_security\.cc:\d+\] Handshake failed with error (\w+)"
    rb"(?::.*?OPENSSL_internal:(\w+))?"
)

log = logging.getLogger("tongyeok_server.tls")
_filter: subprocess.Popen[bytes] | None = None  # kept: it outlives this process's last line


def filter_stderr(log_format: str, process_index: str | None) -> None:
    """Send this process's file descriptor 2 (and its children's) through the filter process."""
    if os.environ.get(FILTERED_ENV):
        return  # a supervisor's filter already reads it
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "tongyeok_server.observability.core_log", "--log-format", log_format]
    if process_index:
        argv += ["--process-index", process_index]
    global _filter
    _filter = subprocess.Popen(argv, stdin=read_end, close_fds=True, start_new_session=True)
    os.close(read_end)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    os.environ[FILTERED_ENV] = "1"


class HandshakeReport:
    """Counts failed handshakes and says so at most once per period (the first at once, like the refusal log)."""

    def __init__(self, every_s: float = REPORT_EVERY_S) -> None:
        self.every_s = every_s
        self.reasons: Counter[str] = Counter()
        self._last = float("-inf")

    def add(self, reason: str, now: float) -> None:
        self.reasons[reason] += 1
        self.flush(now)

    def flush(self, now: float, *, force: bool = False) -> None:
        if not self.reasons or (not force and now - self._last < self.every_s):
            return
        count = sum(self.reasons.values())
        top = ", ".join(f"{reason} {n}" for reason, n in self.reasons.most_common(5))
        log.info(
            "%d TLS handshake%s failed since the last report (%s)",
            count,
            "s" if count != 1 else "",
            top,
            extra={"event": "tls_handshakes_failed", "count": count, "reasons": dict(self.reasons)},
        )
        self.reasons.clear()
        self._last = now


def run(source: int, sink: int, report: HandshakeReport) -> None:
    """Copy lines from ``source`` to ``sink`` until the end, counting failed handshakes instead of copying them."""
    pending = b""
    while True:
        ready, _, _ = select.select([source], [], [], report.every_s)
        now = time.monotonic()
        if not ready:
            report.flush(now)
            continue
        chunk = os.read(source, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            match = _HANDSHAKE_FAILED.match(line)
            if match is None:
                _write_all(sink, line + b"\n")
            else:
                report.add((match.group(2) or match.group(1)).decode(errors="replace"), now)
        report.flush(now)
    if pending:
        _write_all(sink, pending)
    report.flush(time.monotonic(), force=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(argv: Sequence[str] | None = None) -> int:
    """The filter process: stdin in, this process's stderr out."""
    parser = argparse.ArgumentParser(prog="python -m tongyeok_server.observability.core_log", description=__doc__)
    parser.add_argument("--log-format", default="text", choices=logs.FORMATS)
    parser.add_argument("--process-index", default=None)
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the end of the input ends this process, nothing else
    logs.configure("INFO", args.process_index, args.log_format)
    try:
        run(sys.stdin.fileno(), sys.stderr.fileno(), HandshakeReport())
    except Exception:  # never stop reading: writers would block on a full pipe, or die of EPIPE
        log.exception("the stderr filter failed; passing everything through")
        while chunk := os.read(sys.stdin.fileno(), 65536):
            _write_all(sys.stderr.fileno(), chunk)
    return 0


if __name__ == "__main__":
    sys.exit(main())
