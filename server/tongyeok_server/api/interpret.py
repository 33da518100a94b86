"""One ``Interpret`` stream, whatever carries it: open or resume a session, feed it the caller's audio, send its events.

This is the session layer both edges drive: the gRPC servicer
(``api/servicer.py``) and the WebSocket gateway (``gateway/``). Each hands
``InterpretFlow.serve`` the caller's requests as an async iterator of
``InterpretRequest`` (or ``Undecodable``) and a ``Stream`` (who is at the
other end), and writes out the ``InterpretResponse``s it yields. A failure
is a ``ServiceError`` raised out of the iterator (the status and a message
for a person), which each edge turns into its own form: ``context.abort`` on
gRPC, a close code and reason on a WebSocket. So limits, metrics, logs, the
meeting record, resumption and speech output are the same on both.

A stream is two tasks: the edge's own, which reads the session's
``EventLog`` from where the caller is and yields each event with its
sequence number (plus ``audio_acknowledged`` as the acknowledged audio
grows), and a feeder (``api/feeder.py``), which reads the caller's messages
(audio, ``end``). The first message either configures a new session or
resumes one (``resume.ResumeDesk`` decides how: here, restored from a
moving session's token, or forwarded to the process that holds it). What
concerns the session rather than the stream (its slot and admission, the
extensions, ``session_started``, the start and end log lines) is
``api/opening.py``'s ``SessionOpener``.

How a stream ends decides the session's fate: when the session's end has
been delivered, the session is released; when a resumable session's stream
breaks (the caller's cancel, a dead connection), the session is detached and
waits for a resume (``session.registry``); any other session ends with its
stream, as before resumption existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import grpc

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import wire
from tongyeok_server.api.feeder import feed
from tongyeok_server.api.handlers import Undecodable
from tongyeok_server.api.opening import SessionOpener
from tongyeok_server.api.resume import Resumed, ResumeDesk, events_not_kept
from tongyeok_server.auth.caller import CallerKind, current_caller
from tongyeok_server.auth.limits import CallerLimits
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.session import events as ev
from tongyeok_server.session.event_log import EventsNoLongerKept
from tongyeok_server.session.extension import SessionExtension
from tongyeok_server.session.registry import Attachment, Managed
from tongyeok_server.session.watchdog import StreamWatchdog
from tongyeok_server.simultaneous.options import ServerDefaults
from tongyeok_server.translation.base import Translator

log = logging.getLogger(__name__)

# What a stream still open when the shutdown's grace runs out ends with (see cut).
SHUTDOWN_CUT = (
    "the server is shutting down and the sentence in progress could not be finished within its grace period; "
    "reconnect to go on"
)
SHUTDOWN_MOVE = (
    "the server is shutting down; resume with the token of the last resume_token_update to continue the session on "
    "another server"
)
SUPERSEDED = "the session was resumed on another stream; this one is no longer read"
LIMITS_LOCAL = (
    "the store the servers share per-caller limits in cannot be reached; until it can, this server counts your "
    "streams and audio by itself, and the meeting goes on"
)
LIMITS_SHARED = "the store of the per-caller limits answers again; your limits are shared among the servers again"

Requests = AsyncIterator[pb.InterpretRequest | Undecodable]


@dataclass(frozen=True)
class Stream:
    """Who is at the other end of one Interpret stream, as its transport knows them.

    ``metadata`` is the call's gRPC metadata (a resume relayed to the
    process holding the session passes its ``authorization`` on); a
    WebSocket has none. ``transport`` names the edge in logs.
    """

    peer: str
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    transport: str = "grpc"


class InterpretFlow:
    """Serves Interpret streams on shared engines, for any edge (see the module docstring)."""

    def __init__(
        self,
        recognizer: Recognizer,
        translator: Translator,
        max_streams: int,
        extensions: Sequence[SessionExtension],
        limits: CallerLimits,
        watchdog: StreamWatchdog,
        desk: ResumeDesk,
        simultaneous: ServerDefaults | None = None,
    ) -> None:
        #: Opens, restores and releases the sessions; holds them in its registry.
        self.sessions = SessionOpener(recognizer, translator, max_streams, extensions, limits, desk, simultaneous)
        self._extensions = tuple(extensions)
        self._limits = limits
        self._watchdog = watchdog
        self.desk = desk
        self.registry = self.sessions.registry
        desk.bind(self.registry)
        self._accepting = True
        limits.windows.on_change(self._limits_shared)

    # -- one stream ----------------------------------------------------------

    async def serve(self, requests: Requests, stream: Stream) -> AsyncGenerator[pb.InterpretResponse, None]:
        """The stream: the first message decides, then events flow until the session ends or the stream does.

        Raises ``ServiceError`` for a refusal and for a session that ends with
        an error; returns after a session's end was delivered.
        """
        try:
            with self._limits.opening(current_caller()):  # the stream counts from its first byte
                first = await self._first_message(requests)
            if first.WhichOneof("request") != "resume" and current_caller().relayed_for:
                raise ServiceError(  # vouched for by another process of ours to resume one session, nothing else
                    grpc.StatusCode.PERMISSION_DENIED, "a relayed stream may only resume the session it was relayed for"
                )
            if first.WhichOneof("request") == "resume":
                resumed = await self.desk.resume(first.resume, self.sessions.restore, stream.metadata)
                if resumed.forwarded is not None:
                    async for response in resumed.forwarded(requests):
                        yield response
                    return
                managed, after = resumed.managed, resumed.last_sequence_number
                assert managed is not None
                opening = self._resumed_event(managed, resumed)
            else:
                managed = self.sessions.open(first.config, self.sessions.config_from(first.config))
                after = managed.session.log.reserve()  # session_started is number 1 of the session
                opening = pb.InterpretResponse(session_started=self.sessions.started(managed), sequence_number=after)
                if not self._limits.windows.shared and managed.session.caller.kind is not CallerKind.ANONYMOUS:
                    managed.session.emit(ev.Notice(ev.NoticeCode.LIMITS_LOCAL, LIMITS_LOCAL))
        except ServiceError as error:
            self._refused(error, stream)
            raise
        attachment = self.registry.attach(managed, stream.peer)
        self._watchdog.watch(managed.session)
        admission = self.sessions.admission(managed.session.id)
        feeder = asyncio.create_task(feed(managed, requests, admission), name=f"feed-{managed.session.id}")
        delivered_end = False
        try:
            yield opening
            async for response in self._events(managed, attachment, after):
                yield response
            if not attachment.reached_end:
                raise ServiceError(grpc.StatusCode.ABORTED, SUPERSEDED)
            delivered_end = True
            ending = self._end_error(managed)
            if ending is not None:
                raise ending
        finally:
            log.debug("session %s: its stream ended (end delivered: %s)", managed.session.id, delivered_end)
            feeder.cancel()
            if not delivered_end and not managed.resumable:
                managed.session.cancel()  # the caller left a session that cannot wait for it
            self._watchdog.unwatch(managed.session)
            self.registry.stream_ended(managed, attachment, delivered_end=delivered_end)

    def _limits_shared(self, shared: bool) -> None:
        """The limits' shared store went away (False) or came back: tell the streams whose limits it counts."""
        notice = ev.Notice(
            ev.NoticeCode.LIMITS_SHARED if shared else ev.NoticeCode.LIMITS_LOCAL,
            LIMITS_SHARED if shared else LIMITS_LOCAL,
        )
        for managed in self.registry.all():
            if managed.session.caller.kind is not CallerKind.ANONYMOUS:
                managed.session.emit(notice)

    def _refused(self, error: ServiceError, stream: Stream) -> None:
        # A malformed request, or none in time, is the caller's business (it gets the message); at INFO
        # it would let any client fill the log. Refusals for capacity are the operator's business.
        caller_business = error.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)
        level = logging.DEBUG if caller_business else logging.INFO
        caller_id = current_caller().id
        log.log(
            level,
            "stream refused (%s): %s caller=%s peer=%s via %s",
            error.code.name,
            error.message,
            caller_id,
            stream.peer,
            stream.transport,
            extra={"event": "stream_refused", "code": error.code.name, "caller_id": caller_id},
        )
        for extension in self._extensions:
            extension.stream_refused(error)  # e.g. the metrics

    async def _events(
        self, managed: Managed, attachment: Attachment, after: int
    ) -> AsyncIterator[pb.InterpretResponse]:
        """The session's events after ``after`` with their numbers, acknowledgements between them, until ``End``."""
        session = managed.session
        acknowledged = session.acknowledged_bytes if managed.resumable else -1
        try:
            async for entry in session.log.read(after, attachment.superseded):
                event = entry.event
                if isinstance(event, ev.End):
                    managed.extra["end"] = event
                    attachment.reached_end = True
                    if event.moved:
                        # The token takes End's number: numbers go on after it on the next server.
                        yield self._moving_token(managed, entry.sequence_number)
                    return
                response = wire.interpret_response(event)
                response.sequence_number = entry.sequence_number
                yield response
                session.delivered(event)  # the edge has taken it: for the observers that measure (metrics)
                if managed.resumable and session.acknowledged_bytes > acknowledged:
                    acknowledged = session.acknowledged_bytes
                    yield pb.InterpretResponse(
                        audio_acknowledged=pb.AudioAcknowledged(
                            acknowledged_bytes=acknowledged,
                            acknowledged_offset=wire.duration(session.config.audio.duration_s(acknowledged)),
                        )
                    )
        except EventsNoLongerKept as gone:
            raise events_not_kept(after, gone.oldest) from None

    @staticmethod
    def _end_error(managed: Managed) -> ServiceError | None:
        end = managed.extra.get("end")
        return end.error if isinstance(end, ev.End) else None

    async def _first_message(self, requests: Requests) -> pb.InterpretRequest:
        if not self._accepting:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; connect to another instance")
        timeout_s = self._watchdog.first_message_timeout_s
        try:
            async with asyncio.timeout(timeout_s if timeout_s > 0 else None):
                first = await anext(requests)
        except StopAsyncIteration:
            raise invalid_argument(
                "the stream ended before its config: send an InterpretRequest with `config` first, then `audio`"
            ) from None
        except TimeoutError:
            raise ServiceError(
                grpc.StatusCode.OUT_OF_RANGE,
                f"no first message arrived within {timeout_s:g} s of the stream opening (--first-message-timeout); "
                "send `config` (or `resume`) as soon as the stream opens",
            ) from None
        if isinstance(first, Undecodable):
            raise first.error("message 1")
        if first.WhichOneof("request") not in ("config", "resume"):
            raise invalid_argument(
                "the first message must carry `config` (audio format and languages), or `resume` to continue a "
                "session; audio may follow it"
            )
        return first

    def _resumed_event(self, managed: Managed, resumed: Resumed) -> pb.InterpretResponse:
        session = managed.session
        resend = session.audio_bytes_taken
        for extension in self._extensions:
            extension.stream_resumed(session, resumed.moved)  # e.g. the metrics
        log.info(
            "session %s resumed (caller=%s) after %.1fs without a stream; events from %d, audio from byte %d",
            session.id,
            session.caller.id,
            resumed.detached_for_s,
            resumed.last_sequence_number + 1,
            resend,
        )
        return pb.InterpretResponse(
            session_resumed=pb.SessionResumed(
                session_id=session.id,
                resend_from_byte=resend,
                resend_from_offset=wire.duration(session.config.audio.duration_s(resend)),
                next_sequence_number=resumed.last_sequence_number + 1,
                detached_for=wire.duration(resumed.detached_for_s),
                moved=resumed.moved,
            )
        )

    def _moving_token(self, managed: Managed, sequence_number: int) -> pb.InterpretResponse:
        config = managed.extra["config"]
        assert isinstance(config, bytes)
        token = self.desk.moving_token(managed.session, config, managed.session.continuation())
        return pb.InterpretResponse(
            resume_token_update=pb.ResumeTokenUpdate(resume_token=token, reason=SHUTDOWN_MOVE),
            sequence_number=sequence_number,
        )

    # -- release, shutdown -----------------------------------------------------

    def drain(self) -> int:
        """Refuse new streams; sessions that can move hand over, the others finish their sentence."""
        self._accepting = False
        error = ServiceError(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_MOVE)
        managed_all = self.registry.all()
        for managed in managed_all:
            # Only a caller that is here to receive the new token can take the session elsewhere.
            if managed.resumable and managed.attachment is not None and managed.session.hand_over(error):
                continue
            managed.session.drain()
        return len(managed_all)

    def cut(self) -> int:
        """End the streams still open (the grace ran out) with the shutdown's UNAVAILABLE. Returns how many."""
        managed_all = self.registry.all()
        for managed in managed_all:
            managed.session.fail(ServiceError(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_CUT))
        return len(managed_all)

    @property
    def open_streams(self) -> int:
        """Sessions held (attached to a stream or waiting for a resume)."""
        return len(self.registry)
