"""What follows a session besides its caller: the meeting record, speech output, metrics.

An observer sees every event of one session exactly once, in the order the
caller gets them, on the server's event loop, starting with the first event
after ``session_started``; ``End`` is the last. It must return quickly: work
that waits (a database write, speech synthesis) goes to a queue or thread of
the observer's own. An observer may add events to the session with
``Session.emit`` (from any thread); they come after the event being
observed. A failing observer is logged and detached; it never breaks the
session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tongyeok_server.session import events as ev


class SessionObserver:
    """Follows one session; override what you need."""

    def on_event(self, event: ev.SessionEvent) -> None:
        """One event of the session, on the server's event loop."""

    def on_audio(self, audio: bytes) -> None:
        """A chunk of the caller's audio as the session took it (caller's format), on the loop, in order."""

    def on_delivered(self, event: ev.SessionEvent) -> None:
        """``event`` (one ``on_event`` has seen) has been written to the caller's stream, on the loop.

        Optional, for measuring (the metrics' added latency): only observers
        that override it are called, and an event the caller never got (the
        stream ended first, ``End`` itself) is never reported. Nothing may
        depend on it for correctness.
        """

    def on_close(self) -> None:
        """The session is released (its stream is over and everything it started has stopped)."""


class EventSink(Protocol):
    """What an observer may do to the call it follows (a ``Session``, or one TranslateText request)."""

    def emit(self, event: ev.SessionEvent) -> None:
        """Send ``event`` to the caller, after the event being observed (any thread)."""

    def hold(self) -> Callable[[], None]:
        """Keep the call from ending until the returned function is called (once, any thread)."""
