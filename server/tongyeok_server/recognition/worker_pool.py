"""A pool of recogniser worker processes, shared by the embedded engines (pocketsphinx, Whisper).

An embedded decoder holds a core (and the GIL) while it decodes, so decoding
in threads of the server process would serialise every stream on one core.
Each worker is a process of its own (see ``worker_process``); the pool pins
each stream to one worker for its lifetime (a decoder's state cannot move
between processes). A worker serves at most ``streams_per_worker`` streams,
chosen so that it keeps up with real time; beyond the pool's slots a new
stream is refused with RESOURCE_EXHAUSTED rather than accepted and served
late.

Threads in the server process, two per worker (a fixed number, not one per
stream): a reader blocks on the worker's pipe and hands each event to the
server's event loop, where the stream's listener runs: listeners are called
on the loop, as the ``Recognizer`` contract says, and a stream cancelled on
the loop gets nothing after its cancel. A writer sends the worker's messages
(open, audio, finish, cancel, stop) in the order they were posted, so the
loop never writes to a pipe (a full one would stall it) and a ``finish``
posted after audio reaches the worker after that audio, whichever call
returns first. ``write_async`` returns once its audio is written: when a
worker falls behind, the pipe fills, the writer waits, and gRPC flow control
slows the caller down instead of buffering without bound (at most one chunk
per stream waits in a writer's queue).

Messages to a worker (tuples): ``("open", sid, *engine_args)``,
``("audio", sid, bytes)``, ``("finish", sid)``, ``("cancel", sid)``,
``("stop",)``. From a worker: ``("ready", pid, info)`` or ``("failed", message)``
once at start, then ``(sid, event)`` with the events of ``recognition.base``;
``RecognitionEnded`` is the last one of a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import grpc

from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import (
    RecognitionEnded,
    RecognitionEvent,
    RecognitionListener,
    RecognizerStream,
)

log = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """A worker could not start (its model failed to load, say); the message says why."""


class _WorkerHandle:
    """The server side of one worker process."""

    def __init__(self, name: str, index: int, ctx: Any, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.name = name
        self.index = index
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=target, args=(child, *args), name=f"tongyeok-{name}-{index}", daemon=True)
        self.process.start()
        child.close()
        # The writer's queue: (message, called once it is written or dropped), or None to end.
        self._outbox: queue.SimpleQueue[tuple[tuple[Any, ...], Callable[[], None] | None] | None] = queue.SimpleQueue()
        self._outbox_lock = threading.Lock()  # a post is queued before the writer's end, or refused
        self._outbox_closed = False
        self._writer: threading.Thread | None = None
        #: Open streams' listeners by stream id; changed and called on the loop only.
        self.listeners: dict[int, RecognitionListener] = {}
        self.alive = True
        self.info: dict[str, Any] = {}

    def wait_ready(self) -> None:
        try:
            message = self.conn.recv()
        except EOFError:
            raise WorkerStartError(
                f"{self.name} worker {self.index} exited while starting (its error is printed above); "
                "a program that embeds the server must start it under `if __name__ == '__main__':`"
            ) from None
        if message[0] == "failed":
            raise WorkerStartError(str(message[1]))
        if message[0] != "ready":
            raise WorkerStartError(f"{self.name} worker {self.index} sent {message!r} instead of ready")
        self.info = message[2]

    def start_writer(self, on_broken: Callable[[], None]) -> None:
        """Start the thread that sends posted messages in order; ``on_broken`` (on that thread) if the pipe breaks."""
        self._writer = threading.Thread(
            target=self._write_all, args=(on_broken,), name=f"{self.name}-writer-{self.index}", daemon=True
        )
        self._writer.start()

    def post(self, message: tuple[Any, ...], done: Callable[[], None] | None = None) -> None:
        """Queue ``message`` for the worker (any thread, never blocks); ``done()`` once it is written or dropped."""
        with self._outbox_lock:
            if not self._outbox_closed:
                self._outbox.put((message, done))
                return
        if done is not None:  # the pool is closing: nothing reaches the worker any more
            done()

    def _write_all(self, on_broken: Callable[[], None]) -> None:
        broken = False
        while (item := self._outbox.get()) is not None:
            message, done = item
            if not broken:
                try:
                    self.conn.send(message)  # blocks while the worker's pipe is full
                except (OSError, ValueError):  # the worker died (or the pipe was closed)
                    broken = True
                    on_broken()
            if done is not None:  # after a break too: nobody waits forever
                done()

    def stop(self) -> None:
        """Post ``stop`` after everything posted so far, then end the writer."""
        if self._writer is None:  # never started (the pool failed to start): send directly
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(("stop",))
            return
        self.post(("stop",))
        with self._outbox_lock:
            self._outbox_closed = True
            self._outbox.put(None)

    def reap(self) -> None:
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        if self._writer is not None:  # a killed worker's pipe is broken: the writer drops the rest and ends
            self._writer.join(timeout=5)
        self.conn.close()


class PooledStream(RecognizerStream):
    """A stream pinned to one worker process."""

    def __init__(self, worker: _WorkerHandle, sid: int) -> None:
        self._worker = worker
        self._sid = sid
        self._closed = False

    def write(self, audio: bytes) -> None:
        """Queue audio from a thread other than the loop's; returns once it is written to the worker's pipe."""
        if not self._closed:
            written = threading.Event()
            self._worker.post(("audio", self._sid, audio), written.set)
            written.wait()

    async def write_async(self, audio: bytes) -> None:
        """Queue audio in order; returns once it is written to the worker's pipe (the loop never waits on it)."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._worker.post(("audio", self._sid, audio), lambda: _resolve_on(loop, written))
        await written  # cancelled meanwhile: the audio still goes out, in its place

    def finish(self) -> None:
        """No more audio: posted behind the audio already queued, so its words are kept. Never blocks."""
        if not self._closed:
            self._closed = True
            self._worker.post(("finish", self._sid))

    def cancel(self) -> None:
        """Forget the stream now (no event after this returns); the worker is told in order. Never blocks."""
        # Listener first: after cancel() no event may reach the session.
        if self._worker.listeners.pop(self._sid, None) is not None:
            self._closed = True
            self._worker.post(("cancel", self._sid))


def _resolve_on(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """From the writer thread: resolve ``future`` on its loop (a closed loop: the server has stopped)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # its waiter was cancelled meanwhile
        future.set_result(None)


class WorkerPool:
    """``workers`` processes running ``target(conn, *args)``, each serving ``streams_per_worker`` streams.

    ``name`` names the engine in process names, logs and messages;
    ``capacity_hint`` tells a refused caller which flags give more slots.
    """

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        args: tuple[Any, ...],
        workers: int,
        streams_per_worker: int,
        capacity_hint: str,
    ) -> None:
        self.name = name
        self.streams_per_worker = streams_per_worker
        self._capacity_hint = capacity_hint
        # spawn, not fork: forking a process that runs gRPC threads is unsafe.
        ctx = multiprocessing.get_context("spawn")
        # All workers start at once (model loads overlap), then each is waited for.
        self._workers = [_WorkerHandle(name, i, ctx, target, args) for i in range(workers)]
        try:
            for worker in self._workers:
                worker.wait_ready()
        except WorkerStartError:
            for worker in self._workers:
                worker.stop()
            for worker in self._workers:
                worker.reap()
            raise
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # the streams' (the server's), set by the first open
        self._readers = [
            threading.Thread(target=self._read, args=(w,), name=f"{name}-reader-{w.index}", daemon=True)
            for w in self._workers
        ]
        for reader in self._readers:
            reader.start()
        for worker in self._workers:
            worker.start_writer(functools.partial(self._on_loop, self._worker_died, worker))
        log.info("%s: %d worker processes x %d streams", name, workers, streams_per_worker)

    @property
    def workers(self) -> int:
        """How many worker processes the pool runs."""
        return len(self._workers)

    @property
    def info(self) -> dict[str, Any]:
        """What the workers said about their engine when they started (see ``StreamWorker.info``)."""
        return self._workers[0].info

    @property
    def capacity(self) -> int:
        """How many streams the pool serves at once."""
        return len(self._workers) * self.streams_per_worker

    def open(self, listener: RecognitionListener, *open_args: Any) -> PooledStream:
        """Pin a new stream to the least busy worker (on the server's loop); RESOURCE_EXHAUSTED when full."""
        self._loop = asyncio.get_running_loop()  # where the readers deliver events
        with self._lock:
            alive = [w for w in self._workers if w.alive]
            if not alive:
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE, f"the offline recogniser's ({self.name}) worker processes have stopped"
                )
            worker = min(alive, key=lambda w: len(w.listeners))
            if len(worker.listeners) >= self.streams_per_worker:
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"all {self.capacity} offline recognition slots are busy ({self.name}: "
                    f"{len(self._workers)} workers x {self.streams_per_worker} streams); try again later, "
                    f"or start the server with {self._capacity_hint}",
                )
            sid = next(self._ids)
            worker.listeners[sid] = listener
        worker.post(("open", sid, *open_args))
        return PooledStream(worker, sid)

    def _read(self, worker: _WorkerHandle) -> None:
        """The reader thread: each event of the worker's to the loop, in order."""
        conn: Connection = worker.conn
        while True:
            try:
                sid, event = conn.recv()
            except (EOFError, OSError):
                self._on_loop(self._worker_died, worker)
                return
            self._on_loop(self._deliver, worker, sid, event)

    def _on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:  # no stream was ever opened: no listener to call, only the worker's state to mark
            callback(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
            loop.call_soon_threadsafe(callback, *args)

    @staticmethod
    def _deliver(worker: _WorkerHandle, sid: int, event: RecognitionEvent) -> None:
        """On the loop: a stream cancelled since the worker sent this has no listener any more."""
        listener = worker.listeners.pop(sid, None) if isinstance(event, RecognitionEnded) else worker.listeners.get(sid)
        if listener is not None:
            listener(event)

    def _worker_died(self, worker: _WorkerHandle) -> None:
        """On the loop (or at once when no stream was ever opened)."""
        with self._lock:
            if not worker.alive:
                return
            worker.alive = False
            orphans = list(worker.listeners.items())
            worker.listeners.clear()
        if orphans:
            log.error("%s worker %d died with %d open streams", self.name, worker.index, len(orphans))
        error = ServiceError(
            grpc.StatusCode.UNAVAILABLE, f"the offline recogniser process ({self.name}) serving this stream stopped"
        )
        for _, listener in orphans:
            listener(RecognitionEnded(error))

    def close(self) -> None:
        """Stop every worker (they finish the message at hand) and wait for them."""
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            worker.reap()
