"""The seam through which capabilities join Interpret sessions without branches in the servicer.

The meeting record, speech output and metrics each provide one
``SessionExtension``; the server passes them to the servicer, which calls
``attach`` for every new session (before its recogniser starts) and
``annotate_started`` while building its ``session_started`` event
(``stream_refused`` when a stream is refused before it has a session);
``attach_text`` for every TranslateText request and ``annotate_languages``
for ListLanguages.
"""

from __future__ import annotations

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.errors import ServiceError
from tongyeok_server.session.observer import EventSink, SessionObserver
from tongyeok_server.session.session import Session


class SessionExtension:
    """A capability that follows sessions; override what you need."""

    def attach(self, session: Session) -> SessionObserver | None:
        """The observer that follows ``session``, or None to stay out of it."""
        return None

    def annotate_started(self, session: Session, started: pb.SessionStarted) -> None:
        """Fill in this capability's fields of ``session_started`` (e.g. whether the record is kept)."""

    def stream_refused(self, error: ServiceError) -> None:
        """An Interpret stream was refused before its session started (bad config, server full, a limit)."""

    def stream_resumed(self, session: Session, moved: bool) -> None:
        """``session`` continues on a new stream (``moved``: it came here from a server that shut down)."""

    def attach_text(
        self, request: pb.TranslateTextRequest, targets: tuple[str, ...], sink: EventSink
    ) -> SessionObserver | None:
        """The observer that follows one TranslateText request (its events, then ``End``), or None.

        Called on the event loop before the translations start; may raise
        ``ServiceError`` to refuse the request.
        """
        return None

    def annotate_languages(self, response: pb.ListLanguagesResponse) -> None:
        """Fill in this capability's fields of the ListLanguages answer (e.g. the voices)."""

    async def start(self) -> None:
        """Once, on the server's event loop, before the port opens (e.g. ask a backend what it offers)."""

    def close(self) -> None:
        """Release shared resources at server shutdown (after the last session has closed)."""
