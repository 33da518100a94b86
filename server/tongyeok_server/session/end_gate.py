"""When a session may end: its recognition finished, no translation pending, no observer's hold left.

Recognition and translations count on the loop (the session runs them
there). A hold may be released from any thread (an observer's worker); each
change counts only on the event loop, after the events the same thread
emitted before it: ``call_soon_threadsafe`` keeps one thread's callbacks in
order. Counted on the thread itself, a check another thread had queued could
find nothing left to wait for and end the stream before that thread's last
events (a language's last audio chunk) reached the caller.

Translations are *expected* before the final that starts them is emitted,
so that no check can run between the final and its translations.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from tongyeok_server.session.once import call_once


class EndGate:
    """Counts what a session waits for before it ends; calls ``when_open`` (on the loop) once nothing is left.

    Create it on the session's event loop. ``when_open`` may be called
    more than once (the session's end is idempotent).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, when_open: Callable[[], None]) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._when_open = when_open
        self._lock = threading.Lock()
        self._recognition_done = False
        self._pending_translations = 0
        self._holds = 0

    def hold(self) -> Callable[[], None]:
        """Keep the gate shut until the returned function is called (once, from any thread)."""
        with self._lock:
            self._holds += 1
        return call_once(lambda: self.on_loop(self._released))

    def expect_translations(self, count: int) -> None:
        """``count`` translations will follow (any thread, before the final that starts them is emitted)."""
        with self._lock:
            self._pending_translations += count

    def translation_done(self) -> None:
        """One expected translation is over (any thread, after its last event)."""
        self.on_loop(self._translated)

    def recognition_finished(self) -> None:
        """The recogniser will deliver nothing more (any thread, after its last event)."""
        self.on_loop(self._recognised)

    def on_loop(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the loop: now when called there, else after what this thread has queued."""
        if threading.get_ident() == self._loop_thread:
            work()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(work)

    def _released(self) -> None:
        with self._lock:
            self._holds -= 1
        self._check()

    def _translated(self) -> None:
        with self._lock:
            self._pending_translations -= 1
        self._check()

    def _recognised(self) -> None:
        with self._lock:
            self._recognition_done = True
        self._check()

    def _check(self) -> None:
        with self._lock:
            is_open = self._recognition_done and self._pending_translations == 0 and self._holds == 0
        if is_open:
            self._when_open()
