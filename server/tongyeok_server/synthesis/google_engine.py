"""Google Cloud Text-to-Speech (v1), behind the ``Synthesizer`` interface.

Selected with ``--synthesizer google``. Credentials as for Speech-to-Text
(``google/auth.py``): Application Default Credentials, renewed
by the engine before each call, a refusal is UNAUTHENTICATED at once;
``--google-tts-location`` picks the regional endpoint
(``eu-texttospeech.googleapis.com``), ``--google-tts-endpoint`` any other,
and ``--google-insecure`` / ``--google-ca-file`` apply to it as to
Speech-to-Text (the local fakes of the tests and the benchmark).

Two paths, by voice:

- **Streaming** (``StreamingSynthesize``) for the voices that take it,
  Chirp 3: HD (``en-US-Chirp3-HD-Charon``): one bidirectional call per
  utterance, the config first, then one text input per clause as the
  segmenter cuts it, so Google speaks the first clause while the
  translation is still arriving. Google gives PCM, MULAW, ALAW and OGG_OPUS
  at the caller's rate there, so the speaker passes its bytes on (Ogg: in
  whole pages).
- **Per clause** (``SynthesizeSpeech``) for every other voice (Neural2,
  WaveNet, Standard ...): one call per clause, LINEAR16/MULAW/ALAW at the
  caller's rate (the WAV header Google puts on them removed). OGG_OPUS is
  asked as LINEAR16 and encoded by the server, because Google's per-clause
  Ogg files would make a chain of Ogg streams per utterance that players do
  not all follow.

Failures: a transient status (UNAVAILABLE, quota, ...) is retried, with
back-off, as long as no audio of the call has been sent (a clause's call:
always; a streaming call: until its first audio); then the utterance's
speech ends with ``SYNTHESIS_FAILED`` in the words of ``google/status.py``
(Google's own words, which can name the project, only in the server log).
The voices come from ``ListVoices`` at start-up; if Google cannot be asked
then, a built-in list of Chirp 3: HD voices stands in, and the log says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import grpc.aio
from google.api_core.client_options import ClientOptions
from google.auth.credentials import Credentials
from google.cloud.texttospeech_v1 import TextToSpeechAsyncClient
from google.cloud.texttospeech_v1.services.text_to_speech.transports import TextToSpeechGrpcAsyncIOTransport
from google.cloud.texttospeech_v1.services.text_to_speech.transports.base import DEFAULT_CLIENT_INFO
from google.cloud.texttospeech_v1.types import cloud_tts

from tongyeok_client.backoff import Backoff
from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.errors import ServiceError
from tongyeok_server.google.auth import (
    CredentialKeeper,
    ca_file_credentials,
    load_credentials,
    transport_factory,
)
from tongyeok_server.google.status import Action, Failure
from tongyeok_server.session.speech import SpeechEncoding
from tongyeok_server.settings import GoogleSettings, OpenAISettings, SynthesisSettings
from tongyeok_server.synthesis import google_voices
from tongyeok_server.synthesis.base import SpeechRequest, Synthesizer
from tongyeok_server.synthesis.google_audio import OggPages, WavPayload, wav_payload
from tongyeok_server.synthesis.google_calls import (
    Calls,
    Inputs,
    classify,
    voice_params,
    within_input_limit,
    write_inputs,
)
from tongyeok_server.synthesis.google_voices import streams

log = logging.getLogger(__name__)
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]


# Retries of a call that failed before any of its audio was sent.
MAX_RETRIES = 3
BACKOFF = Backoff(0.25, 4.0)
QUOTA_BACKOFF = Backoff(1.0, 8.0)
CALL_TIMEOUT_S = 30.0  # one clause, or ListVoices; a streaming call has none (it lasts the utterance)
LIST_TIMEOUT_S = 10.0

_STREAMING_ENCODINGS = {
    SpeechEncoding.LINEAR16: cloud_tts.AudioEncoding.PCM,  # headerless; LINEAR16 is refused in streaming
    SpeechEncoding.MULAW: cloud_tts.AudioEncoding.MULAW,
    SpeechEncoding.ALAW: cloud_tts.AudioEncoding.ALAW,
    SpeechEncoding.OGG_OPUS: cloud_tts.AudioEncoding.OGG_OPUS,
}
_CLAUSE_ENCODINGS = {
    SpeechEncoding.LINEAR16: cloud_tts.AudioEncoding.LINEAR16,
    SpeechEncoding.MULAW: cloud_tts.AudioEncoding.MULAW,
    SpeechEncoding.ALAW: cloud_tts.AudioEncoding.ALAW,
}


class GoogleSynthesizer(Synthesizer):
    """Speaks translations with Google Cloud Text-to-Speech."""

    def __init__(
        self, settings: SynthesisSettings, google: GoogleSettings, credentials: Credentials | None = None
    ) -> None:
        """``credentials``: use these instead of Application Default Credentials (not with ``--google-insecure``)."""
        self._insecure = google.google_insecure
        self._location = settings.google_tts_location or "global"
        self._preferred = settings.google_tts_voice
        self._keeper: CredentialKeeper | None = None
        self._problem: ServiceError | None = None
        self._ssl_credentials: grpc.ChannelCredentials | None = None
        if self._insecure:  # settings/ checked that --google-tts-endpoint is given with it
            self._endpoint = settings.google_tts_endpoint
        else:
            self._endpoint = settings.google_tts_endpoint or (
                "texttospeech.googleapis.com"
                if self._location == "global"
                else f"{self._location}-texttospeech.googleapis.com"
            )
            self._ssl_credentials = ca_file_credentials(google.google_ca_file)
            self._keeper, _, self._problem = load_credentials(credentials, "google synthesizer")
        self._metadata = (DEFAULT_CLIENT_INFO.to_grpc_metadata(),)  # type: ignore[no-untyped-call]
        self._calls: Calls | None = None
        self._calls_loop: asyncio.AbstractEventLoop | None = None
        # Until start() lists Google's (on the server's loop): the built-in Chirp 3: HD list.
        self._voices: list[Voice] = google_voices.order(google_voices.built_in(self._preferred), self._preferred)
        self._voice_source = f"built-in list of {len(self._voices)} voices (not listed yet)"

    # -- voices ----------------------------------------------------------------

    async def start(self) -> None:
        """At server start, on its loop: Google's voices, so a bad credential shows in the log at once."""
        await self.load_voices()

    async def load_voices(self) -> None:
        """Ask Google for its voices (on the running loop); the built-in list if it cannot be asked."""
        failure: ServiceError | None = self._problem
        listed: list[cloud_tts.Voice] = []
        if failure is None:
            try:
                async with asyncio.timeout(LIST_TIMEOUT_S + 5):
                    outcome = await self._list_voices()
            except TimeoutError:
                outcome = ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, "ListVoices hung")
            if isinstance(outcome, ServiceError):
                failure = outcome
            else:
                listed = outcome
        if failure is None and listed:
            self._voices = google_voices.order(google_voices.from_google(listed), self._preferred)
            self._voice_source = f"{len(self._voices)} voices"
            return
        why = f"{failure.code.name}: {failure.message}" if failure is not None else "Google listed no voice"
        detail = f" ({failure.detail})" if failure is not None and failure.detail else ""
        log.warning(
            "google synthesizer: cannot list Google's voices (%s)%s; using the built-in Chirp 3: HD list", why, detail
        )
        self._voices = google_voices.order(google_voices.built_in(self._preferred), self._preferred)
        self._voice_source = f"built-in list of {len(self._voices)} voices (ListVoices failed)"

    async def _list_voices(self) -> list[cloud_tts.Voice] | ServiceError:
        calls = self._make_calls()
        try:
            failure = await self._renew()
            if failure is None:
                try:
                    response = await calls.voices(
                        cloud_tts.ListVoicesRequest(), metadata=self._metadata, timeout=LIST_TIMEOUT_S
                    )
                    return list(response.voices)
                except grpc.aio.AioRpcError as err:
                    failure = classify(err)
            return failure.ending()
        finally:
            await calls.close()

    @property
    def description(self) -> EngineDescription:
        """Engine name, location, voices (never the credential, project or address)."""
        return EngineDescription("google", f"Cloud Text-to-Speech v1, location {self._location}, {self._voice_source}")

    def voices(self) -> Sequence[Voice]:
        """Google's voices, the default of each language first."""
        return self._voices

    # -- what is spoken how -------------------------------------------------------

    def output_encoding(self, request: SpeechRequest) -> SpeechEncoding:
        """Google's own encoding where it gives the caller's (all four streaming; all but Ogg per clause)."""
        if streams(request.voice.name) or request.encoding in _CLAUSE_ENCODINGS:
            return request.encoding
        return SpeechEncoding.LINEAR16

    def output_rate(self, request: SpeechRequest) -> int:
        """Google synthesises at the rate asked."""
        return request.sample_rate_hz

    async def speak(self, request: SpeechRequest, clauses: AsyncIterator[str]) -> AsyncIterator[bytes]:
        """One streaming call for the utterance, or one call per clause (see the module docstring)."""
        if self._problem is not None:
            raise self._problem
        clauses = within_input_limit(clauses)
        if streams(request.voice.name):
            async for audio in self._speak_streaming(request, clauses):
                yield audio
            return
        async for clause in clauses:
            yield await self._speak_clause(request, clause)

    # -- per clause -------------------------------------------------------------

    async def _speak_clause(self, request: SpeechRequest, text: str) -> bytes:
        wanted = self.output_encoding(request)
        call = cloud_tts.SynthesizeSpeechRequest(
            input=cloud_tts.SynthesisInput(text=text),
            voice=voice_params(request),
            audio_config=cloud_tts.AudioConfig(
                audio_encoding=_CLAUSE_ENCODINGS[wanted],
                sample_rate_hertz=request.sample_rate_hz,
                speaking_rate=request.speaking_rate,
            ),
        )
        calls = self._loop_calls()

        async def attempt() -> bytes:
            response = await calls.clause(call, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
            return wav_payload(response.audio_content)

        audio: bytes = await self._with_retries(attempt, lambda: False)
        return audio

    # -- streaming ----------------------------------------------------------------

    async def _speak_streaming(self, request: SpeechRequest, clauses: AsyncIterator[str]) -> AsyncIterator[bytes]:
        inputs = Inputs(clauses)
        config = cloud_tts.StreamingSynthesizeRequest(
            streaming_config=cloud_tts.StreamingSynthesizeConfig(
                voice=voice_params(request),
                streaming_audio_config=cloud_tts.StreamingAudioConfig(
                    audio_encoding=_STREAMING_ENCODINGS[request.encoding],
                    sample_rate_hertz=request.sample_rate_hz,
                    speaking_rate=request.speaking_rate,
                ),
            )
        )
        calls = self._loop_calls()
        out: asyncio.Queue[bytes | None] = asyncio.Queue()
        sent = False
        frame: WavPayload | OggPages = WavPayload()

        async def attempt() -> None:
            nonlocal frame, sent
            # Each call is a new Ogg stream (or WAV): what a failed call held back is void.
            frame = OggPages() if request.encoding is SpeechEncoding.OGG_OPUS else WavPayload()
            call: Any = calls.stream(metadata=self._metadata)  # type: ignore[call-arg] # writes its own requests
            writer = asyncio.get_running_loop().create_task(write_inputs(call, config, inputs))
            try:
                while (response := await call.read()) is not _EOF:
                    audio = frame.feed(response.audio_content)
                    if audio:
                        sent = True  # from here on a failure cannot be retried: the caller has audio of this call
                        out.put_nowait(audio)
                await writer
            finally:
                writer.cancel()
                call.cancel()

        async def run() -> None:
            try:
                await self._with_retries(attempt, lambda: sent)
            finally:
                out.put_nowait(None)

        task = asyncio.get_running_loop().create_task(run())
        try:
            while (audio := await out.get()) is not None:
                yield audio
            await task  # raises the ServiceError that ended it
            tail = frame.finish()
            if tail:
                yield tail
        finally:
            task.cancel()
            inputs.close()

    # -- calls, credentials and retries ----------------------------------------

    async def _with_retries(self, attempt: Callable[[], Awaitable[Any]], audio_sent: Callable[[], bool]) -> Any:
        """``attempt()`` until it succeeds, fails for good, or fails after audio was sent."""
        retries = 0
        while True:
            failure = await self._renew()
            if failure is None:
                try:
                    return await attempt()
                except grpc.aio.AioRpcError as err:
                    failure = classify(err)
                if failure.action is Action.RECHECK:  # gRPC's plugin could not get a token: renew it ourselves, say why
                    failure = await self._renew() or failure
            if failure.action not in (Action.RETRY, Action.RECHECK) or audio_sent() or retries >= MAX_RETRIES:
                raise failure.ending(retries)
            quota = failure.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            retries += 1
            await asyncio.sleep((QUOTA_BACKOFF if quota else BACKOFF).delay_s(retries))

    async def _renew(self) -> Failure | None:
        return None if self._keeper is None else await self._keeper.ensure_valid()

    def _make_calls(self) -> Calls:
        if self._insecure:
            return Calls(grpc.aio.insecure_channel(self._endpoint), None)
        assert self._keeper is not None  # else speak raised self._problem
        client = TextToSpeechAsyncClient(
            credentials=self._keeper.credentials,
            client_options=ClientOptions(api_endpoint=self._endpoint),
            transport=transport_factory(TextToSpeechGrpcAsyncIOTransport, self._ssl_credentials),
        )
        transport = client.transport
        assert isinstance(transport, TextToSpeechGrpcAsyncIOTransport)
        return Calls(transport.grpc_channel, transport)

    def _loop_calls(self) -> Calls:
        """The channel of the running loop (a ``grpc.aio`` channel belongs to the loop it was made on)."""
        loop = asyncio.get_running_loop()
        if self._calls is None or self._calls_loop is not loop:
            self._calls, self._calls_loop = self._make_calls(), loop
        return self._calls

    def close(self) -> None:
        """Close the channel (cancelling calls still open) on its loop."""
        calls, loop = self._calls, self._calls_loop
        self._calls = self._calls_loop = None
        if calls is None or loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            loop.create_task(calls.close())
        elif loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(calls.close(), loop).result(timeout=5)
            except Exception as exc:  # shutdown goes on
                log.warning("google synthesizer: closing the channel failed (%s)", type(exc).__name__)


def create(settings: SynthesisSettings, google: GoogleSettings, openai: OpenAISettings) -> GoogleSynthesizer:
    """Factory used by the registry (``--synthesizer google``)."""
    del openai
    return GoogleSynthesizer(settings, google)  # its voices are listed by start(), on the server's loop
