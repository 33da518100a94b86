"""The sessions of one server process, and what each is attached to.

A session is *attached* while a stream reads its events and *detached* when
that stream broke (for a session that can be resumed): it then goes on with
the audio it has, its events wait in its log, and it is kept for the resume
window. A resume attaches a new stream (superseding any stream still
attached, whose connection the caller has obviously left). When the window
runs out the session is finished normally (its last sentence finalised and
translated, so the record is complete) and released. A session is released
once: its end (however it came) is delivered, or nobody came back for it.

Everything here runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from tongyeok_server.errors import ServiceError
from tongyeok_server.session.session import Session

log = logging.getLogger(__name__)

MAX_REMEMBERED = 10_000

EXPIRED = (
    "the session was not resumed within its resume window of {window:g} s; its last sentence was finished; "
    "start a new session"
)


@dataclass
class Attachment:
    """One stream reading one session; ``superseded`` is set when another stream takes the session over."""

    peer: str
    superseded: asyncio.Event = field(default_factory=asyncio.Event)
    reached_end: bool = False  # the stream read the session's End


@dataclass
class Managed:
    """A session and its state in the registry."""

    session: Session
    resumable: bool
    attachment: Attachment | None = None
    detached_at: float | None = None
    resumes: int = 0
    expiry: asyncio.TimerHandle | None = None
    released: bool = False
    extra: dict[str, object] = field(
        default_factory=dict
    )  # what the edge keeps with a session (its config's wire form)


class SessionRegistry:
    """The sessions of one process (see the module docstring)."""

    def __init__(self, resume_window_s: float, on_release: Callable[[Managed], None]) -> None:
        self.resume_window_s = resume_window_s
        self._on_release = on_release
        self._sessions: dict[str, Managed] = {}
        # Why recent sessions ended, so that a late resume hears why (bounded; oldest forgotten first).
        self._ended: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> Managed | None:
        """The live session with this id, if this process holds it."""
        return self._sessions.get(session_id)

    def all(self) -> list[Managed]:
        """Every session held, attached or not."""
        return list(self._sessions.values())

    def add(self, session: Session, resumable: bool) -> Managed:
        """Hold a new session (not yet attached)."""
        managed = Managed(session, resumable and self.resume_window_s > 0)
        self._sessions[session.id] = managed
        session.ended.add_done_callback(lambda _f: self._on_session_end(managed))
        return managed

    def attach(self, managed: Managed, peer: str) -> Attachment:
        """A stream reads ``managed`` from now on; a stream still attached is superseded."""
        if managed.attachment is not None:
            managed.attachment.superseded.set()
            managed.session.log.wake()
        if managed.expiry is not None:
            managed.expiry.cancel()
            managed.expiry = None
        if managed.detached_at is not None:
            managed.resumes += 1
        if managed.detached_at is not None:
            managed.session.caller_away(False)
        managed.detached_at = None
        managed.attachment = Attachment(peer)
        managed.session.last_audio_at = time.monotonic()  # the idle timeout counts from the new stream
        return managed.attachment

    def stream_ended(self, managed: Managed, attachment: Attachment, *, delivered_end: bool) -> None:
        """The stream of ``attachment`` is over: it delivered the session's end, or it broke."""
        if managed.attachment is not attachment:
            return  # superseded: the session lives on with its new stream
        managed.attachment = None
        if delivered_end or not managed.resumable or managed.released:
            self.release(managed)
            return
        managed.detached_at = time.monotonic()
        managed.session.caller_away(True)
        loop = asyncio.get_running_loop()
        managed.expiry = loop.call_later(self.resume_window_s, self._expire, managed)
        log.info(
            "session %s: its stream broke (peer %s); the session goes on and can be resumed for %g s",
            managed.session.id,
            attachment.peer,
            self.resume_window_s,
        )

    def detached_for(self, managed: Managed) -> float:
        """Seconds since the session lost its stream (0 if attached)."""
        return 0.0 if managed.detached_at is None else time.monotonic() - managed.detached_at

    def _expire(self, managed: Managed) -> None:
        managed.expiry = None
        if managed.attachment is not None or managed.released:
            return
        session = managed.session
        if session.ended.done():
            self.release(managed)
            return
        log.info("session %s: not resumed within %g s; finishing it", session.id, self.resume_window_s)
        session.caller_away(False)  # nobody will resend: what it heard is all there is
        if session.outcome == "open":
            session.outcome = "expired"  # what the end line says (nobody receives the status)
        # Finished, not cancelled: the last sentence is finalised and translated, so the record is complete.
        session.finish_with(ServiceError(grpc.StatusCode.NOT_FOUND, EXPIRED.format(window=self.resume_window_s)))
        managed.extra["expired"] = True

    def _on_session_end(self, managed: Managed) -> None:
        # A detached session that ended (finished, failed) waits out its window for a resume to fetch its end,
        # unless the window has already run out.
        if managed.attachment is None and managed.detached_at is not None and managed.extra.get("expired"):
            self.release(managed)

    def release(self, managed: Managed) -> None:
        """Let go of the session for good (idempotent)."""
        if managed.released:
            return
        managed.released = True
        if managed.expiry is not None:
            managed.expiry.cancel()
            managed.expiry = None
        self._sessions.pop(managed.session.id, None)
        expired = bool(managed.extra.get("expired"))
        self._ended[managed.session.id] = ("expired" if expired else managed.session.outcome, time.monotonic())
        while len(self._ended) > MAX_REMEMBERED:
            self._ended.popitem(last=False)
        self._on_release(managed)

    def why_ended(self, session_id: str) -> tuple[str, float] | None:
        """How a session this process released recently ended (``"expired"`` or its outcome) and how long ago."""
        found = self._ended.get(session_id)
        return None if found is None else (found[0], time.monotonic() - found[1])
