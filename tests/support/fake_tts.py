"""A fake Google Cloud Text-to-Speech v1 server, for tests and the benchmark.

It speaks the real protocol (``google.cloud.texttospeech.v1.TextToSpeech``
with the proto-plus serializers of ``google-cloud-texttospeech``) and keeps
the rules of the real API that a client can get wrong:

- ``StreamingSynthesize``: the first request carries ``streaming_config`` and
  no input; every later one carries ``input`` only; only Chirp 3: HD voices
  stream; the encoding is PCM, MULAW, ALAW or OGG_OPUS (Google answers
  INVALID_ARGUMENT to anything else, LINEAR16 included). Audio comes back
  headerless (Ogg: one Ogg stream over the call) as each input is spoken.
- ``SynthesizeSpeech``: LINEAR16, MULAW and ALAW come in a WAV file, PCM
  without one, OGG_OPUS as an Ogg file; an unknown voice is INVALID_ARGUMENT.
- ``ListVoices`` lists its voices (filtered by ``language_code``).
- An input's text is at most ``MAX_INPUT_BYTES`` (UTF-8), per call or per
  streaming input, as Google's limit.
- Over TLS (``server_credentials``) it can check every call's bearer token
  (``accept_token``) and answer UNAUTHENTICATED in Google's words, as the
  fake Speech-to-Text does; ``CallRecord.authorization`` keeps what came.
- Rates: the one asked, else the voice's natural 24 kHz; speaking rate
  0.25-2.0 streaming, 0.25-4.0 otherwise.

It cannot speak, so the audio carries the words: each word is a tone burst
(``WORD_S`` seconds at speaking rate 1) at a frequency that depends on the
word (``word_tone``), with silence between words. ``heard_tones`` reads the
bursts back from decoded audio, so a test can check that every word arrived,
in order, at the rate asked, through any encoding.

It records every call (``calls``), sees a client's disconnect
(``CallRecord.cancelled`` and ``done``), can pace its speech (``speech_rtf``:
seconds of wall time per second of audio), and can be told to fail
(``fail``), with the statuses the real API gives.

Run on its own (the benchmark does)::

    python -m tests.support.fake_tts --port 50098
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import numpy as np
import soundfile
from google.cloud.texttospeech_v1.types import cloud_tts

from tests.support.aio_fake import AioFake
from tests.support.fake_speech import INVALID_CREDENTIALS_MESSAGE

log = logging.getLogger("fake_tts")

SERVICE = "google.cloud.texttospeech.v1.TextToSpeech"
NATURAL_RATE_HZ = 24000
WORD_S = 0.12
GAP_S = 0.04
TONE_BASE_HZ = 400
TONE_STEP_HZ = 100
TONES = 30  # 400 .. 3300 Hz: under the Nyquist frequency of 8 kHz audio
AMPLITUDE = 8000
# Google's limit on one input's text, per call or per streaming input (UTF-8 bytes).
MAX_INPUT_BYTES = 5000
CHUNK_S = 0.1  # streaming audio comes in responses of this much audio

Encoding = cloud_tts.AudioEncoding
_STREAMING_ENCODINGS = {Encoding.PCM, Encoding.MULAW, Encoding.ALAW, Encoding.OGG_OPUS}
_SUBTYPES = {Encoding.LINEAR16: "PCM_16", Encoding.PCM: "PCM_16", Encoding.MULAW: "ULAW", Encoding.ALAW: "ALAW"}

DEFAULT_VOICES = (
    ("en-US-Chirp3-HD-Charon", "en-US", cloud_tts.SsmlVoiceGender.MALE),
    ("en-US-Chirp3-HD-Kore", "en-US", cloud_tts.SsmlVoiceGender.FEMALE),
    ("en-US-Neural2-D", "en-US", cloud_tts.SsmlVoiceGender.MALE),
    ("en-GB-Chirp3-HD-Charon", "en-GB", cloud_tts.SsmlVoiceGender.MALE),
    ("es-ES-Chirp3-HD-Charon", "es-ES", cloud_tts.SsmlVoiceGender.MALE),
    ("es-ES-Standard-A", "es-ES", cloud_tts.SsmlVoiceGender.FEMALE),
    ("ko-KR-Chirp3-HD-Charon", "ko-KR", cloud_tts.SsmlVoiceGender.MALE),
    ("ko-KR-Standard-A", "ko-KR", cloud_tts.SsmlVoiceGender.FEMALE),
)


def words_of(text: str) -> list[str]:
    """The words of ``text`` as the fake speaks them (punctuation dropped, lower case)."""
    out = []
    for raw in text.split():
        word = "".join(c for c in raw.lower() if c.isalnum())
        if word:
            out.append(word)
    return out


def word_tone(word: str) -> int:
    """The tone (0 .. TONES-1) a word is spoken as."""
    return zlib.crc32(word.encode()) % TONES


def tones_of(text: str) -> list[int]:
    """The tones ``text`` is spoken as, in order."""
    return [word_tone(w) for w in words_of(text)]


def speak(text: str, rate_hz: int, speaking_rate: float = 1.0) -> np.ndarray:
    """int16 audio of ``text``: a tone burst per word, each followed by silence."""
    word_n, gap_n = round(WORD_S / speaking_rate * rate_hz), round(GAP_S / speaking_rate * rate_hz)
    t = np.arange(word_n) / rate_hz
    envelope = np.minimum(1.0, np.minimum(np.arange(word_n), word_n - 1 - np.arange(word_n)) / (0.005 * rate_hz))
    pieces = []
    for tone in tones_of(text):
        hz = TONE_BASE_HZ + TONE_STEP_HZ * tone
        pieces += [AMPLITUDE * envelope * np.sin(2 * np.pi * hz * t), np.zeros(gap_n)]
    return np.concatenate(pieces).astype(np.int16) if pieces else np.zeros(0, dtype=np.int16)


def heard_tones(samples: np.ndarray, rate_hz: int) -> list[int]:
    """The tones of the bursts in decoded audio, in order (the inverse of ``speak``)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    frame = max(1, round(0.01 * rate_hz))
    energy = np.sqrt(np.convolve(x * x, np.ones(frame) / frame, mode="same"))
    loud = energy > AMPLITUDE / 8
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    out = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start < 0.02 * rate_hz:
            continue
        burst = x[start:end] * np.hanning(end - start)
        spectrum = np.abs(np.fft.rfft(burst, n=max(8192, end - start)))
        hz = np.argmax(spectrum) * rate_hz / max(8192, end - start)
        out.append(round((hz - TONE_BASE_HZ) / TONE_STEP_HZ))
    return out


def encode(samples: np.ndarray, rate_hz: int, encoding: int) -> bytes:
    """One whole file, as ``SynthesizeSpeech`` returns it."""
    out = io.BytesIO()
    if encoding == Encoding.OGG_OPUS:
        soundfile.write(out, samples, rate_hz, format="OGG", subtype="OPUS")
    elif encoding == Encoding.PCM:
        return samples.astype("<i2").tobytes()
    else:
        soundfile.write(out, samples, rate_hz, format="WAV", subtype=_SUBTYPES[encoding])
    return out.getvalue()


class _StreamEncoder:
    """Headerless samples, or one Ogg stream over the whole call (bytes handed over as libsndfile writes them)."""

    def __init__(self, rate_hz: int, encoding: int) -> None:
        self._encoding = encoding
        self._buf = io.BytesIO()
        self._taken = 0
        self._ogg = (
            soundfile.SoundFile(self._buf, "w", rate_hz, 1, format="OGG", subtype="OPUS")
            if encoding == Encoding.OGG_OPUS
            else None
        )

    def encode(self, samples: np.ndarray) -> bytes:
        if self._ogg is None:
            raw = io.BytesIO()
            soundfile.write(raw, samples, 8000, format="RAW", subtype=_SUBTYPES[self._encoding])
            return raw.getvalue()
        self._ogg.write(samples)
        return self._take()

    def finish(self) -> bytes:
        if self._ogg is None:
            return b""
        self._ogg.close()
        return self._take()

    def _take(self) -> bytes:
        data = self._buf.getvalue()[self._taken :]
        self._taken += len(data)
        return data


@dataclass
class CallRecord:
    """What the fake saw on one call."""

    method: str  # "StreamingSynthesize", "SynthesizeSpeech" or "ListVoices"
    voice: str = ""
    encoding: int = 0
    sample_rate_hz: int = 0
    speaking_rate: float = 0.0
    inputs: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    status: grpc.StatusCode | None = None  # how the fake ended the call (OK, or its error); None: the client did
    cancelled: bool = False  # the client cancelled (or went away)
    done: threading.Event = field(default_factory=threading.Event)
    ended_at: float = 0.0  # time.monotonic() when the call ended
    authorization: str = ""  # the call's ``authorization`` metadata ("Bearer <token>"), if any


@dataclass
class _Fault:
    method: str
    code: grpc.StatusCode
    message: str
    after_inputs: int
    remaining: int  # -1: every call


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeTextToSpeech(AioFake):
    """The fake service; ``calls`` records every call. Settings may be changed from any thread."""

    thread_name = "fake-tts"

    def __init__(
        self,
        *,
        voices: Iterable[tuple[str, str, int]] = DEFAULT_VOICES,
        speech_rtf: float = 0.0,
        first_audio_s: float = 0.0,
        server_credentials: grpc.ServerCredentials | None = None,
        accept_token: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__()
        self.accept_token = accept_token  # None: no token needed (and none is checked)
        self.voices = [
            cloud_tts.Voice(name=n, language_codes=[c], ssml_gender=g, natural_sample_rate_hertz=NATURAL_RATE_HZ)
            for n, c, g in voices
        ]
        self.speech_rtf = speech_rtf  # wall seconds per audio second (0: as fast as it can)
        self.first_audio_s = first_audio_s  # wall time before an input's first audio
        self.server_credentials = server_credentials
        self.calls: list[CallRecord] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    async def serve(self, port: int = 0) -> grpc.aio.Server:
        server = grpc.aio.server()
        methods = {
            "StreamingSynthesize": grpc.stream_stream_rpc_method_handler(
                self._streaming_synthesize,
                request_deserializer=cloud_tts.StreamingSynthesizeRequest.deserialize,
                response_serializer=cloud_tts.StreamingSynthesizeResponse.serialize,
            ),
            "SynthesizeSpeech": grpc.unary_unary_rpc_method_handler(
                self._synthesize_speech,
                request_deserializer=cloud_tts.SynthesizeSpeechRequest.deserialize,
                response_serializer=cloud_tts.SynthesizeSpeechResponse.serialize,
            ),
            "ListVoices": grpc.unary_unary_rpc_method_handler(
                self._list_voices,
                request_deserializer=cloud_tts.ListVoicesRequest.deserialize,
                response_serializer=cloud_tts.ListVoicesResponse.serialize,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
        return await self.listen(server, port, self.server_credentials)

    # Faults -----------------------------------------------------------------

    def fail(
        self,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        *,
        method: str = "",
        after_inputs: int = 0,
        message: str = "The service is currently unavailable.",
        times: int = 1,
    ) -> None:
        """End the next ``times`` calls of ``method`` ("" any; -1 every call) with ``code``.

        A streaming call fails once it has spoken ``after_inputs`` inputs.
        """
        with self._lock:
            self._faults.append(_Fault(method, code, message, after_inputs, times))

    def clear_faults(self) -> None:
        """Behave again."""
        with self._lock:
            self._faults.clear()

    def streaming_calls(self) -> list[CallRecord]:
        """The StreamingSynthesize calls so far."""
        return [c for c in self.calls if c.method == "StreamingSynthesize"]

    def _fault(self, method: str, inputs: int) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining and fault.method in ("", method) and inputs >= fault.after_inputs:
                    if fault.remaining > 0:
                        fault.remaining -= 1
                    raise _Abort(fault.code, fault.message)

    def _record(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> CallRecord:
        record = CallRecord(method)
        with self._lock:
            self.calls.append(record)

        def on_done(_: object) -> None:
            # Runs when the RPC ends for any reason; if the fake did not end it
            # itself (status still None), the client cancelled or went away.
            record.cancelled = record.status is None
            record.ended_at = time.monotonic()
            record.done.set()

        context.add_done_callback(on_done)  # type: ignore[arg-type]  # grpc-stubs: a class, not a Protocol
        record.authorization = str(dict(context.invocation_metadata() or ()).get("authorization", ""))
        return record

    def _authorized(self, record: CallRecord) -> None:
        """UNAUTHENTICATED, in Google's words, for a call whose bearer token is not accepted."""
        if self.accept_token is not None:
            scheme, _, token = record.authorization.partition(" ")
            if scheme != "Bearer" or not self.accept_token(token):
                raise _Abort(grpc.StatusCode.UNAUTHENTICATED, INVALID_CREDENTIALS_MESSAGE)

    @staticmethod
    def _within_limit(text: str) -> None:
        size = len(text.encode())
        if size > MAX_INPUT_BYTES:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Either `input.text` or `input.ssml` is longer than the limit of {MAX_INPUT_BYTES} bytes "
                f"(it is {size}). This limit is different from quotas.",
            )

    # Checks, in Google's words -------------------------------------------------

    def _voice(self, params: cloud_tts.VoiceSelectionParams) -> cloud_tts.Voice:
        for voice in self.voices:
            if voice.name == params.name:
                if params.language_code and params.language_code.lower() not in [
                    c.lower() for c in voice.language_codes
                ]:
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Requested language code '{params.language_code}' doesn't match the voice '{voice.name}'s "
                        f"language code '{voice.language_codes[0]}'.",
                    )
                return voice
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Voice '{params.name}' does not exist. Is it misspelled?")

    @staticmethod
    def _speaking_rate(value: float, top: float) -> float:
        if value and not 0.25 <= value <= top:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"speaking_rate must be between 0.25 and {top:g}.")
        return value or 1.0

    # The RPCs -------------------------------------------------------------------

    async def _list_voices(self, request: cloud_tts.ListVoicesRequest, context: Any) -> cloud_tts.ListVoicesResponse:
        record = self._record("ListVoices", context)
        try:
            self._authorized(record)
            self._fault("ListVoices", 0)
        except _Abort as abort:
            record.status = abort.code
            await context.abort(abort.code, abort.message)
        wanted = request.language_code.lower()
        voices = [v for v in self.voices if not wanted or any(c.lower().startswith(wanted) for c in v.language_codes)]
        record.status = grpc.StatusCode.OK
        return cloud_tts.ListVoicesResponse(voices=voices)

    async def _synthesize_speech(
        self, request: cloud_tts.SynthesizeSpeechRequest, context: Any
    ) -> cloud_tts.SynthesizeSpeechResponse:
        record = self._record("SynthesizeSpeech", context)
        try:
            self._authorized(record)
            self._fault("SynthesizeSpeech", 0)
            voice = self._voice(request.voice)
            config = request.audio_config
            if config.audio_encoding == Encoding.AUDIO_ENCODING_UNSPECIFIED:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "audio_config.audio_encoding is required.")
            if config.audio_encoding not in (*_SUBTYPES, Encoding.OGG_OPUS):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Unsupported audio encoding for this fake.")
            text = request.input.text
            if not text:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Either `input.text` or `input.ssml` is required.")
            self._within_limit(text)
            speed = self._speaking_rate(config.speaking_rate, 4.0)
        except _Abort as abort:
            record.status = abort.code
            await context.abort(abort.code, abort.message)
        rate = config.sample_rate_hertz or voice.natural_sample_rate_hertz
        record.voice, record.encoding, record.sample_rate_hz, record.speaking_rate = (
            voice.name,
            int(config.audio_encoding),
            rate,
            speed,
        )
        record.inputs.append(text)
        samples = speak(text, rate, speed)
        await asyncio.sleep(self.first_audio_s + self.speech_rtf * len(samples) / rate)
        audio = encode(samples, rate, config.audio_encoding)
        record.audio_bytes = len(audio)
        record.status = grpc.StatusCode.OK
        return cloud_tts.SynthesizeSpeechResponse(audio_content=audio)

    async def _streaming_synthesize(self, _requests: object, context: Any) -> None:
        record = self._record("StreamingSynthesize", context)
        try:
            await self._stream(context, record)
        except _Abort as abort:
            record.status = abort.code
            await context.abort(abort.code, abort.message)
        record.status = grpc.StatusCode.OK

    async def _stream(self, context: Any, record: CallRecord) -> None:
        self._authorized(record)
        first = await context.read()
        if first is grpc.aio.EOF:  # type: ignore[attr-defined]
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The first request must contain a streaming_config.")
        if "streaming_config" not in first or "input" in first:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "The first StreamingSynthesizeRequest must contain streaming_config and no input.",
            )
        config = first.streaming_config
        voice = self._voice(config.voice)
        if "-Chirp3-HD-" not in voice.name:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Voice '{voice.name}' does not support streaming synthesis."
            )
        audio_config = config.streaming_audio_config
        encoding = audio_config.audio_encoding or Encoding.PCM
        if encoding not in _STREAMING_ENCODINGS:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Unsupported audio encoding {Encoding(encoding).name} for streaming: use PCM, ALAW, MULAW or OGG_OPUS.",
            )
        rate = audio_config.sample_rate_hertz or voice.natural_sample_rate_hertz
        speed = self._speaking_rate(audio_config.speaking_rate, 2.0)
        record.voice, record.encoding, record.sample_rate_hz, record.speaking_rate = (
            voice.name,
            int(encoding),
            rate,
            speed,
        )
        encoder = _StreamEncoder(rate, encoding)
        self._fault("StreamingSynthesize", 0)
        while (request := await context.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
            if "streaming_config" in request or "input" not in request:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Only the first StreamingSynthesizeRequest may contain streaming_config; later ones need input.",
                )
            text = request.input.text
            self._within_limit(text)
            record.inputs.append(text)
            samples = speak(text, rate, speed)
            if self.first_audio_s:
                await asyncio.sleep(self.first_audio_s)
            step = round(CHUNK_S * rate)
            for i in range(0, len(samples), step):
                piece = samples[i : i + step]
                if self.speech_rtf:
                    await asyncio.sleep(self.speech_rtf * len(piece) / rate)
                await self._send(context, record, encoder.encode(piece))
            self._fault("StreamingSynthesize", len(record.inputs))
        await self._send(context, record, encoder.finish())

    @staticmethod
    async def _send(context: Any, record: CallRecord, audio: bytes) -> None:
        if audio:
            record.audio_bytes += len(audio)
            await context.write(cloud_tts.StreamingSynthesizeResponse(audio_content=audio))


async def _serve_until_signalled(fake: FakeTextToSpeech, port: int) -> None:
    server = await fake.serve(port)
    print(f"fake Text-to-Speech on {fake.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def main(argv: Iterable[str] | None = None) -> None:
    """Serve the fake until SIGINT/SIGTERM (the benchmark runs it as a process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--speech-rtf", type=float, default=0.0, help="wall seconds per second of audio")
    parser.add_argument("--first-audio-ms", type=float, default=0.0, help="wall time before an input's first audio")
    args = parser.parse_args(list(argv) if argv is not None else None)
    fake = FakeTextToSpeech(speech_rtf=args.speech_rtf, first_audio_s=args.first_audio_ms / 1000)
    asyncio.run(_serve_until_signalled(fake, args.port))


if __name__ == "__main__":
    main()
