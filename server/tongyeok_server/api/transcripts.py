"""The ``tongyeok.v1.Transcripts`` servicer: meeting records read, listed, exported and deleted.

Every RPC needs the ``transcripts`` scope; a caller sees its own sessions
only, unless it also has ``transcripts:admin``. Database calls block, so
they run on the loop's default executor; a store that cannot be reached is
UNAVAILABLE with a message, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.empty_pb2 import Empty

from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc
from tongyeok_server import languages
from tongyeok_server.api.unary import decoded, in_store, serve
from tongyeok_server.auth.caller import Scope, current_caller
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.store import page_token, queries
from tongyeok_server.store.export import ExportFormat, SubtitleText, export
from tongyeok_server.store.messages import NAME_PREFIX, session_message
from tongyeok_server.store.recorder import MeetingRecord

log = logging.getLogger(__name__)

SERVICE_NAME = tpb.DESCRIPTOR.services_by_name["Transcripts"].full_name
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FORMATS = {
    tpb.EXPORT_FORMAT_SRT: ExportFormat.SRT,
    tpb.EXPORT_FORMAT_WEBVTT: ExportFormat.WEBVTT,
    tpb.EXPORT_FORMAT_MARKDOWN: ExportFormat.MARKDOWN,
    tpb.EXPORT_FORMAT_TEXT: ExportFormat.TEXT,
    tpb.EXPORT_FORMAT_JSON: ExportFormat.JSON,
}
_SUBTITLE_TEXT = {
    tpb.SUBTITLE_TEXT_UNSPECIFIED: None,
    tpb.SUBTITLE_TEXT_SOURCE: SubtitleText.SOURCE,
    tpb.SUBTITLE_TEXT_TRANSLATION: SubtitleText.TRANSLATION,
    tpb.SUBTITLE_TEXT_BOTH: SubtitleText.BOTH,
}
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


class TranscriptsServicer(tpb_grpc.TranscriptsServicer):
    """Serves the record of ``record`` (None: this server keeps none, every RPC is FAILED_PRECONDITION)."""

    def __init__(self, record: MeetingRecord | None) -> None:
        self._record = record

    async def GetSession(self, request: tpb.GetSessionRequest, context: Context) -> tpb.Session:
        """One record."""

        async def work() -> tpb.Session:
            decoded(request)
            owner = self._owner()
            session_id = _session_id(request.name)
            full = request.view != tpb.SESSION_VIEW_BASIC
            record = await self._db(queries.get_session, session_id, owner, full=full)
            if record is None:
                raise _not_found(request.name)
            return session_message(record, full=full)

        return await serve(context, work)

    async def ListSessions(self, request: tpb.ListSessionsRequest, context: Context) -> tpb.ListSessionsResponse:
        """The caller's sessions, newest first, a page at a time."""

        async def work() -> tpb.ListSessionsResponse:
            decoded(request)
            owner = self._owner()
            if request.page_size < 0:
                raise invalid_argument(f"page_size is {request.page_size}; use 0 (the default, 50) to 1000")
            size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            flt = _filter(request)
            full = request.view == tpb.SESSION_VIEW_FULL
            bound_to = page_token.binding(owner, flt, full)
            key = await self._db_call(self._require().page_token_key)
            after = None
            if request.page_token:
                try:
                    after = page_token.decode(key, request.page_token, bound_to)
                except page_token.PageTokenError as error:
                    raise invalid_argument(str(error)) from None
            records = await self._db(queries.list_sessions, owner, flt, after, size + 1)
            response = tpb.ListSessionsResponse()
            page = records[:size]
            for record in page:
                whole = await self._db(queries.get_session, record.session_id, owner) if full else None
                response.sessions.append(session_message(whole or record, full=full))
            if len(records) > size:
                last = page[-1]
                response.next_page_token = page_token.encode(
                    key, queries.PagePosition(last.started_at, last.session_id), bound_to
                )
            return response

        return await serve(context, work)

    async def DeleteSession(self, request: tpb.DeleteSessionRequest, context: Context) -> Empty:
        """Delete one record and everything of it."""

        async def work() -> Empty:
            decoded(request)
            owner = self._owner()
            session_id = _session_id(request.name)
            if not await self._db(queries.delete_session, session_id, owner):
                raise _not_found(request.name)
            self._require().writer.forget(session_id)  # a session still running writes nothing more
            log.info("session %s record deleted by caller=%s", session_id, current_caller().id)
            return Empty()

        return await serve(context, work)

    async def ExportSession(self, request: tpb.ExportSessionRequest, context: Context) -> tpb.ExportSessionResponse:
        """One record as subtitles, minutes, text or JSON."""
        return await serve(context, lambda: self.export_session(request))

    async def export_session(self, request: tpb.ExportSessionRequest) -> tpb.ExportSessionResponse:
        """ExportSession for any edge (the web gateway's download too); raises ``ServiceError``."""
        decoded(request)
        owner = self._owner()
        session_id = _session_id(request.name)
        fmt = _FORMATS.get(request.format)
        if fmt is None:
            raise invalid_argument(
                f"format is {_enum_name(tpb.ExportFormat, request.format)}; use EXPORT_FORMAT_SRT, "
                "EXPORT_FORMAT_WEBVTT, EXPORT_FORMAT_MARKDOWN, EXPORT_FORMAT_TEXT or EXPORT_FORMAT_JSON"
            )
        if request.subtitle_text not in _SUBTITLE_TEXT:
            raise invalid_argument(
                f"subtitle_text is {request.subtitle_text}; use SUBTITLE_TEXT_SOURCE, "
                "SUBTITLE_TEXT_TRANSLATION or SUBTITLE_TEXT_BOTH"
            )
        language = _language("language_code", request.language_code)
        record = await self._db(queries.get_session, session_id, owner)
        if record is None:
            raise _not_found(request.name)
        out = export(record, fmt, language_code=language, subtitle_text=_SUBTITLE_TEXT[request.subtitle_text])
        return tpb.ExportSessionResponse(content=out.content, media_type=out.media_type, file_name=out.file_name)

    # -- helpers -----------------------------------------------------------------------

    def _require(self) -> MeetingRecord:
        if self._record is None:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server keeps no meeting records (it runs with --store none)",
            )
        return self._record

    def _owner(self) -> str | None:
        """The caller whose sessions are visible; None for an admin (all of them)."""
        caller = current_caller()
        if not caller.allows(Scope.TRANSCRIPTS):
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {caller.id} lacks the '{Scope.TRANSCRIPTS.value}' scope that reading and deleting "
                "meeting records needs; ask for a credential that grants it",
            )
        self._require()
        return None if caller.allows(Scope.TRANSCRIPTS_ADMIN) else caller.id

    async def _db(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        engine = self._require().engine
        return await self._db_call(lambda: query(engine, *args, **kwargs))

    @staticmethod
    async def _db_call(call: Callable[[], T]) -> T:
        return await in_store(call, "meeting record store", "Transcripts")


def _session_id(name: str) -> str:
    session_id = name.removeprefix(NAME_PREFIX)
    if not name.startswith(NAME_PREFIX) or not _ID.match(session_id):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise invalid_argument(
            f"name is {shown!r}; expected sessions/{{session_id}} with the id SessionStarted gave, "
            "e.g. sessions/s20261203-101500-3f9a2c1b4d"
        )
    return session_id


def _not_found(name: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, f"no meeting record {name} for this caller")


def _language(field: str, code: str) -> str:
    if not code:
        return ""
    if not languages.is_well_formed(code):
        raise invalid_argument(f"{field}: {code!r} is not a BCP-47 language code (e.g. es, en-US, ko-KR)")
    return languages.normalize(code)


def _time(request: tpb.ListSessionsRequest, field: str) -> datetime | None:
    """A Timestamp field as a time; INVALID_ARGUMENT naming it if it is outside what a Timestamp may hold."""
    if not request.HasField(field):
        return None
    stamp = getattr(request, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        raise invalid_argument(
            f"{field} is {stamp.seconds} s and {stamp.nanos} ns, not a time a Timestamp may hold: seconds from "
            f"{_MIN_SECONDS} (0001-01-01) to {_MAX_SECONDS} (9999-12-31), nanos from 0 to 999999999"
        ) from None


_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def _filter(request: tpb.ListSessionsRequest) -> queries.SessionFilter:
    after = _time(request, "start_time_after")
    before = _time(request, "start_time_before")
    if after is not None and before is not None and after >= before:
        raise invalid_argument(
            f"start_time_after ({after.isoformat()}) is not before start_time_before ({before.isoformat()})"
        )
    return queries.SessionFilter(after, before, _language("language_code", request.language_code))


def _enum_name(enum: Any, value: int) -> str:
    return str(enum.Name(value)) if value in enum.values() else str(value)
