"""The meeting records of a Tongyeok server (the ``Transcripts`` service): list, read, export, delete.

Example::

    from tongyeok_client import InterpreterClient

    with InterpreterClient("localhost:50051") as client:
        for session in client.transcripts.list_sessions(language="es"):
            print(session.session_id, session.utterance_count)
        srt = client.transcripts.export_session("s20261203-101500-3f9a2c1b4d", "srt", language="es")
        open(srt.file_name, "w").write(srt.content)

Sessions come back as the ``tongyeok.v1.Session`` messages themselves (see
``protos/tongyeok/v1/transcripts.proto``). A caller sees its own sessions;
another caller's are NOT_FOUND, like ids that never existed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc

from .proto import transcripts_pb2 as tpb
from .proto import transcripts_pb2_grpc as tpb_grpc
from .service import ServiceClient

__all__ = ["EXPORT_FORMATS", "ExportedSession", "TranscriptsClient", "session_name"]

#: ``format`` names accepted by :meth:`TranscriptsClient.export_session`.
EXPORT_FORMATS = {
    "srt": tpb.EXPORT_FORMAT_SRT,
    "vtt": tpb.EXPORT_FORMAT_WEBVTT,
    "md": tpb.EXPORT_FORMAT_MARKDOWN,
    "txt": tpb.EXPORT_FORMAT_TEXT,
    "json": tpb.EXPORT_FORMAT_JSON,
}
_SUBTITLE_TEXT = {
    None: tpb.SUBTITLE_TEXT_UNSPECIFIED,
    "source": tpb.SUBTITLE_TEXT_SOURCE,
    "translation": tpb.SUBTITLE_TEXT_TRANSLATION,
    "both": tpb.SUBTITLE_TEXT_BOTH,
}


@dataclass(frozen=True)
class ExportedSession:
    """A rendered record: its text, media type and a file name to save it under."""

    content: str
    media_type: str
    file_name: str


def session_name(session: str) -> str:
    """A session id (as ``SessionStarted.session_id`` gives it) or resource name -> ``sessions/{id}``."""
    return session if session.startswith("sessions/") else f"sessions/{session}"


class TranscriptsClient(ServiceClient):
    """The ``Transcripts`` service over an existing channel (``InterpreterClient.transcripts`` makes one).

    Every method raises :class:`~tongyeok_client.TongyeokError` when the call fails.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = 30.0,
        error: Callable[[grpc.RpcError], Exception] | None = None,
    ) -> None:
        super().__init__(metadata=metadata, timeout=timeout, error=error)
        self._stub = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]

    def get_session(self, session: str, *, full: bool = True) -> tpb.Session:
        """One session's record (by id or ``sessions/{id}``), utterances included unless ``full`` is False."""
        view = tpb.SESSION_VIEW_FULL if full else tpb.SESSION_VIEW_BASIC
        record: tpb.Session = self._call(
            self._stub.GetSession, tpb.GetSessionRequest(name=session_name(session), view=view)
        )
        return record

    def list_sessions(
        self,
        *,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        language: str = "",
        page_size: int = 100,
        limit: int | None = None,
    ) -> Iterator[tpb.Session]:
        """The caller's sessions, newest first (BASIC view), following page tokens; at most ``limit``."""
        request = tpb.ListSessionsRequest(page_size=page_size, language_code=language)
        if started_after is not None:
            request.start_time_after.FromDatetime(started_after)
        if started_before is not None:
            request.start_time_before.FromDatetime(started_before)
        seen = 0
        while True:
            page: tpb.ListSessionsResponse = self._call(self._stub.ListSessions, request)
            for session in page.sessions:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield session
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def export_session(
        self, session: str, format: str, *, language: str = "", subtitle_text: str | None = None
    ) -> ExportedSession:
        """Render a record: ``format`` one of ``srt vtt md txt json``.

        ``language`` picks the translation; ``subtitle_text`` (subtitles only)
        is ``source``, ``translation`` or ``both`` (default: source without a
        language, translation with one).

        Raises:
            ValueError: an unknown format or subtitle text.

        """
        if format not in EXPORT_FORMATS:
            raise ValueError(f"format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
        if subtitle_text not in _SUBTITLE_TEXT:
            raise ValueError(f"subtitle_text {subtitle_text!r}: use source, translation or both")
        request = tpb.ExportSessionRequest(
            name=session_name(session),
            format=EXPORT_FORMATS[format],
            language_code=language,
            subtitle_text=_SUBTITLE_TEXT[subtitle_text],
        )
        r: tpb.ExportSessionResponse = self._call(self._stub.ExportSession, request)
        return ExportedSession(r.content, r.media_type, r.file_name)

    def delete_session(self, session: str) -> None:
        """Delete a session's record: utterances, translations and audio."""
        self._call(self._stub.DeleteSession, tpb.DeleteSessionRequest(name=session_name(session)))
