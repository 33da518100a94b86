"""The events of one TranslateText request: translation jobs and observers write, the RPC reads.

A small cousin of ``Session`` for a request that has no audio: the same
``EventChannel`` (any thread in, the loop out), observers that see every
event in order and ``End`` last (the speech of the translations follows
them), and holds that keep the request open until an observer's work is
done.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable

from tongyeok_server.session import events as ev
from tongyeok_server.session.event_channel import EventChannel
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.once import call_once

log = logging.getLogger(__name__)


class _Done:
    """A translation job ended, or a hold was released."""


_DONE = _Done()


class TextRequest:
    """One TranslateText request's events; create it on the server's event loop."""

    def __init__(self, jobs: int) -> None:
        self._observers: list[SessionObserver] = []
        self._events: EventChannel[ev.SessionEvent | _Done] = EventChannel(asyncio.get_running_loop(), self._observe)
        self._lock = threading.Lock()
        self._open = jobs  # translation jobs and holds not yet done

    def add_observer(self, observer: SessionObserver) -> None:
        """Let ``observer`` follow this request (before the translations start)."""
        self._observers.append(observer)

    def emit(self, event: ev.SessionEvent) -> None:
        """An event for the caller (any thread)."""
        self._events.put(event)

    def job_done(self) -> None:
        """One translation job has ended (any thread)."""
        self._events.put(_DONE)

    def hold(self) -> Callable[[], None]:
        """Keep the request open until the returned function is called (once, any thread)."""
        with self._lock:
            self._open += 1
        return call_once(lambda: self._events.put(_DONE))

    async def events(self) -> AsyncIterator[ev.SessionEvent]:
        """The caller's events, until every job and hold is done; then the observers see ``End``."""
        while True:
            with self._lock:
                if self._open == 0:
                    break
            item = await self._events.get()
            if isinstance(item, _Done):
                with self._lock:
                    self._open -= 1
            else:
                yield item
        self._observe(ev.End())

    def close(self) -> None:
        """The RPC is over, however it ended: the observers' ``on_close``."""
        observers, self._observers = self._observers, []
        for observer in observers:
            try:
                observer.on_close()
            except Exception:
                log.exception("translate request: observer %s failed on close", type(observer).__name__)

    def _observe(self, item: ev.SessionEvent | _Done) -> None:
        if isinstance(item, _Done):
            return
        for observer in list(self._observers):
            try:
                observer.on_event(item)
            except Exception:
                log.exception("translate request: observer %s failed; detached", type(observer).__name__)
                self._observers.remove(observer)
