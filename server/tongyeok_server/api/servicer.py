"""The ``tongyeok.v1.Interpreter`` servicer, on gRPC's asyncio server.

Every RPC runs as a coroutine on the server's one event loop. ``Interpret``
is the gRPC edge of ``api/interpret.InterpretFlow``, the session layer the
WebSocket gateway drives too: it hands the flow the call's requests and
peer, writes out the events the flow yields, and turns the flow's
``ServiceError`` into the call's status. No thread is started per stream:
with the Google recogniser on the same loop, a chunk goes from caller to
Google and a result back without a thread hand-off, which is what lets one
process hold hundreds of streams (see ``make bench``). Translations are
tasks on the same loop (the engines are async): one per language at a time
for a session (``session/serial_lane.py``), one per target for
TranslateText.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import grpc

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.api import speech as speech_wire
from tongyeok_server.api import validation, wire
from tongyeok_server.api.handlers import Undecodable
from tongyeok_server.api.interpret import InterpretFlow, Stream
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.session import events as ev
from tongyeok_server.session.extension import LanguageNotes, SessionExtension
from tongyeok_server.session.text_request import TextRequest
from tongyeok_server.session.translation_job import run_translation
from tongyeok_server.translation.base import ContextSentence, TranslationRequest, Translator

log = logging.getLogger(__name__)


class InterpreterServicer(pb_grpc.InterpreterServicer):
    """Serves Interpret, TranslateText and ListLanguages on shared engines."""

    def __init__(
        self,
        interpret: InterpretFlow,
        recognizer: Recognizer,
        translator: Translator,
        extensions: Sequence[SessionExtension] = (),
    ) -> None:
        """``interpret`` serves the Interpret streams; the engines and extensions serve the other two RPCs."""
        self.interpret = interpret
        self._recognizer = recognizer
        self._extensions = tuple(extensions)
        self._translator = translator

    # -- Interpret -----------------------------------------------------------

    async def Interpret(
        self,
        request_iterator: AsyncIterator[pb.InterpretRequest | Undecodable],
        context: grpc.aio.ServicerContext[pb.InterpretRequest, pb.InterpretResponse],
    ) -> AsyncIterator[pb.InterpretResponse]:
        """See the proto: config (or resume) first, then audio; events back (``api/interpret.py``)."""
        stream = Stream(context.peer(), tuple(context.invocation_metadata() or ()))
        try:
            # aclosing: however gRPC leaves this generator, the flow's own end (its finally) runs now.
            async with contextlib.aclosing(self.interpret.serve(request_iterator, stream)) as responses:
                async for response in responses:
                    yield response
        except ServiceError as error:
            await context.abort(error.code, error.message)

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
        try:
            speech = (
                speech_wire.speech_output("speech_output", request.speech_output, targets)
                if request.HasField("speech_output")
                else None
            )
            for extension in self._extensions:
                observer = extension.attach_text(speech, text)  # e.g. speech output
                if observer is not None:
                    text.add_observer(observer)
        except ServiceError as error:
            text.close()
            await context.abort(error.code, error.message)

        async def job(target: str) -> None:
            try:
                req = TranslationRequest(wanted.text, source, target, options, history)
                await run_translation(self._translator, req, 0, text.emit)
            finally:
                text.job_done()

        yield pb.TranslateTextResponse(
            started=pb.TranslateTextStarted(
                translator=wire.engine(self._translator.description),
                ignored_options=self._translator.ignored_options(options),
                target_language_codes=targets,
            )
        )
        loop = asyncio.get_running_loop()
        jobs = [loop.create_task(job(target)) for target in targets]  # the targets in parallel
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
                    yield pb.TranslateTextResponse(translation_audio=speech_wire.audio(event))
                elif isinstance(event, ev.Notice):
                    failures += event.code is ev.NoticeCode.TRANSLATION_FAILED
                    yield pb.TranslateTextResponse(notice=wire.notice(event))
        finally:
            for task in jobs:
                task.cancel()  # a caller that left early stops the engines too (a done task ignores it)
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
        return self.languages()

    def languages(self) -> pb.ListLanguagesResponse:
        """The ListLanguages answer, for any edge (the web page's language lists too)."""
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
        notes = LanguageNotes()
        for extension in self._extensions:
            extension.languages(notes)  # e.g. the voices
        if notes.synthesizer is None:
            response.synthesizer.CopyFrom(pb.EngineInfo(name="none", detail="speech output is off"))
        else:
            response.synthesizer.CopyFrom(wire.engine(notes.synthesizer))
            response.voices.extend(speech_wire.language_voices(notes.voices, notes.defaults))
        return response


__all__ = ["InterpreterServicer"]
