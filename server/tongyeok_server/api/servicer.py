"""The ``tongyeok.v1.Interpreter`` servicer, on gRPC's asyncio server.

Every RPC runs as a coroutine on the server's one event loop. An Interpret
stream is two tasks: the RPC's own (it yields the session's events) and a
feeder (it reads the caller's audio), so recognition of the next sentence
goes on while the previous one is translated and sent. No thread is started
per stream: with the Google recogniser on the same loop, a chunk goes from
caller to Google and a result back without a thread hand-off, which is what
lets one process hold hundreds of streams (see ``make bench``).
Translations run on a shared thread pool and reach the loop through the
session's ``EventChannel``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor

import grpc

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.api import speech, validation, wire
from tongyeok_server.api.extension import SessionExtension
from tongyeok_server.api.handlers import Undecodable
from tongyeok_server.auth.caller import current_caller
from tongyeok_server.auth.limits import CallerLimits, LimitDefaults, StreamAdmission
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.session import events as ev
from tongyeok_server.session.session import Session
from tongyeok_server.session.text_request import TextRequest
from tongyeok_server.session.translation_job import OpenTranslations, run_translation
from tongyeok_server.session.watchdog import StreamWatchdog
from tongyeok_server.translation.base import ContextSentence, TranslationRequest, Translator

log = logging.getLogger(__name__)

# How long a half-close waits for a cancel that arrived with it (see _feed);
# it delays only the last final of a stream. 50 ms was too short on a busy
# 2-core machine (the cancel surfaced later about once in 10 full test runs).
HALF_CLOSE_SETTLE_S = 0.2
# What a stream still open when the shutdown's grace runs out ends with (see cut).
SHUTDOWN_CUT = (
    "the server is shutting down and the sentence in progress could not be finished within its grace period; "
    "reconnect to go on"
)


class InterpreterServicer(pb_grpc.InterpreterServicer):
    """Serves Interpret, TranslateText and ListLanguages on shared engines."""

    def __init__(
        self,
        recognizer: Recognizer,
        translator: Translator,
        translation_executor: Executor,
        max_streams: int,
        extensions: Sequence[SessionExtension] = (),
        *,
        caller_limits: CallerLimits | None = None,
        watchdog: StreamWatchdog | None = None,
    ) -> None:
        self._recognizer = recognizer
        self._extensions = tuple(extensions)
        self._limits = caller_limits or CallerLimits(LimitDefaults())
        self._watchdog = watchdog or StreamWatchdog(0, 0)
        self._admissions: dict[str, StreamAdmission] = {}
        self._translator = translator
        self._executor = translation_executor
        self._max_streams = max_streams
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._accepting = True

    # -- Interpret -----------------------------------------------------------

    async def Interpret(
        self,
        request_iterator: AsyncIterator[pb.InterpretRequest | Undecodable],
        context: grpc.aio.ServicerContext[pb.InterpretRequest, pb.InterpretResponse],
    ) -> AsyncIterator[pb.InterpretResponse]:
        """See the proto: config first, then audio; events back."""
        peer = context.peer()
        try:
            session = await self._open_session(request_iterator)
        except ServiceError as error:
            # A malformed request is the caller's business (it gets the message); at INFO it would let
            # any client fill the log. Refusals for capacity are the operator's business.
            level = logging.DEBUG if error.code == grpc.StatusCode.INVALID_ARGUMENT else logging.INFO
            log.log(
                level,
                "stream refused (%s): %s caller=%s peer=%s",
                error.code.name,
                error.message,
                current_caller().id,
                peer,
            )
            await context.abort(error.code, error.message)
        # Ends with the RPC: the caller's cancel cancels this coroutine, and
        # the finally below stops the feeder and everything the session started.
        feeder = asyncio.create_task(self._feed(session, request_iterator), name=f"feed-{session.id}")
        try:
            ignored = self._translator.ignored_options(session.config.translation)
            started = pb.SessionStarted(
                session_id=session.id,
                effective_config=wire.effective_config(
                    session.config, self._translator.effective_options(session.config.translation)
                ),
                recognizer=wire.engine(self._recognizer.description),
                translator=wire.engine(self._translator.description),
                ignored_options=ignored,
            )
            for extension in self._extensions:
                extension.annotate_started(session, started)
            yield pb.InterpretResponse(session_started=started)
            async for event in session.events():
                if isinstance(event, ev.End):
                    if event.error is not None:
                        await context.abort(event.error.code, event.error.message)
                    return
                yield wire.interpret_response(event)
        finally:
            feeder.cancel()
            self._close_session(session, peer)

    async def _open_session(self, request_iterator: AsyncIterator[pb.InterpretRequest | Undecodable]) -> Session:
        if not self._accepting:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; connect to another instance")
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            raise invalid_argument(
                "the stream ended before its config: send an InterpretRequest with `config` first, then `audio`"
            ) from None
        if isinstance(first, Undecodable):
            raise first.error("message 1")
        if first.WhichOneof("request") != "config":
            raise invalid_argument(
                "the first message must carry `config` (audio format and languages); audio may follow it"
            )
        config = validation.interpret_config(first.config, self._recognizer, self._translator)
        caller = current_caller()
        with self._lock:
            if len(self._sessions) >= self._max_streams:
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this server is at its limit of {self._max_streams} concurrent streams; try again later",
                )
        admission = self._limits.admit(caller)  # raises RESOURCE_EXHAUSTED naming the caller's limit
        session = Session(config, self._recognizer, self._translator, self._executor, caller=caller)
        with self._lock:
            self._sessions[session.id] = session
            self._admissions[session.id] = admission
        try:
            for extension in self._extensions:
                observer = extension.attach(session)
                if observer is not None:
                    session.add_observer(observer)
            session.start()
        except ServiceError:
            self._release(session)
            session.close()
            raise
        self._watchdog.watch(session)
        log.info(
            "session %s start: caller=%s %s -> %s, %s %d Hz x%d, recognizer=%s translator=%s",
            session.id,
            session.caller.id,
            "+".join(config.source_languages),
            "+".join(config.target_languages),
            config.audio.encoding.value,
            config.audio.sample_rate_hz,
            config.audio.channels,
            self._recognizer.description.name,
            self._translator.description.name,
        )
        return session

    async def _feed(self, session: Session, requests: AsyncIterator[pb.InterpretRequest | Undecodable]) -> None:
        """Read the caller's messages after the config (the stream's feeder task)."""
        spec = session.config.audio
        admission = self._admissions[session.id]
        chunks = 0
        n = 1
        try:
            async for request in requests:
                n += 1
                if isinstance(request, Undecodable):
                    raise request.error(f"message {n}")
                kind = request.WhichOneof("request")
                if kind == "audio":
                    chunks += 1
                    validation.audio_chunk(request.audio, chunks, spec)
                    over = admission.add_audio(spec.duration_s(len(request.audio)))
                    if over is not None:
                        session.finish_with(over)  # the sentence heard so far is finished, then the status
                    await session.write_audio(request.audio)
                elif kind == "config":
                    raise invalid_argument(
                        f"message {n} carries a second `config`; only the first message may, the rest carry `audio`"
                    )
                else:
                    raise invalid_argument(f"message {n} is empty: set `audio`")
        except ServiceError as error:
            session.fail(error)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            # The caller's side of the call broke (reset, deadline): nothing left to serve.
            log.debug("session %s: reading the caller's audio failed", session.id, exc_info=True)
            session.cancel()
            return
        # grpc.aio ends the request stream the same way when the caller
        # half-closes and when it cancels; the cancel reaches this task (as
        # CancelledError, from the RPC's finally) a few milliseconds later.
        # Wait that long, so that a caller who hangs up is not treated as one
        # who asked for the last sentence to be finished.
        await asyncio.sleep(HALF_CLOSE_SETTLE_S)
        session.finish_audio()

    def _close_session(self, session: Session, peer: str) -> None:
        """The RPC ended, however it ended: release everything, write the log line."""
        session.close()
        self._release(session)
        s = session.stats
        log.info(
            "session %s end: %s after %.1fs, audio %.1fs in %d chunks, %d interim, %d final, "
            "%d translations, %d failed, caller=%s peer=%s",
            session.id,
            session.outcome,
            time.monotonic() - session.started_at,
            session.config.audio.duration_s(s.audio_bytes),
            s.chunks,
            s.interims,
            s.finals,
            s.translations,
            s.translation_failures,
            session.caller.id,
            peer,
        )

    def _release(self, session: Session) -> None:
        self._watchdog.unwatch(session)
        with self._lock:
            self._sessions.pop(session.id, None)
            admission = self._admissions.pop(session.id, None)
        if admission is not None:
            admission.release()

    # -- shutdown ------------------------------------------------------------

    def drain(self) -> int:
        """Refuse new streams; open ones finish their current sentence. Returns how many were open."""
        self._accepting = False
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.drain()
        return len(sessions)

    def cut(self) -> int:
        """End the streams still open (the grace ran out) with the shutdown's UNAVAILABLE. Returns how many."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.fail(ServiceError(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_CUT))
        return len(sessions)

    @property
    def open_streams(self) -> int:
        """Interpret streams currently open."""
        with self._lock:
            return len(self._sessions)

    # -- TranslateText -----------------------------------------------------------

    async def TranslateText(
        self,
        request: pb.TranslateTextRequest | Undecodable,
        context: grpc.aio.ServicerContext[pb.TranslateTextRequest, pb.TranslateTextResponse],
    ) -> AsyncIterator[pb.TranslateTextResponse]:
        """Translate one text into each target language, in parallel, streaming tokens."""
        try:
            if isinstance(request, Undecodable):
                raise request.error("the request")
            wanted = validation.translate_text(request, self._translator)
        except ServiceError as error:
            await context.abort(error.code, error.message)
        source, targets, options = wanted.source, wanted.targets, wanted.options
        history = tuple(ContextSentence(sentence, source) for sentence in wanted.context)
        text = TextRequest(len(targets))
        open_translations = OpenTranslations()
        try:
            for extension in self._extensions:
                observer = extension.attach_text(request, targets, text)  # e.g. speech output
                if observer is not None:
                    text.add_observer(observer)
        except ServiceError as error:
            text.close()
            await context.abort(error.code, error.message)

        def job(target: str) -> None:
            try:
                req = TranslationRequest(wanted.text, source, target, options, history)
                run_translation(self._translator, req, 0, text.emit, open_translations)
            finally:
                text.job_done()

        yield pb.TranslateTextResponse(
            started=pb.TranslateTextStarted(
                translator=wire.engine(self._translator.description),
                ignored_options=self._translator.ignored_options(options),
                target_language_codes=targets,
            )
        )
        for target in targets:
            self._executor.submit(job, target)
        failures = 0
        try:
            async for event in text.events():
                if isinstance(event, ev.Token):
                    yield pb.TranslateTextResponse(translation_token=wire.token(event))
                elif isinstance(event, ev.Complete):
                    yield pb.TranslateTextResponse(translation_complete=wire.complete(event))
                elif isinstance(event, ev.Reset):
                    yield pb.TranslateTextResponse(translation_reset=wire.reset(event))
                elif isinstance(event, ev.Audio):
                    yield pb.TranslateTextResponse(translation_audio=speech.audio(event))
                elif isinstance(event, ev.Notice):
                    failures += event.code is ev.NoticeCode.TRANSLATION_FAILED
                    yield pb.TranslateTextResponse(notice=wire.notice(event))
        finally:
            open_translations.cancel_all()  # a caller that left early stops the engines too
            text.close()
        if failures == len(targets):
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "every translation failed; see the notices for the reasons"
            )

    # -- ListLanguages ---------------------------------------------------------

    async def ListLanguages(
        self,
        request: pb.ListLanguagesRequest | Undecodable,
        context: grpc.aio.ServicerContext[pb.ListLanguagesRequest, pb.ListLanguagesResponse],
    ) -> pb.ListLanguagesResponse:
        """What the running engines support."""
        if isinstance(request, Undecodable):
            error = request.error("the request")
            await context.abort(error.code, error.message)
        response = pb.ListLanguagesResponse(
            recognizer=wire.engine(self._recognizer.description),
            translator=wire.engine(self._translator.description),
            recognition_language_codes=list(self._recognizer.language_codes()),
            translation_pairs=[
                pb.LanguagePair(source_language_code=s, target_language_code=t)
                for s, t in self._translator.language_pairs()
            ],
            max_source_languages=min(2, self._recognizer.max_source_languages),
        )
        for extension in self._extensions:
            extension.annotate_languages(response)  # e.g. the voices
        return response


__all__ = ["InterpreterServicer"]
