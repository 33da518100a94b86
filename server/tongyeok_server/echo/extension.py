"""Echo suppression as a session extension: a guard for every session that speaks."""

from __future__ import annotations

import logging

from tongyeok_server.echo import aec
from tongyeok_server.echo.guard import EchoGuard
from tongyeok_server.engines import EngineDescription
from tongyeok_server.session.extension import SessionExtension, StartNotes
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.session import Session

log = logging.getLogger(__name__)

CANCELLER = EngineDescription(
    "webrtc-aec3",
    "the session's speech cancelled from the audio (delay found by cross-correlation); "
    "finals checked against the words it spoke",
)
WORDS_ONLY = EngineDescription(
    "words",
    "finals checked against the words the session spoke and the echo found on the signal "
    "(no echo canceller for this audio rate here)",
)


class EchoExtension(SessionExtension):
    """Attaches an ``EchoGuard`` to each session with ``speech_output``, unless it or the server turns it off."""

    def __init__(self, enabled: bool = True, max_delay_s: float = 4.0) -> None:
        self.enabled = enabled
        self.max_delay_s = max_delay_s
        self._canceller = aec.available()
        if enabled and not self._canceller:
            log.warning("echo suppression: the livekit package is missing; finals are checked on their words only")

    def attach(self, session: Session) -> SessionObserver | None:
        """A guard for ``session`` if it speaks and wants echo suppression."""
        config = session.config
        wanted = self.enabled if config.echo_suppression is None else config.echo_suppression
        if config.speech is None or not wanted:
            return None
        guard = EchoGuard(
            config.audio,
            session,
            config.speech.languages,
            max_delay_s=self.max_delay_s,
            base_s=config.audio.duration_s(session.audio_base_bytes),
            cancel=self._canceller,
        )
        session.set_echo_filter(guard)
        return guard

    def started(self, session: Session, notes: StartNotes) -> None:
        """Whether echo suppression applies, and how."""
        guard = session.echo_filter
        notes.echo_suppression = guard is not None
        if isinstance(guard, EchoGuard):
            notes.echo_suppressor = CANCELLER if guard.cancels else WORDS_ONLY
