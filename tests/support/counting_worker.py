"""A recogniser worker process for tests of ``worker_pool``: it counts each stream's audio bytes.

On ``finish`` it reports the count as the stream's final (``"<n> bytes"``),
so a test sees exactly which audio reached the worker before the finish. It
handles no audio while ``gate`` (a spawn-context ``Event``) is clear: the
worker then stops reading its pipe, which fills.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any

from tongyeok_server.recognition.base import RecognitionEnded, Transcript
from tongyeok_server.recognition.worker_process import Send, StreamWorker, serve


class CountingWorker(StreamWorker):
    name = "counting"

    def __init__(self, send: Send, gate: Any) -> None:
        super().__init__(send)
        self._gate = gate
        self._counts: dict[int, int] = {}

    def open(self, sid: int, *args: Any) -> None:
        self._counts[sid] = 0

    def audio(self, sid: int, data: bytes) -> None:
        self._gate.wait()
        if sid in self._counts:
            self._counts[sid] += len(data)

    def finish(self, sid: int) -> None:
        count = self._counts.pop(sid, 0)
        self.emit(sid, Transcript(f"{count} bytes", "en-US", True, 0.0, 0.0))
        self.emit(sid, RecognitionEnded())

    def release(self, sid: int) -> None:
        self._counts.pop(sid, None)


def run(conn: Connection, gate: Any) -> None:
    """The worker process's entry point."""
    serve(conn, lambda send: CountingWorker(send, gate))
