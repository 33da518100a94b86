"""A ``grpc.aio`` fake served from an event loop on a thread of its own, for plain synchronous tests.

``serve(port)`` (the subclass's) starts the server on the running loop;
``start()`` runs it in a thread, ``stop()`` ends that thread, and ``with
Fake() as fake:`` does both. The benchmark runs the same fakes as processes
through ``serve``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Self

import grpc
import grpc.aio


class AioFake:
    """The thread and loop around a fake's ``serve``."""

    thread_name = "fake"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._grace: float | None = 0
        self.port = 0

    @property
    def address(self) -> str:
        """``127.0.0.1:port`` once started."""
        return f"127.0.0.1:{self.port}"

    async def serve(self, port: int = 0) -> grpc.aio.Server:
        """Start serving on 127.0.0.1 on the running event loop (``port`` 0 picks a free one)."""
        raise NotImplementedError

    async def listen(
        self, server: grpc.aio.Server, port: int, server_credentials: grpc.ServerCredentials | None
    ) -> grpc.aio.Server:
        """Bind ``server`` to 127.0.0.1 (TLS with ``server_credentials``, else plaintext) and start it."""
        if server_credentials is not None:
            self.port = server.add_secure_port(f"127.0.0.1:{port}", server_credentials)
        else:
            self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        return server

    def start(self, port: int = 0) -> Self:
        """Serve on 127.0.0.1 (``port`` 0 picks a free one) from an event loop on a thread of its own."""
        if self._thread is not None:
            raise RuntimeError("the fake is already serving")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(target=self._run, args=(port, ready), name=self.thread_name, daemon=True)
        thread.start()
        try:
            ready.result(timeout=30)
        except BaseException:
            thread.join(5)
            raise
        self._thread = thread
        return self

    def stop(self, grace: float | None = 0) -> None:
        """Stop serving (in-process), ending the calls still open after ``grace`` seconds."""
        thread, loop, requested = self._thread, self._loop, self._stop_requested
        if thread is None or loop is None or requested is None:
            return
        self._grace = grace
        loop.call_soon_threadsafe(requested.set)
        thread.join()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, port: int, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve_until_stopped(port, ready))
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                raise
        finally:
            loop.close()

    async def _serve_until_stopped(self, port: int, ready: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        server = await self.serve(port)
        ready.set_result(None)
        try:
            await self._stop_requested.wait()
        finally:
            await server.stop(self._grace)
