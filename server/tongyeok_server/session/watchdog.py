"""Ends streams that hold an engine slot without using it, or that run past the longest allowed.

A stream that sends no audio for ``idle_timeout_s`` (a client that sent its
config and went quiet, a stuck uploader) or that has lasted
``max_duration_s`` is finished the way a shutdown finishes it: no more
audio taken, the sentence heard so far finalised and translated, then
OUT_OF_RANGE with a message saying which limit and what to do. (OUT_OF_RANGE
is what Google's Speech-to-Text answers for the same two cases, so callers
that handle one handle both.) Meetings have pauses, but a client streaming a
microphone sends its silence too, so only a caller that sends nothing at
all is idle. One task checks every stream about four times per timeout; no
timer per stream or per chunk. A stream that has not sent its first message
(config or resume) within ``first_message_timeout_s`` has no session yet:
the stream's own wait for that message times out (``api/interpret.py``),
with OUT_OF_RANGE too. A stream whose caller's API key was revoked is
finished the same way, with UNAUTHENTICATED (``revoked``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc

from tongyeok_server.auth.caller import Caller
from tongyeok_server.errors import ServiceError
from tongyeok_server.session.session import Session

#: Whether a caller's credential was revoked since its stream opened: the error to end the stream with, or None.
Revoked = Callable[[Caller], ServiceError | None]

log = logging.getLogger(__name__)


class StreamWatchdog:
    """Watches open sessions for the idle timeout and the maximum duration (0 turns either off)."""

    def __init__(
        self,
        idle_timeout_s: float,
        max_duration_s: float,
        first_message_timeout_s: float = 10.0,
        revoked: Revoked | None = None,
    ) -> None:
        """``revoked``: asked about each stream's caller at every check (the authenticator's, when there is one)."""
        self.idle_timeout_s = idle_timeout_s
        self.max_duration_s = max_duration_s
        #: How long a stream may stay open before its first message (the stream waits for it with this timeout).
        self.first_message_timeout_s = first_message_timeout_s
        self._revoked = revoked
        limits = [t for t in (idle_timeout_s, max_duration_s) if t > 0]
        self._period_s = min([1.0, *(t / 4 for t in limits)])
        self._sessions: set[Session] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, session: Session) -> None:
        """Start watching ``session`` (on the server's event loop)."""
        if self.idle_timeout_s <= 0 and self.max_duration_s <= 0 and self._revoked is None:
            return
        self._sessions.add(session)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-watchdog")

    def unwatch(self, session: Session) -> None:
        """Stop watching ``session`` (its stream ended)."""
        self._sessions.discard(session)

    async def close(self) -> None:
        """Stop the watching task (server shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._sessions:
            await asyncio.sleep(self._period_s)
            now = time.monotonic()
            for session in list(self._sessions):
                error = self._expired(session, now)
                if error is not None:
                    self._sessions.discard(session)
                    log.info("session %s: %s", session.id, error.message)
                    session.finish_with(error)

    def _expired(self, session: Session, now: float) -> ServiceError | None:
        if self._revoked is not None and (revoked := self._revoked(session.caller)) is not None:
            return revoked
        if self.max_duration_s > 0 and now - session.started_at >= self.max_duration_s:
            return ServiceError(
                grpc.StatusCode.OUT_OF_RANGE,
                f"the stream reached the maximum duration of {_hms(self.max_duration_s)} (--max-stream-duration); "
                "the last sentence was finished; open a new stream to go on",
            )
        # A session finishing its last sentence (the caller half-closed) is not idle, only busy.
        if self.idle_timeout_s > 0 and not session.finishing and now - session.last_audio_at >= self.idle_timeout_s:
            return ServiceError(
                grpc.StatusCode.OUT_OF_RANGE,
                f"no audio arrived for {_hms(self.idle_timeout_s)} (--idle-timeout), so the stream was ended to "
                "free its recogniser; send audio continuously (silence included) while a stream is open",
            )
        return None


def _hms(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"
