"""The worker side of ``worker_pool``: one process decoding several streams, one message at a time.

An engine subclasses ``StreamWorker`` (what to do on open, audio, finish,
cancel, and in idle time) and gives ``serve`` a factory for it; ``serve``
reads commands from the pipe and answers with events. Between messages the
worker gets ``idle()`` calls, where work that may wait happens (building the
next decoder, a decoding pass); messages always come first, so a finish or a
cancel is never stuck behind background work.
"""

from __future__ import annotations

import abc
import logging
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.recognition.base import RecognitionEnded, RecognitionEvent

log = logging.getLogger(__name__)

Send = Callable[[tuple[Any, ...]], None]


class StreamWorker(abc.ABC):
    """Decoding state of one worker process; ``handle`` takes one message."""

    name = "offline recogniser"

    def __init__(self, send: Send) -> None:
        self._send = send

    def emit(self, sid: int, event: RecognitionEvent) -> None:
        """Send one event of stream ``sid`` to the server."""
        self._send((sid, event))

    def handle(self, message: tuple[Any, ...]) -> bool:
        """Process one command; False when the worker should stop."""
        op = message[0]
        if op == "stop":
            return False
        sid = message[1]
        try:
            if op == "open":
                self.open(sid, *message[2:])
            elif op == "audio":
                self.audio(sid, message[2])
            elif op == "finish":
                self.finish(sid)
            elif op == "cancel":
                self.release(sid)
        except Exception as exc:  # a bad stream must not take the worker's other streams down
            log.exception("%s worker failed on stream %s", self.name, sid)
            self.release(sid)
            self.emit(sid, RecognitionEnded(ServiceError(_internal(), f"offline recogniser failed: {exc}")))
        return True

    @abc.abstractmethod
    def open(self, sid: int, *args: Any) -> None:
        """Start stream ``sid`` with the engine's open arguments."""

    @abc.abstractmethod
    def audio(self, sid: int, data: bytes) -> None:
        """Audio of stream ``sid``, in the caller's format (unknown ``sid``: ignore)."""

    @abc.abstractmethod
    def finish(self, sid: int) -> None:
        """No more audio for ``sid``: emit what remains, then ``RecognitionEnded``, then forget it."""

    @abc.abstractmethod
    def release(self, sid: int) -> None:
        """Forget stream ``sid`` without a word (cancel, or after a failure). Idempotent."""

    def idle(self) -> bool:
        """One piece of work that may wait; True if it did some (there may be more)."""
        return False

    def info(self) -> dict[str, Any]:
        """What the server should know about this worker's engine (sent once, with ready)."""
        return {}


def _internal() -> Any:
    import grpc

    return grpc.StatusCode.INTERNAL


def serve(conn: Connection, make_worker: Callable[[Send], StreamWorker]) -> None:
    """Entry point of a worker process: build the worker, then serve commands until ``stop`` or EOF.

    If building the worker fails with ``ServiceError`` or ``StartError`` (a
    model that does not load, say), the server hears ``("failed", message)``
    instead of ``("ready", pid, info)`` and refuses to start with that message.
    """
    # The server handles Ctrl-C and SIGTERM and stops workers itself; a
    # worker killed by the terminal's SIGINT first would lose streams.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=os.environ.get("TONGYEOK_LOG_LEVEL", "WARNING"))
    try:
        worker = make_worker(conn.send)
    except (ServiceError, StartError) as exc:
        conn.send(("failed", str(exc)))
        return
    conn.send(("ready", os.getpid(), worker.info()))
    did_work = False
    try:
        while True:
            # Messages first; idle work only when none is waiting.
            if conn.poll(0 if did_work else 0.05):
                if not worker.handle(conn.recv()):
                    break
                did_work = True
            else:
                did_work = worker.idle()
    except (EOFError, OSError):
        pass  # the server went away: nothing left to serve
