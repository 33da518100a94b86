"""The Text-to-Speech calls, as ``google_engine`` makes them: the channel's three methods and what goes in.

``Calls``: StreamingSynthesize, SynthesizeSpeech and ListVoices on one
``grpc.aio`` channel with the library's proto-plus serializers. ``Inputs``:
an utterance's clauses, read once and replayable by a retried call.
Google's input limit (``within_input_limit``), and what a failed call
means (``classify``, on top of ``google/status.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from google.cloud.texttospeech_v1.services.text_to_speech.transports import TextToSpeechGrpcAsyncIOTransport
from google.cloud.texttospeech_v1.types import cloud_tts

from tongyeok_server.google.status import Action, Failure, common_failure
from tongyeok_server.synthesis.base import SpeechRequest

SERVICE = "google.cloud.texttospeech.v1.TextToSpeech"
API = "Text-to-Speech"
ROLE = "speech synthesizer"
# Google's limit on one input's text (UTF-8 bytes), for SynthesizeSpeech and each streaming input.
MAX_INPUT_BYTES = 5000


def _rpc_names() -> dict[str, tuple[str, Any, Any]]:
    return {
        "stream": (f"/{SERVICE}/StreamingSynthesize", cloud_tts.StreamingSynthesizeRequest, cloud_tts.StreamingSynthesizeResponse),
        "clause": (f"/{SERVICE}/SynthesizeSpeech", cloud_tts.SynthesizeSpeechRequest, cloud_tts.SynthesizeSpeechResponse),
        "voices": (f"/{SERVICE}/ListVoices", cloud_tts.ListVoicesRequest, cloud_tts.ListVoicesResponse),
    }  # fmt: skip


class Calls:
    """The three methods on one ``grpc.aio`` channel (made on the loop that uses it), proto-plus on the wire."""

    def __init__(self, channel: grpc.aio.Channel, transport: TextToSpeechGrpcAsyncIOTransport | None) -> None:
        self.channel = channel
        self.transport = transport
        names = _rpc_names()
        path, req, resp = names["stream"]
        self.stream = channel.stream_stream(
            path, request_serializer=req.serialize, response_deserializer=resp.deserialize
        )
        path, req, resp = names["clause"]
        self.clause = channel.unary_unary(
            path, request_serializer=req.serialize, response_deserializer=resp.deserialize
        )
        path, req, resp = names["voices"]
        self.voices = channel.unary_unary(
            path, request_serializer=req.serialize, response_deserializer=resp.deserialize
        )

    async def close(self) -> None:
        """Close the channel (cancelling its calls)."""
        await self.channel.close(None)


class Inputs:
    """The utterance's clauses, read once from the speaker and replayable by a retried call.

    One task reads the speaker's iterator (cancelling a call's writer must
    not cancel it mid-``__anext__``, which would close it); each call's
    writer replays what was read and waits for more.
    """

    def __init__(self, clauses: AsyncIterator[str]) -> None:
        self.read: list[str] = []
        self.ended = False
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._pump(clauses))

    async def _pump(self, clauses: AsyncIterator[str]) -> None:
        try:
            async for clause in clauses:
                self.read.append(clause)
                self._changed.set()
        finally:
            self.ended = True
            self._changed.set()

    async def each(self) -> AsyncIterator[str]:
        """Every clause from the first, as they come."""
        i = 0
        while True:
            while i < len(self.read):
                yield self.read[i]
                i += 1
            if self.ended:
                return
            self._changed.clear()
            await self._changed.wait()

    def close(self) -> None:
        """Stop reading the speaker's clauses."""
        self._task.cancel()


async def write_inputs(call: Any, config: cloud_tts.StreamingSynthesizeRequest, inputs: Inputs) -> None:
    """The config, then one input per clause, then the half-close."""
    await call.write(config)
    async for clause in inputs.each():
        await call.write(cloud_tts.StreamingSynthesizeRequest(input=cloud_tts.StreamingSynthesisInput(text=clause)))
    await call.done_writing()


async def within_input_limit(clauses: AsyncIterator[str]) -> AsyncIterator[str]:
    """The clauses, a clause over Google's input limit cut at spaces (or anywhere) into pieces within it.

    Google refuses an input over ``MAX_INPUT_BYTES`` (UTF-8) with
    INVALID_ARGUMENT; a long unpunctuated run of speech must still be spoken.
    """
    async for clause in clauses:
        if len(clause.encode()) <= MAX_INPUT_BYTES:
            yield clause
            continue
        piece = ""
        for word in clause.split(" "):
            while len(word.encode()) > MAX_INPUT_BYTES:  # one "word" over the limit (no spaces: CJK)
                if piece:
                    yield piece
                    piece = ""
                cut = len(word.encode()[:MAX_INPUT_BYTES].decode(errors="ignore"))
                yield word[:cut]
                word = word[cut:]
            candidate = f"{piece} {word}" if piece else word
            if len(candidate.encode()) > MAX_INPUT_BYTES:
                yield piece
                candidate = word
            piece = candidate
        if piece:
            yield piece


def voice_params(request: SpeechRequest) -> cloud_tts.VoiceSelectionParams:
    """The request's voice as Google names it."""
    voice = request.voice
    return cloud_tts.VoiceSelectionParams(language_code=voice.language_codes[0], name=voice.name)


def classify(err: grpc.aio.AioRpcError) -> Failure:
    """What a failed Text-to-Speech call means (its own INVALID_ARGUMENT and NOT_FOUND, then the shared rules)."""
    code, details = err.code(), err.details() or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return Failure(
            Action.FAIL,
            code,
            "Google Text-to-Speech rejected the speech settings (INVALID_ARGUMENT)",
            "check the voice, speaking rate and sample rate asked for; Google's own words are in the server log",
            details,
        )
    if code is grpc.StatusCode.NOT_FOUND:
        return Failure(
            Action.FAIL,
            grpc.StatusCode.FAILED_PRECONDITION,
            "Google Text-to-Speech does not know the voice (NOT_FOUND)",
            "choose another voice from ListLanguages",
            details,
        )
    return common_failure(code, details, API, ROLE)
