"""The seam through which capabilities join sessions, in the session's own terms (no wire format).

The meeting record, speech output and metrics each provide one
``SessionExtension``. The session layer (``api/interpret.py`` for Interpret,
``api/servicer.py`` for TranslateText and ListLanguages) calls:

- ``attach`` for every new session, before its recogniser starts;
- ``started`` while it builds what the caller is told first (the extension
  adds to ``StartNotes``; ``api/`` renders the notes as ``session_started``),
  then ``opened`` with that header as the record keeps it;
- ``stream_refused`` when a stream is refused before it has a session,
  ``stream_resumed`` when a session continues on a new stream;
- ``attach_text`` for every TranslateText request, ``languages`` for ListLanguages.

Extensions see ``Session``, ``SpeechOutput``, ``EngineDescription`` and
``Voice``, never protobuf messages, so ``store/``, ``synthesis/`` and
``observability/`` do not depend on ``api/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.errors import ServiceError
from tongyeok_server.session.observer import EventSink, SessionObserver
from tongyeok_server.session.session import Session
from tongyeok_server.session.speech import SpeechOutput


@dataclass
class StartNotes:
    """What the extensions add to what a caller is told when its session starts."""

    #: Whether the session's record is kept (the meeting record says; None: no extension keeps records).
    transcript_stored: bool | None = None
    #: Options the caller asked for that this server does not honour, each with why.
    ignored_options: list[str] = field(default_factory=list)
    #: The engine that speaks, and the voice chosen for each language spoken (speech output says).
    synthesizer: EngineDescription | None = None
    voices: dict[str, Voice] = field(default_factory=dict)
    #: Whether echo suppression applies (None: no extension suppresses echo), and how (echo suppression says).
    echo_suppression: bool | None = None
    echo_suppressor: EngineDescription | None = None


@dataclass(frozen=True)
class SessionHeader:
    """What the caller was told when its session started, as the record keeps it."""

    #: The effective config as the caller received it, in proto3 JSON (a stable, documented form).
    effective_config_json: str
    recognizer: EngineDescription
    translator: EngineDescription


@dataclass
class LanguageNotes:
    """What the extensions add to the ListLanguages answer."""

    #: The engine that speaks (None: speech output is off), every voice it has, and its default voice for
    #: each language it speaks (by primary subtag: "en", "ko").
    synthesizer: EngineDescription | None = None
    voices: list[Voice] = field(default_factory=list)
    defaults: dict[str, Voice] = field(default_factory=dict)


class SessionExtension:
    """A capability that follows sessions; override what you need."""

    def attach(self, session: Session) -> SessionObserver | None:
        """The observer that follows ``session``, or None to stay out of it."""
        return None

    def started(self, session: Session, notes: StartNotes) -> None:
        """Add this capability's part of what the caller is told first (e.g. whether the record is kept)."""

    def opened(self, session: Session, header: SessionHeader) -> None:
        """The caller has been told ``header`` (e.g. the record writes it as the session's header)."""

    def stream_refused(self, error: ServiceError) -> None:
        """An Interpret stream was refused before its session started (bad config, server full, a limit)."""

    def stream_resumed(self, session: Session, moved: bool) -> None:
        """``session`` continues on a new stream (``moved``: it came here from a server that shut down)."""

    def attach_text(self, speech: SpeechOutput | None, sink: EventSink) -> SessionObserver | None:
        """The observer that follows one TranslateText request (its events, then ``End``), or None.

        ``speech``: the request's speech output, validated. Called on the
        event loop before the translations start; may raise ``ServiceError``
        to refuse the request.
        """
        return None

    def languages(self, notes: LanguageNotes) -> None:
        """Add this capability's part of the ListLanguages answer (e.g. the voices)."""

    async def start(self) -> None:
        """Once, on the server's event loop, before the port opens (e.g. ask a backend what it offers)."""

    def close(self) -> None:
        """Release shared resources at server shutdown (after the last session has closed)."""
