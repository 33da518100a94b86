"""The embedded recogniser: pocketsphinx in a pool of worker processes.

Each stream is pinned to one worker for its lifetime (a decoder's state
cannot move between processes). A worker serves at most
``offline_streams_per_worker`` streams, chosen so that it keeps up with real
time (pocketsphinx needs about 0.1-0.25 of a core per stream); beyond the
pool's slots a new stream is refused with RESOURCE_EXHAUSTED rather than
accepted and served late.

Threads in the server process: one reader per worker routes the worker's
events to the streams' listeners. Writes to a worker's pipe are serialised
by a lock; when a worker falls behind, the pipe fills, ``write`` blocks, and
gRPC flow control slows the caller down instead of buffering without bound.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import grpc

from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition import pocketsphinx_worker
from tongyeok_server.recognition.base import (
    EngineDescription,
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    RecognitionListener,
    Recognizer,
    RecognizerStream,
)
from tongyeok_server.settings import ServerSettings

log = logging.getLogger(__name__)


class _WorkerHandle:
    """The server side of one worker process."""

    def __init__(self, index: int, ctx: Any) -> None:
        self.index = index
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=pocketsphinx_worker.run, args=(child,), name=f"tongyeok-pocketsphinx-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.send_lock = threading.Lock()
        self.listeners: dict[int, RecognitionListener] = {}
        self.alive = True

    def wait_ready(self) -> None:
        try:
            message = self.conn.recv()
        except EOFError:
            raise RuntimeError(
                f"pocketsphinx worker {self.index} exited while starting (its error is printed above); "
                "a program that embeds the server must start it under `if __name__ == '__main__':`"
            ) from None
        if message[0] != "ready":
            raise RuntimeError(f"pocketsphinx worker {self.index} sent {message!r} instead of ready")

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)


class PocketsphinxStream(RecognizerStream):
    """A stream pinned to one worker process."""

    def __init__(self, engine: PocketsphinxRecognizer, worker: _WorkerHandle, sid: int) -> None:
        self._engine = engine
        self._worker = worker
        self._sid = sid
        self._closed = False

    def write(self, audio: bytes) -> None:
        if not self._closed:
            self._engine._send(self._worker, ("audio", self._sid, audio))

    def finish(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine._send(self._worker, ("finish", self._sid))

    def cancel(self) -> None:
        # Listener first: after cancel() no event may reach the session.
        if self._worker.listeners.pop(self._sid, None) is not None:
            self._closed = True
            self._engine._send(self._worker, ("cancel", self._sid))


class PocketsphinxRecognizer(Recognizer):
    """US-English recognition with the model that ships in the pocketsphinx wheel."""

    def __init__(self, workers: int, streams_per_worker: int) -> None:
        self.streams_per_worker = streams_per_worker
        # spawn, not fork: forking a process that runs gRPC threads is unsafe.
        ctx = multiprocessing.get_context("spawn")
        self._workers = [_WorkerHandle(i, ctx) for i in range(workers)]
        for worker in self._workers:
            worker.wait_ready()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(w,), name=f"pocketsphinx-reader-{w.index}", daemon=True)
            for w in self._workers
        ]
        for reader in self._readers:
            reader.start()
        log.info("pocketsphinx: %d worker processes x %d streams", workers, streams_per_worker)

    @property
    def description(self) -> EngineDescription:
        return EngineDescription("pocketsphinx", "CMU US-English model, offline")

    @property
    def capacity(self) -> int:
        """How many streams the pool serves at once."""
        return len(self._workers) * self.streams_per_worker

    def language_codes(self) -> Sequence[str]:
        return [pocketsphinx_worker.LANGUAGE_CODE]

    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        with self._lock:
            alive = [w for w in self._workers if w.alive]
            if not alive:
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE, "the offline recogniser's worker processes have stopped"
                )
            worker = min(alive, key=lambda w: len(w.listeners))
            if len(worker.listeners) >= self.streams_per_worker:
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"all {self.capacity} offline recognition slots are busy "
                    f"({len(self._workers)} workers x {self.streams_per_worker} streams); try again later, "
                    "or start the server with more --offline-workers or --offline-streams-per-worker",
                )
            sid = next(self._ids)
            worker.listeners[sid] = listener
        spec: AudioSpec = config.audio
        self._send(worker, ("open", sid, spec, config.interim_results, config.voice_activity_events))
        return PocketsphinxStream(self, worker, sid)

    def _send(self, worker: _WorkerHandle, message: tuple[Any, ...]) -> None:
        try:
            worker.send(message)
        except (OSError, ValueError):
            self._worker_died(worker)

    def _read(self, worker: _WorkerHandle) -> None:
        conn: Connection = worker.conn
        while True:
            try:
                sid, event = conn.recv()
            except (EOFError, OSError):
                self._worker_died(worker)
                return
            self._deliver(worker, sid, event)

    @staticmethod
    def _deliver(worker: _WorkerHandle, sid: int, event: RecognitionEvent) -> None:
        listener = worker.listeners.pop(sid, None) if isinstance(event, RecognitionEnded) else worker.listeners.get(sid)
        if listener is not None:
            listener(event)

    def _worker_died(self, worker: _WorkerHandle) -> None:
        with self._lock:
            if not worker.alive:
                return
            worker.alive = False
            orphans = list(worker.listeners.items())
            worker.listeners.clear()
        if orphans:
            log.error("pocketsphinx worker %d died with %d open streams", worker.index, len(orphans))
        error = ServiceError(grpc.StatusCode.UNAVAILABLE, "the offline recogniser process serving this stream stopped")
        for _, listener in orphans:
            listener(RecognitionEnded(error))

    def close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.send(("stop",))
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def create(settings: ServerSettings) -> Recognizer:
    """Factory used by the registry."""
    return PocketsphinxRecognizer(settings.offline_workers, settings.offline_streams_per_worker)
