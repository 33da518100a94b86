"""The load generator: N concurrent streams at real-time pace, in a process of its own.

Run as ``python -m bench.loadgen SPEC.json OUT.json`` by the bench. One
asyncio loop (grpc.aio) drives every stream, so one process holds hundreds
of streams without a thread each.

Two targets speak two protocols with the same audio on the same schedule:

- ``tongyeok``: ``tongyeok.v1.Interpreter/Interpret`` on the server under test;
- ``direct``: ``google.cloud.speech.v2.Speech/StreamingRecognize`` straight to
  the fake recogniser (the floor), with the request Tongyeok would send.

Timing model: a stream "records" from its start time; chunk k (audio
``[k*c, (k+1)*c)``) is due at ``start + (k+1)*c``, as a microphone delivers
it. Lateness is the time ``write`` returned minus the due time. With the
fake's word audio, every transcript result is a deterministic function of the
audio, and the chunk that triggers it is known in advance (the fake's own
decoder is run over the chunks here), so each event's latency is its arrival
minus the send time of the chunk that triggered it (when it was handed to
``write``: its answer can be read before ``write`` returns), keyed by (kind,
audio end offset) so the two paths can be matched event by event.

Cost: the generator shares the machine with what it measures, so per chunk
it does no more than the protocol needs. Every request is serialised once
per process (the audio is the same for every stream) and written as bytes;
a stream's only per-chunk work is a sleep until the chunk is due, the write,
and two floats (send time and lateness). Most of what remains is grpc.aio's
own cost per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
from google.cloud.speech_v2.types import cloud_speech
from google.protobuf import json_format

from tests.support import fake_speech
from tongyeok_client.proto import interpreter_pb2 as pb

RATE_HZ = 16000
BYTES_PER_S = RATE_HZ * 2
DIRECT_METHOD = "/google.cloud.speech.v2.Speech/StreamingRecognize"
TONGYEOK_METHOD = "/tongyeok.v1.Interpreter/Interpret"
DIRECT_RECOGNIZER = "projects/local/locations/global/recognizers/_"
_PB_REQUEST = cloud_speech.StreamingRecognizeRequest.pb()
_PB_RESPONSE = cloud_speech.StreamingRecognizeResponse.pb()
# grpc-stubs does not declare grpc.aio.EOF.
_EOF: Any = getattr(grpc.aio, "EOF")  # noqa: B009


# --------------------------------------------------------------------------- audio


def word_script(seconds: float) -> list[list[int]]:
    """Utterances of the fake's English words (4-7 words each) filling about ``seconds`` of audio."""
    timing = fake_speech.Timing()
    utterances: list[list[int]] = []
    next_id = 1
    while True:
        length = 4 + len(utterances) % 4
        candidate = [*utterances, [next_id + j for j in range(length)]]
        if utterances and fake_speech.utterance_ends_s(candidate, timing)[-1][1] > seconds:
            return utterances
        utterances = candidate
        next_id = (next_id + length - 1) % len(fake_speech.ENGLISH_WORDS) + 1


def trigger_chunks(audio: bytes, chunk_bytes: int, endpoint_s: float = 0.5) -> dict[tuple[str, int], int]:
    """(kind, end offset in ms) -> index of the chunk whose arrival makes the fake emit that result.

    Runs the fake's own decoder over the chunks (its rules are the
    specification), so a change to the fake cannot silently skew the bench.
    """
    decoder = fake_speech._Decoder(RATE_HZ, 1, endpoint_s, interim=True, vad=False)
    out: dict[tuple[str, int], int] = {}
    for index in range(0, (len(audio) + chunk_bytes - 1) // chunk_bytes):
        for response in decoder.feed(audio[index * chunk_bytes : (index + 1) * chunk_bytes]):
            for key in result_keys(cloud_speech.StreamingRecognizeResponse.pb(response)):
                out.setdefault(key, index)
    return out


def result_keys(response: Any) -> list[tuple[str, int]]:
    """(kind, end offset in ms) of what one response tells a caller: each final, and one interim.

    A response's interim results (stable words, then the newest ones) make
    one interim transcript, which reaches as far as its furthest result, as
    the server reports it.
    """
    keys = [("final", _ms(_seconds(r.result_end_offset))) for r in response.results if r.is_final]
    interim_ends = [_seconds(r.result_end_offset) for r in response.results if not r.is_final]
    if interim_ends:
        keys.append(("interim", _ms(max(interim_ends))))
    return keys


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _seconds(duration: Any) -> float:
    """A protobuf Duration in seconds, as ``Duration.ToTimedelta().total_seconds()`` (whole microseconds)."""
    micros: int = duration.seconds * 1_000_000 + duration.nanos // 1000
    return micros / 1_000_000


@dataclass(frozen=True)
class Requests:
    """One target's requests, serialised once for every stream: the config, then one per audio chunk."""

    method: str
    first: bytes
    chunks: list[bytes]
    deserialize: Any  # bytes -> response message


# --------------------------------------------------------------------------- per stream


@dataclass
class StreamResult:
    """What one stream saw; times are time.monotonic() seconds, latencies milliseconds."""

    index: int
    start: float
    status: str = "pending"
    lateness_ms: list[float] = field(default_factory=list)
    events: list[tuple[str, int, float]] = field(default_factory=list)  # kind, end offset ms, latency ms
    unmatched: int = 0
    finals: list[tuple[int, float, float, str]] = field(default_factory=list)  # utterance, end offset s, arrival s
    first_token_ms: list[float] = field(default_factory=list)
    first_audio_ms: list[float] = field(default_factory=list)  # final -> first translation_audio (speech output)
    first_audio_at: list[tuple[int, float]] = field(default_factory=list)  # utterance, arrival s since start
    audio_bytes: int = 0
    translations_complete: int = 0
    sent_s: float = 0.0  # when the last chunk was written
    ended_s: float = 0.0  # when the response stream ended

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status,
            "lateness_ms": [round(v, 2) for v in self.lateness_ms],
            "events": [[k, off, round(lat, 3)] for k, off, lat in self.events],
            "unmatched": self.unmatched,
            "finals": [[u, round(end, 3), round(at, 4), text] for u, end, at, text in self.finals],
            "first_token_ms": [round(v, 3) for v in self.first_token_ms],
            "first_audio_ms": [round(v, 3) for v in self.first_audio_ms],
            "first_audio_at": [[u, round(at, 4)] for u, at in self.first_audio_at],
            "audio_bytes": self.audio_bytes,
            "translations_complete": self.translations_complete,
            "sent_s": round(self.sent_s, 4),
            "ended_s": round(self.ended_s, 4),
        }


class _Stream:
    def __init__(
        self, spec: dict[str, Any], index: int, start: float, requests: Requests, triggers: dict[Any, int]
    ) -> None:
        self.spec = spec
        self.requests = requests
        self.triggers = triggers
        self.chunk_s = spec["chunk_ms"] / 1000
        self.sent_at: list[float] = []
        self.result = StreamResult(index, start)
        self.final_arrival: dict[int, float] = {}
        self.first_token_seen: set[int] = set()
        self.first_audio_seen: set[int] = set()

    # Sending -----------------------------------------------------------------

    async def send(self, call: Any) -> None:
        await call.write(self.requests.first)
        paced = self.spec["paced"]
        start, step = self.result.start, self.chunk_s
        sent_at, lateness = self.sent_at, self.result.lateness_ms
        clock, write = time.monotonic, call.write
        due = 0.0
        for k, request in enumerate(self.requests.chunks, 1):
            if paced:
                due = start + k * step
                delay = due - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            # Sent when handed to gRPC: the answer to it can be read before this write returns.
            sent_at.append(clock())
            await write(request)
            if paced:
                lateness.append(max(0.0, (clock() - due) * 1000))
        self.result.sent_s = clock() - start
        await call.done_writing()

    # Receiving ---------------------------------------------------------------

    def transcript(self, kind: str, end_s: float, arrival: float) -> None:
        chunk = self.triggers.get((kind, _ms(end_s)))
        if chunk is None or chunk >= len(self.sent_at):
            self.result.unmatched += 1
            return
        self.result.events.append((kind, _ms(end_s), (arrival - self.sent_at[chunk]) * 1000))

    async def receive_tongyeok(self, call: Any) -> None:
        while True:
            response = await call.read()
            arrival = time.monotonic()
            if response is _EOF:
                return
            self.on_response(response, arrival)

    async def receive_web(self, ws: Any) -> None:
        """The gateway's events: proto3 JSON text frames (timed on arrival, before they are parsed)."""
        async for msg in ws:
            arrival = time.monotonic()
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "error" not in data:
                    self.on_response(json_format.ParseDict(data, pb.InterpretResponse()), arrival)

    def on_response(self, response: pb.InterpretResponse, arrival: float) -> None:
        which = response.WhichOneof("event")
        if which == "interim_transcript":
            self.transcript("interim", _seconds(response.interim_transcript.audio_end_offset), arrival)
        elif which == "final_transcript":
            final = response.final_transcript
            end_s = _seconds(final.audio_end_offset)
            self.transcript("final", end_s, arrival)
            self.final_arrival[final.utterance_id] = arrival
            self.result.finals.append((final.utterance_id, end_s, arrival - self.result.start, final.text))
        elif which == "translation_token":
            utterance = response.translation_token.utterance_id
            if utterance not in self.first_token_seen and utterance in self.final_arrival:
                self.first_token_seen.add(utterance)
                self.result.first_token_ms.append((arrival - self.final_arrival[utterance]) * 1000)
        elif which == "translation_complete":
            self.result.translations_complete += 1
        elif which == "translation_audio":
            audio = response.translation_audio
            self.result.audio_bytes += len(audio.audio)
            utterance = audio.utterance_id
            if utterance not in self.first_audio_seen and utterance in self.final_arrival:
                self.first_audio_seen.add(utterance)
                self.result.first_audio_ms.append((arrival - self.final_arrival[utterance]) * 1000)
                self.result.first_audio_at.append((utterance, arrival - self.result.start))

    async def receive_direct(self, call: Any) -> None:
        while True:
            response = await call.read()
            arrival = time.monotonic()
            if response is _EOF:
                return
            for kind, end_ms in result_keys(response):
                self.transcript(kind, end_ms / 1000, arrival)
                if kind == "final":
                    self.result.finals.append((len(self.result.finals), end_ms / 1000, arrival - self.result.start, ""))

    # The WebSocket gateway ------------------------------------------------------

    async def send_web(self, ws: Any) -> None:
        await ws.send_str(self.requests.first.decode())
        start, step = self.result.start, self.chunk_s
        clock = time.monotonic
        for k, chunk in enumerate(self.requests.chunks, 1):
            due = start + k * step
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent_at.append(clock())
            await ws.send_bytes(chunk)
            self.result.lateness_ms.append(max(0.0, (clock() - due) * 1000))
        self.result.sent_s = clock() - start
        await ws.send_str('{"end": {}}')

    async def run_web(self, http: Any) -> StreamResult:
        delay = self.result.start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ws = await http.ws_connect(self.spec["address"] + "/v1/interpret", max_msg_size=0)
        reader = asyncio.ensure_future(self.receive_web(ws))
        try:
            await asyncio.wait_for(self.send_web(ws), self.spec["timeout_s"])
            await asyncio.wait_for(asyncio.shield(reader), self.spec["drain_timeout_s"])
            self.result.status = "OK" if ws.close_code == 1000 else f"close {ws.close_code}"
        except TimeoutError:
            self.result.status = "TIMEOUT"
        finally:
            self.result.ended_s = time.monotonic() - self.result.start
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()
        return self.result

    # Both --------------------------------------------------------------------

    async def run(self, channel: grpc.aio.Channel) -> StreamResult:
        delay = self.result.start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # The requests are bytes already: no serializer.
        method = channel.stream_stream(self.requests.method, None, self.requests.deserialize)
        token = self.spec.get("token")
        call: Any = method(metadata=(("authorization", f"Bearer {token}"),) if token else None)  # type: ignore[call-arg]
        direct = self.spec["target"] == "direct"
        reader = asyncio.ensure_future(self.receive_direct(call) if direct else self.receive_tongyeok(call))
        try:
            await asyncio.wait_for(self.send(call), self.spec["timeout_s"])
            await asyncio.wait_for(asyncio.shield(reader), self.spec["drain_timeout_s"])
            self.result.status = (await call.code()).name
        except grpc.aio.AioRpcError as exc:
            self.result.status = f"{exc.code().name}: {exc.details()}"
        except TimeoutError:
            self.result.status = "TIMEOUT"
        finally:
            self.result.ended_s = time.monotonic() - self.result.start
            call.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader
        return self.result


def _direct_first_request(spec: dict[str, Any]) -> Any:
    """The config request Tongyeok's Google engine sends (same features), as a raw protobuf."""
    config = cloud_speech.StreamingRecognizeRequest(
        recognizer=DIRECT_RECOGNIZER,
        streaming_config=cloud_speech.StreamingRecognitionConfig(
            config=cloud_speech.RecognitionConfig(
                explicit_decoding_config=cloud_speech.ExplicitDecodingConfig(
                    encoding=cloud_speech.ExplicitDecodingConfig.AudioEncoding.LINEAR16,
                    sample_rate_hertz=RATE_HZ,
                    audio_channel_count=1,
                ),
                language_codes=list(spec["sources"]),
                model="long",
            ),
            streaming_features=cloud_speech.StreamingRecognitionFeatures(interim_results=spec["interim"]),
        ),
    )
    return cloud_speech.StreamingRecognizeRequest.pb(config)


def _tongyeok_config(spec: dict[str, Any]) -> pb.InterpretRequest:
    return pb.InterpretRequest(
        config=pb.InterpretConfig(
            audio_format=pb.AudioFormat(
                encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=RATE_HZ, channel_count=1
            ),
            source_language_codes=list(spec["sources"]),
            target_language_codes=list(spec["targets"]),
            interim_results=spec["interim"],
            # Speech output, when the spec asks ({"encoding": SpeechEncoding value, "rate": Hz}).
            speech_output=pb.SpeechOutputConfig(
                encoding=spec["speech"].get("encoding", pb.SPEECH_ENCODING_LINEAR16),
                sample_rate_hertz=spec["speech"].get("rate", 24000),
            )
            if spec.get("speech")
            else None,
        )
    )


# --------------------------------------------------------------------------- the run


def requests_for(spec: dict[str, Any], audio: bytes) -> Requests:
    """``spec``'s target's requests for ``audio``, serialised."""
    chunk_bytes = round(spec["chunk_ms"] / 1000 * BYTES_PER_S)
    pieces = [audio[i : i + chunk_bytes] for i in range(0, len(audio), chunk_bytes)]
    if spec["target"] == "web":  # the gateway: the config in proto3 JSON, then raw audio frames
        config = json.dumps(json_format.MessageToDict(_tongyeok_config(spec)))
        return Requests("", config.encode(), pieces, None)
    if spec["target"] == "direct":
        return Requests(
            DIRECT_METHOD,
            _direct_first_request(spec).SerializeToString(),
            [_PB_REQUEST(audio=piece).SerializeToString() for piece in pieces],
            _PB_RESPONSE.FromString,
        )
    return Requests(
        TONGYEOK_METHOD,
        _tongyeok_config(spec).SerializeToString(),
        [pb.InterpretRequest(audio=piece).SerializeToString() for piece in pieces],
        pb.InterpretResponse.FromString,
    )


def load_audio(spec: dict[str, Any]) -> tuple[bytes, dict[Any, int]]:
    """The audio every stream sends, and (for word audio) the trigger chunk of each result."""
    chunk_bytes = round(spec["chunk_ms"] / 1000 * BYTES_PER_S)
    if spec["audio"]["kind"] == "words":
        audio = fake_speech.synthesize(word_script(spec["audio"]["seconds"]), RATE_HZ)
        return audio, trigger_chunks(audio, chunk_bytes)
    return Path(spec["audio"]["path"]).read_bytes(), {}


async def run_streams(spec: dict[str, Any]) -> list[StreamResult]:
    """Run every stream of ``spec``; returns their results."""
    audio, triggers = load_audio(spec)
    requests = requests_for(spec, audio)
    n = spec["streams"]
    if spec["target"] == "web":
        return await _run_web_streams(spec, requests, triggers)
    first = spec.get("first_stream", 0)
    total = spec.get("total_streams", n)
    per_channel = spec.get("streams_per_channel", 50)
    # Own subchannel per channel: streams spread over several connections, as many callers would.
    options = [("grpc.use_local_subchannel_pool", 1)]
    count = (n + per_channel - 1) // per_channel
    if spec.get("tls_ca"):
        credentials = grpc.ssl_channel_credentials(Path(spec["tls_ca"]).read_bytes())
        channels = [grpc.aio.secure_channel(spec["address"], credentials, options=options) for _ in range(count)]
    else:
        channels = [grpc.aio.insecure_channel(spec["address"], options=options) for _ in range(count)]
    try:
        streams = []
        for i in range(n):
            index = first + i
            # Starts spread evenly over the ramp, so chunk sends interleave instead of bursting together.
            start = spec["start_at"] + spec["ramp_s"] * index / max(1, total)
            streams.append(_Stream(spec, index, start, requests, triggers))
        return list(await asyncio.gather(*(s.run(channels[i // per_channel]) for i, s in enumerate(streams))))
    finally:
        for channel in channels:
            await channel.close(None)


async def _run_web_streams(spec: dict[str, Any], requests: Requests, triggers: dict[Any, int]) -> list[StreamResult]:
    n, first, total = spec["streams"], spec.get("first_stream", 0), spec.get("total_streams", spec["streams"])
    streams = [
        _Stream(spec, first + i, spec["start_at"] + spec["ramp_s"] * (first + i) / max(1, total), requests, triggers)
        for i in range(n)
    ]
    async with aiohttp.ClientSession() as http:
        return list(await asyncio.gather(*(s.run_web(http) for s in streams)))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.loadgen SPEC.json OUT.json``."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    results = asyncio.run(run_streams(spec))
    Path(args[1]).write_text(json.dumps({"streams": [r.to_json() for r in results]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
