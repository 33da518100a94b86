"""An event loop on a thread of the test's own, standing for the server's loop.

Engines live on the server's event loop and are opened from coroutines on
it; a test written as plain blocking code opens them through this (a thread
named ``test-loop``), which stands for the loop ``main`` runs with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
NAME = "test-loop"


class LoopThread:
    """A running event loop on its own thread; ``call``/``run`` execute there and return the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=NAME, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the loop and wait for its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Call ``function(*args)`` on the loop (inside a task) and return what it returned."""

        async def call() -> T:
            return function(*args)

        return self.run(call())

    def close(self) -> None:
        """Cancel what still runs, stop the loop and join the thread."""

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            self.run(cancel_rest())
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@contextmanager
def loop_thread() -> Iterator[LoopThread]:
    """A ``LoopThread`` for the block."""
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()
