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

import logging
from collections.abc import Callable
from typing import Protocol

from tongyeok_server.session import events as ev

log = logging.getLogger(__name__)


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


class ObserverList:
    """One session's observers: each call reaches every one; one that raises is logged and detached."""

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._all: list[SessionObserver] = []
        self._delivery: list[SessionObserver] = []  # those that override on_delivered
        self._audio: list[SessionObserver] = []  # those that override on_audio (called per chunk)

    def __bool__(self) -> bool:
        return bool(self._all)

    def add(self, observer: SessionObserver) -> None:
        """Follow the session from now on."""
        self._all.append(observer)
        if type(observer).on_delivered is not SessionObserver.on_delivered:
            self._delivery.append(observer)
        if type(observer).on_audio is not SessionObserver.on_audio:
            self._audio.append(observer)

    @property
    def want_audio(self) -> bool:
        """Whether any observer takes the caller's audio (the record does; the metrics do not)."""
        return bool(self._audio)

    def event(self, event: ev.SessionEvent) -> None:
        """``on_event`` for each observer (once per event of the session: no closure made for it)."""
        for observer in list(self._all):
            try:
                observer.on_event(event)
            except Exception:
                self._detach(observer)

    def audio(self, audio: bytes) -> None:
        """``on_audio`` for the observers that override it (once per chunk: the others are not called)."""
        for observer in list(self._audio):
            try:
                observer.on_audio(audio)
            except Exception:
                self._detach(observer)

    def delivered(self, event: ev.SessionEvent) -> None:
        """``on_delivered`` for the observers that ask for it."""
        for observer in list(self._delivery):
            try:
                observer.on_delivered(event)
            except Exception:
                self._detach(observer)

    def close(self) -> None:
        """``on_close`` once for each, and forget them all."""
        observers, self._all, self._delivery, self._audio = self._all, [], [], []
        for observer in observers:
            try:
                observer.on_close()
            except Exception:
                log.exception("session %s: observer %s failed on close", self._session_id, type(observer).__name__)

    def _detach(self, observer: SessionObserver) -> None:
        """Called from an ``except`` block: log the observer's failure and forget it."""
        # A bug in a follower (record, speech, metrics) must not cost the caller the meeting.
        log.exception("session %s: observer %s failed; detached", self._session_id, type(observer).__name__)
        for observers in (self._all, self._delivery, self._audio):
            if observer in observers:
                observers.remove(observer)
