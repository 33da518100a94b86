"""Events from any thread to one coroutine on the server's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class EventChannel(Generic[T]):
    """An unbounded FIFO whose reader awaits on an event loop and whose writers may be on any thread.

    Writers on the loop itself (the Google recogniser, the servicer) append
    directly; writers on other threads (pocketsphinx's reader, translation
    threads) hand the item to the loop with ``call_soon_threadsafe``, which
    keeps each writer's items in order. Unbounded because every producer is
    bounded by something else: audio by the caller's pace and flow control,
    tokens by the length of a sentence.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_item: Callable[[T], None] | None = None, *, queue: bool = True
    ) -> None:
        """Make a channel read on ``loop``; must be called on the loop's thread.

        ``on_item``, if given, is called on the loop with each item right
        after it is queued, in queue order (a session's observers). With
        ``queue=False`` nothing is queued: ``on_item`` is the only reader (a
        session keeps its events in its ``EventLog`` instead).
        """
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._queue: asyncio.Queue[T] | None = asyncio.Queue() if queue else None
        self._on_item = on_item

    def put(self, item: T) -> None:
        """Queue ``item``; never blocks. Dropped if the loop has been closed (nobody is reading)."""
        if threading.get_ident() == self._loop_thread:
            self._accept(item)
            return
        # A closed loop means the server has stopped, and the reader with it.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._accept, item)

    def _accept(self, item: T) -> None:
        # Queued before on_item runs, so that an item on_item puts (from the loop) comes after this one.
        if self._queue is not None:
            self._queue.put_nowait(item)
        if self._on_item is not None:
            self._on_item(item)

    async def get(self) -> T:
        """The next item, waiting for one."""
        assert self._queue is not None, "a channel made with queue=False has no items to get"
        return await self._queue.get()
