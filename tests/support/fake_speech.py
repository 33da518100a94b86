"""A fake Google Cloud Speech-to-Text v2 streaming server, for tests and the benchmark.

It speaks the real protocol (``google.cloud.speech.v2.Speech/StreamingRecognize``
with the proto-plus serializers of ``google-cloud-speech``), so the real
``SpeechClient`` talks to it, and it enforces the limits that matter:

- the first request carries ``recognizer`` and ``streaming_config`` and no audio;
- no audio request over 15 KB (15360 bytes);
- a stream ends with OUT_OF_RANGE after 305 s of *audio time* (bytes / rate),
  so tests can run faster than real time;
- a stream that receives no request for ``audio_timeout_s`` of *wall time*
  (Google's: about ``AUDIO_TIMEOUT_S``, on by default) ends with Google's
  "Audio Timeout Error";
- the explicit decoding config must name LINEAR16, MULAW or ALAW, and the
  audio is decoded as it says (G.711 by its own table, ``g711``): audio
  sent under the wrong encoding is heard as other words, as Google would
  hear noise;
- it can be told to fail once with UNAVAILABLE in the middle of a stream, or
  to refuse every stream (PERMISSION_DENIED and friends);
- over TLS (``server_credentials``) it can check the bearer token of every
  call, as Google does, and answer UNAUTHENTICATED to one it does not accept
  (``accept_token``); gRPC sends call credentials only over a secure channel,
  so this is how the real credential plugin runs against the fake;
- it can take its time to finalise after the client half-closes
  (``finalise_delay_s``), as Google sometimes does.

It cannot do speech recognition, so the audio itself carries the words: in
LINEAR16 audio a word is a run of identical non-zero samples whose value is
the word's id, silence is zeros (see ``word_for_id`` and ``synthesize``).
Because the words are in the audio content, audio that the client resends
after a restart is recognised as the same words, whatever position the
client claims, which is what lets a test prove that no word is lost or
repeated across restarts.

Recognition rules (deterministic): a word is heard when its run ends; an
utterance is final after ``endpoint_s`` of silence (``result_end_offset`` is
that point), or when the client half-closes; voice-activity events are sent
when the config asks.

Interims come as Google sends them (its documentation's "to be or not to
be" example): each heard word produces a response whose text grows; its
words but the last are one result with ``stability`` 0.9 (ending where that
word ended), the last word a second result with 0.01 and a leading space,
so most responses carry two results; and the newest word is sometimes
misheard at first (another word of the vocabulary, ``misheard``) and
revised in the next response, where it has become stable.

Run on its own (the benchmark does)::

    python -m tests.support.fake_speech --port 50099 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import grpc.aio
import numpy as np
from google.cloud.speech_v2.types import cloud_speech

from tests.support import g711
from tests.support.aio_fake import AioFake

log = logging.getLogger("fake_speech")

SERVICE = "google.cloud.speech.v2.Speech"
MAX_AUDIO_BYTES = 15360
MAX_STREAM_AUDIO_S = 305.0
# Google ends a stream that gets no audio for about this long (wall time).
AUDIO_TIMEOUT_S = 10.0
_ENCODING = cloud_speech.ExplicitDecodingConfig.AudioEncoding
_LAWS = {_ENCODING.MULAW: g711.MULAW, _ENCODING.ALAW: g711.ALAW}
DURATION_MESSAGE = "Exceeded maximum allowed stream duration of 305 seconds."
AUDIO_TIMEOUT_MESSAGE = (
    "Audio Timeout Error: Long duration elapsed without audio. Audio should be sent close to real time."
)
# Google's answer to a call whose bearer token it does not accept.
INVALID_CREDENTIALS_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

# Word ids: 1.. English, SPANISH_BASE.. Spanish, KOREAN_BASE.. Korean.
SPANISH_BASE = 8192
KOREAN_BASE = 16384
ENGLISH_WORDS = (  # noqa: SIM905 - prose reads better than a list of quoted words
    "good morning thank you for coming we are glad to meet the team today our plan is ready "
    "please review this proposal and send your comments by friday the price includes delivery "
    "support and training we hope to sign next week let us schedule a call"
).split()
SPANISH_WORDS = (  # noqa: SIM905 - words the Apertium eng-spa pair knows
    "buenos días gracias por venir estamos contentos de conocer al equipo el precio incluye la entrega "
    "por favor revise la propuesta y envíe sus comentarios"
).split()
KOREAN_WORDS = (  # noqa: SIM905
    "안녕하세요 만나서 반갑습니다 오늘 회의에 와 주셔서 감사합니다 저희 제안서를 검토해 주시기 바랍니다 "
    "가격에는 배송과 지원이 포함되어 있습니다 다음 주에 계약하고 싶습니다"
).split()


#: The shortest run of one sample value that is a word (``synthesize`` makes 0.3 s words).
MIN_WORD_S = 0.02

#: A Google interim result's stability: the words it will not revise, and the newest one.
STABLE_STABILITY = 0.9
UNSTABLE_STABILITY = 0.01


def misheard(word_id: int, position: int) -> int | None:
    """The word the fake first hears instead of ``word_id`` at ``position`` of its utterance, or None.

    About one word in four, deterministic in the word and its place, and of
    the same language (the neighbouring word id).
    """
    if zlib.crc32(f"{word_id}:{position}".encode()) % 4:
        return None
    base = KOREAN_BASE if word_id >= KOREAN_BASE else SPANISH_BASE if word_id >= SPANISH_BASE else 0
    vocabulary = len(KOREAN_WORDS if base == KOREAN_BASE else SPANISH_WORDS if base == SPANISH_BASE else ENGLISH_WORDS)
    start = base or 1
    return start + (word_id - start + 1) % vocabulary


def word_for_id(word_id: int) -> tuple[str, str]:
    """The text and language (BCP-47, as configured) of a word id (1..32767)."""
    if word_id <= 0 or word_id > 32767:
        raise ValueError(f"word id {word_id} out of range")
    if word_id >= KOREAN_BASE:
        return KOREAN_WORDS[(word_id - KOREAN_BASE) % len(KOREAN_WORDS)], "ko-KR"
    if word_id >= SPANISH_BASE:
        return SPANISH_WORDS[(word_id - SPANISH_BASE) % len(SPANISH_WORDS)], "es-ES"
    return ENGLISH_WORDS[(word_id - 1) % len(ENGLISH_WORDS)], "en-US"


@dataclass(frozen=True)
class Timing:
    """How ``synthesize`` lays words out in time (seconds)."""

    word_s: float = 0.30
    word_gap_s: float = 0.05
    utterance_gap_s: float = 0.80
    lead_in_s: float = 0.20


def synthesize(
    utterances: Sequence[Sequence[int]], sample_rate_hz: int = 16000, timing: Timing = Timing(), encoding: str = ""
) -> bytes:
    """Mono audio that the fake recognises as ``utterances`` (lists of word ids): LINEAR16, or G.711 by ``encoding``.

    ``encoding`` ``"MULAW"`` or ``"ALAW"``: telephone audio, word ids 1..127 only (see ``g711``).
    """
    if encoding:
        return g711.encode_words(np.concatenate(list(_pieces(utterances, sample_rate_hz, timing))), encoding)
    return b"".join(np.asarray(a, dtype="<i2").tobytes() for a in _pieces(utterances, sample_rate_hz, timing))


def utterance_ends_s(utterances: Sequence[Sequence[int]], timing: Timing = Timing()) -> list[tuple[float, float]]:
    """(end of last word, start of next speech) of every utterance, in seconds of audio."""
    t = timing.lead_in_s
    out = []
    for words in utterances:
        t += len(words) * timing.word_s + (len(words) - 1) * timing.word_gap_s
        out.append((t, t + timing.utterance_gap_s))
        t += timing.utterance_gap_s
    return out


def _pieces(utterances: Sequence[Sequence[int]], rate: int, timing: Timing) -> Iterator[np.ndarray]:
    def n(seconds: float) -> int:
        return round(seconds * rate)

    yield np.zeros(n(timing.lead_in_s))
    for words in utterances:
        for i, word_id in enumerate(words):
            word_for_id(word_id)  # validates
            if i:
                yield np.zeros(n(timing.word_gap_s))
            yield np.full(n(timing.word_s), word_id)
        yield np.zeros(n(timing.utterance_gap_s))


def decoder_input(audio: bytes, law: str) -> bytes:
    """G.711 audio as the LINEAR16 word samples the decoder reads."""
    return bytes(g711.decode_words(audio, law).astype("<i2").tobytes())


# --------------------------------------------------------------------------- records


HALF_CLOSE_SETTLE_S = 0.2


@dataclass
class StreamRecord:
    """What the fake saw on one StreamingRecognize call (for assertions)."""

    index: int
    recognizer: str = ""
    config: cloud_speech.StreamingRecognitionConfig | None = None
    request_sizes: list[int] = field(default_factory=list)
    audio_bytes: int = 0
    audio_s: float = 0.0
    final_texts: list[str] = field(default_factory=list)
    half_closed: bool = False
    status: grpc.StatusCode | None = None  # set when the fake ended the call itself
    cancelled: bool = False  # the client cancelled (or went away)
    authorization: str = ""  # the call's ``authorization`` metadata ("Bearer <token>"), if any
    done: threading.Event = field(default_factory=threading.Event)
    audio: bytearray | None = None  # every audio byte received, when the fake keeps them (``keep_audio``)

    @property
    def max_request_bytes(self) -> int:
        """The largest audio payload of any request."""
        return max(self.request_sizes, default=0)


@dataclass
class _Fault:
    code: grpc.StatusCode
    message: str
    after_audio_s: float
    remaining: int  # how many streams it still hits (-1: all)
    responses_first: int = 0  # responses without results sent right before the status
    before_status: Callable[[], None] | None = None  # called (on the fake's thread) before those responses


# --------------------------------------------------------------------------- recognition

_Response = cloud_speech.StreamingRecognizeResponse
_RESPONSE_PB = _Response.pb()
_ACTIVITY_BEGIN = _Response.SpeechEventType.SPEECH_ACTIVITY_BEGIN
_ACTIVITY_END = _Response.SpeechEventType.SPEECH_ACTIVITY_END


class _Decoder:
    """Turns LINEAR16 audio into results, following the rules in the module docstring."""

    def __init__(self, rate: int, channels: int, endpoint_s: float, interim: bool, vad: bool) -> None:
        self.rate = rate
        self.channels = channels
        self.endpoint = round(endpoint_s * rate)
        self.interim = interim
        self.vad = vad
        self.pos = 0  # samples (frames) seen
        self.run_value = 0
        self.run_start = 0
        self.words: list[int] = []
        self.word_ends: list[int] = []  # where each heard word ended (samples)
        self.in_speech = False
        self.finals: list[str] = []

    def feed(self, audio: bytes) -> list[cloud_speech.StreamingRecognizeResponse]:
        frame = 2 * self.channels
        usable = len(audio) - len(audio) % frame
        out: list[cloud_speech.StreamingRecognizeResponse] = []
        if not usable:
            return out
        frames = usable // frame
        runs: Iterable[tuple[int, int, int]]
        if audio.count(audio[:2], 0, usable) * 2 == usable:
            # Every sample is the same (inside a word or a silence: most chunks). n
            # non-overlapping matches of a 2-byte pattern in 2n bytes tile them exactly.
            runs = ((0, frames, int.from_bytes(audio[:2], "little", signed=True)),)
        else:
            samples = np.frombuffer(audio, dtype="<i2", count=usable // 2)[:: self.channels]
            starts = [0, *(np.flatnonzero(np.diff(samples)) + 1).tolist()]
            runs = zip(starts, [*starts[1:], frames], samples[starts].tolist(), strict=True)
        base = self.pos
        for s, e, value in runs:
            if value != self.run_value:
                self._close_run(base + s, out)
                self.run_value = value
                self.run_start = base + s
                if value and not self.in_speech:
                    self.in_speech = True
                    if self.vad:
                        out.append(self._event(_ACTIVITY_BEGIN, base + s))
            if value == 0 and self.words:
                end_point = self.run_start + self.endpoint
                if end_point <= base + e:
                    out.extend(self._final(end_point))
        self.pos = base + frames
        return out

    def flush(self) -> list[cloud_speech.StreamingRecognizeResponse]:
        """Half-close: whatever was heard becomes final."""
        out: list[cloud_speech.StreamingRecognizeResponse] = []
        self._close_run(self.pos, out)
        self.run_value = 0
        self.run_start = self.pos
        if self.words:
            out.extend(self._final(self.pos))
        return out

    def _close_run(self, at: int, out: list[cloud_speech.StreamingRecognizeResponse]) -> None:
        # A word is a run of one valid id lasting MIN_WORD_S; shorter runs and other values are noise
        # (audio someone processed, e.g. an echo canceller's residue), which the fake hears as nothing.
        if 0 < self.run_value <= 32767 and at - self.run_start >= MIN_WORD_S * self.rate:
            self.words.append(self.run_value)
            self.word_ends.append(at)
            if self.interim:
                out.append(self._interim(at))

    def _final(self, at: int) -> list[cloud_speech.StreamingRecognizeResponse]:
        out = [self._final_result(at)]
        self.finals.append(" ".join(word_for_id(w)[0] for w in self.words))
        self.words = []
        self.word_ends = []
        if self.in_speech:
            self.in_speech = False
            if self.vad:
                out.append(self._event(_ACTIVITY_END, at))
        return out

    def _nanoseconds(self, samples: int) -> int:
        return samples * 1_000_000_000 // self.rate

    # Responses are built as raw protobufs and wrapped (the same message; building
    # through proto-plus's constructors costs ten times as much).

    def _final_result(self, at: int) -> cloud_speech.StreamingRecognizeResponse:
        response = _RESPONSE_PB()
        result = response.results.add()
        result.alternatives.add(transcript=" ".join(word_for_id(w)[0] for w in self.words), confidence=0.9)
        result.is_final = True
        result.result_end_offset.FromNanoseconds(self._nanoseconds(at))
        result.language_code = word_for_id(self.words[0])[1].lower()  # Google answers in lower case
        wrapped: cloud_speech.StreamingRecognizeResponse = _Response.wrap(response)
        return wrapped

    def _interim(self, at: int) -> cloud_speech.StreamingRecognizeResponse:
        """The stable words as one result (0.9), the newest word, perhaps misheard, as another (0.01)."""
        response = _RESPONSE_PB()
        language = word_for_id(self.words[0])[1].lower()
        if len(self.words) > 1:
            stable = response.results.add()
            stable.alternatives.add(transcript=" ".join(word_for_id(w)[0] for w in self.words[:-1]))
            stable.stability = STABLE_STABILITY
            stable.result_end_offset.FromNanoseconds(self._nanoseconds(self.word_ends[-2]))
            stable.language_code = language
        newest = self.words[-1]
        heard = misheard(newest, len(self.words) - 1) or newest
        tail = response.results.add()
        tail.alternatives.add(transcript=(" " if len(self.words) > 1 else "") + word_for_id(heard)[0])
        tail.stability = UNSTABLE_STABILITY
        tail.result_end_offset.FromNanoseconds(self._nanoseconds(at))
        tail.language_code = language
        wrapped: cloud_speech.StreamingRecognizeResponse = _Response.wrap(response)
        return wrapped

    def _event(self, kind: int, at: int) -> cloud_speech.StreamingRecognizeResponse:
        response = _RESPONSE_PB(speech_event_type=kind)
        response.speech_event_offset.FromNanoseconds(self._nanoseconds(at))
        wrapped: cloud_speech.StreamingRecognizeResponse = _Response.wrap(response)
        return wrapped


# --------------------------------------------------------------------------- server


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_Request = cloud_speech.StreamingRecognizeRequest
_Context = grpc.aio.ServicerContext[cloud_speech.StreamingRecognizeRequest, cloud_speech.StreamingRecognizeResponse]
# grpc-stubs does not declare grpc.aio.EOF.
_EOF: object = getattr(grpc.aio, "EOF")  # noqa: B009


class FakeSpeech(AioFake):
    """The fake service. ``start()`` serves it on 127.0.0.1; ``streams`` records every call.

    It is a ``grpc.aio`` server: every stream is a coroutine, so hundreds of
    streams cost no thread each. In-process (tests), ``start()`` runs it on an
    event loop in a thread of its own and ``stop()`` ends that thread, so
    plain synchronous code uses it as before (``with FakeSpeech() as fake:``);
    the fake's settings and fault methods may be changed from any thread.
    """

    thread_name = "fake-speech"

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        audio_timeout_s: float = AUDIO_TIMEOUT_S,
        max_stream_audio_s: float = MAX_STREAM_AUDIO_S,
        endpoint_s: float = 0.5,
        server_credentials: grpc.ServerCredentials | None = None,
        accept_token: Callable[[str], bool] | None = None,
        finalise_delay_s: float = 0.0,
        keep_audio: bool = False,
    ) -> None:
        super().__init__()
        self.keep_audio = keep_audio  # record each stream's audio (tests of what reached the recogniser)
        self.latency_s = latency_s
        self.server_credentials = server_credentials  # None: plaintext
        self.accept_token = accept_token  # None: no token needed (and none is checked)
        self.finalise_delay_s = finalise_delay_s
        self.audio_timeout_s = audio_timeout_s  # 0: no audio timeout
        self.max_stream_audio_s = max_stream_audio_s
        self.endpoint_s = endpoint_s
        self.streams: list[StreamRecord] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    # Serving ------------------------------------------------------------------

    async def serve(self, port: int = 0) -> grpc.aio.Server:
        """Start serving on 127.0.0.1 on the running event loop (``port`` 0 picks a free one)."""
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
                    self._streaming_recognize,
                    request_deserializer=_Request.deserialize,
                    response_serializer=cloud_speech.StreamingRecognizeResponse.serialize,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        return await self.listen(server, port, self.server_credentials)

    # Faults -----------------------------------------------------------------

    def fail_once(
        self,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        *,
        after_audio_s: float = 0.0,
        message: str = "The service is currently unavailable.",
        times: int = 1,
        responses_first: int = 0,
        before_status: Callable[[], None] | None = None,
    ) -> None:
        """End the next ``times`` stream(s) with ``code`` once they carried ``after_audio_s`` of audio.

        ``responses_first``: that many responses without results (Google's
        metadata-only kind) go out right before the status, so that a client
        has responses left to read when the call ends under its writes;
        ``before_status`` is called first, on the fake's thread (a test can
        hold its client back there).
        """
        with self._lock:
            self._faults.append(_Fault(code, message, after_audio_s, times, responses_first, before_status))

    def refuse_all(
        self,
        code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED,
        message: str = ("Permission 'speech.recognizers.recognize' denied on resource (or it may not exist)."),
    ) -> None:
        """Refuse every stream at its first request, as Google does with a rejected credential."""
        with self._lock:
            self._faults.append(_Fault(code, message, 0.0, -1))

    def clear_faults(self) -> None:
        """Behave again."""
        with self._lock:
            self._faults.clear()

    def _fault_for(self, audio_s: float) -> _Fault | None:
        if not self._faults:  # the common case, without the lock
            return None
        with self._lock:
            for fault in self._faults:
                if fault.remaining and audio_s >= fault.after_audio_s:
                    if fault.remaining > 0:
                        fault.remaining -= 1
                    return fault
        return None

    # The RPC ----------------------------------------------------------------

    async def _streaming_recognize(self, _requests: object, context: _Context) -> None:
        with self._lock:
            record = StreamRecord(index=len(self.streams), audio=bytearray() if self.keep_audio else None)
            self.streams.append(record)

        def on_done(_: object) -> None:
            # Runs when the RPC terminates for any reason; if the fake did not
            # end it itself (status still None), the client cancelled.
            if record.status is None:
                record.cancelled = True
            record.done.set()

        context.add_done_callback(on_done)  # type: ignore[arg-type]  # grpc-stubs: a class, not a Protocol
        metadata = dict(context.invocation_metadata() or ())
        record.authorization = str(metadata.get("authorization", ""))
        try:
            if self.accept_token is not None:
                scheme, _, token = record.authorization.partition(" ")
                if scheme != "Bearer" or not self.accept_token(token):
                    raise _Abort(grpc.StatusCode.UNAUTHENTICATED, INVALID_CREDENTIALS_MESSAGE)
            await self._serve(context, record)
        except _Abort as abort:
            record.status = abort.code
            await context.abort(abort.code, abort.message)
        else:
            record.status = grpc.StatusCode.OK

    async def _read(self, context: _Context) -> cloud_speech.StreamingRecognizeRequest | None:
        """The next request (``None`` at half-close); with an audio timeout, waiting for it can time out."""
        timeout = self.audio_timeout_s
        if timeout:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that comes as the read
            # completes (the client's cancel ends the read too), and the fake then finished the call as if
            # the client had half-closed.
            try:
                async with asyncio.timeout(timeout):
                    request: object = await context.read()
            except TimeoutError:
                raise _Abort(grpc.StatusCode.OUT_OF_RANGE, AUDIO_TIMEOUT_MESSAGE) from None
        else:
            request = await context.read()
        if request is _EOF:
            return None
        assert isinstance(request, _Request)
        return request

    async def _serve(self, context: _Context, record: StreamRecord) -> None:
        first = await self._read(context)
        if first is None:
            return
        if not first.recognizer or "streaming_config" not in first:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "The first request must contain recognizer and streaming_config."
            )
        if first.audio:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The first request must not contain audio.")
        parts = first.recognizer.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "recognizers":
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource field value in the request: {first.recognizer!r}"
            )
        record.recognizer = first.recognizer
        record.config = first.streaming_config
        decoding = first.streaming_config.config.explicit_decoding_config
        if decoding.encoding not in (_ENCODING.LINEAR16, *_LAWS):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported explicit decoding encoding: {decoding.encoding}."
            )
        if not decoding.sample_rate_hertz or not 8000 <= decoding.sample_rate_hertz <= 48000:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "sample_rate_hertz must be between 8000 and 48000.")
        fault = self._fault_for(0.0)
        if fault and fault.after_audio_s == 0.0:
            raise _Abort(fault.code, fault.message)
        features = first.streaming_config.streaming_features
        channels = max(1, decoding.audio_channel_count)
        linear16 = decoding.encoding == _ENCODING.LINEAR16
        law = _LAWS.get(decoding.encoding, "")
        bytes_per_s = decoding.sample_rate_hertz * channels * (2 if linear16 else 1)
        decoder = _Decoder(
            decoding.sample_rate_hertz,
            channels,
            self.endpoint_s,
            features.interim_results,
            features.enable_voice_activity_events,
        )
        while (request := await self._read(context)) is not None:
            raw = _Request.pb(request)  # the fields without proto-plus's marshalling on every chunk
            if raw.recognizer or raw.HasField("streaming_config"):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Only the first request may carry the config.")
            audio = raw.audio
            size = len(audio)
            record.request_sizes.append(size)
            if size > MAX_AUDIO_BYTES:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Audio chunk of {size} bytes is too large; the limit is {MAX_AUDIO_BYTES} bytes per request.",
                )
            record.audio_bytes += size
            if record.audio is not None:
                record.audio += audio
            record.audio_s = record.audio_bytes / bytes_per_s
            if record.audio_s > self.max_stream_audio_s:
                raise _Abort(grpc.StatusCode.OUT_OF_RANGE, DURATION_MESSAGE)
            fault = self._fault_for(record.audio_s)
            if fault:
                if fault.before_status is not None:
                    fault.before_status()
                for _ in range(fault.responses_first):
                    await context.write(_Response())
                raise _Abort(fault.code, fault.message)
            if not linear16:  # G.711, decoded by its own table into the word samples LINEAR16 carries
                audio = decoder_input(audio, law)
            await self._deliver(decoder.feed(audio), decoder, record, context)
        # grpc.aio ends a request stream the same way for a half-close and a cancel; the cancel
        # reaches this task a moment later. Wait for it, as the server does (HALF_CLOSE_SETTLE_S),
        # so that a cancelled call is recorded as cancelled and not finalised.
        await asyncio.sleep(HALF_CLOSE_SETTLE_S)
        record.half_closed = True
        if self.finalise_delay_s:
            await asyncio.sleep(self.finalise_delay_s)
        await self._deliver(decoder.flush(), decoder, record, context)

    async def _deliver(
        self,
        responses: list[cloud_speech.StreamingRecognizeResponse],
        decoder: _Decoder,
        record: StreamRecord,
        context: _Context,
    ) -> None:
        if decoder.finals:
            record.final_texts.extend(decoder.finals)
            decoder.finals.clear()
        for response in responses:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            await context.write(response)


async def _serve_until_signalled(fake: FakeSpeech, port: int) -> None:
    server = await fake.serve(port)
    print(f"listening on {fake.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main(argv: Iterable[str] | None = None) -> None:
    """Serve the fake until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_speech", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks one; printed on stdout)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each response")
    parser.add_argument(
        "--audio-timeout-s", type=float, default=AUDIO_TIMEOUT_S, help="end streams idle this long (0: never)"
    )
    parser.add_argument("--max-stream-audio-s", type=float, default=MAX_STREAM_AUDIO_S, help="audio time per stream")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    fake = FakeSpeech(
        latency_s=args.latency_ms / 1000,
        audio_timeout_s=args.audio_timeout_s,
        max_stream_audio_s=args.max_stream_audio_s,
    )
    asyncio.run(_serve_until_signalled(fake, args.port))


if __name__ == "__main__":
    main()
