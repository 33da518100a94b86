"""A phone on a meeting table, simulated at real-time pace: people's sentences, and the service's own speech coming back.

The microphone is a timeline of samples sent 100 ms at a time, as a live
microphone delivers them. A person's sentence is laid on it; once the
server's final for that sentence and its spoken translation have arrived,
the speech is played "through the loudspeaker": mixed into the timeline at
``gain_db`` (relative to the speech as sent), ``delay_s`` after the mic had
reached the final (or as soon as the speech has all arrived, if that is
later). In simultaneous mode (``as_it_comes``) the speech starts before
the final: each chunk plays ``delay_s`` after the mic had reached it (or
right after the chunk before it), as a client that plays chunks as they
arrive does, so it may come back while the person is still talking. The
next person speaks either ``gap_s`` after that speech ends, or over its end
(``over_s`` before it ends). A final that does not come, or
speech that does not, is waited for ``WAIT_S``; then the next person
speaks anyway, so a run always ends. Everything the server sends back is
kept for the test to judge (``RoomRun``).

Used by ``tests/test_echo.py`` and the benchmark (``bench/echo.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_client.speech import decode_audio

CHUNK_S = 0.1
SPEECH_RATE_HZ = 24000
#: How long the room waits for a sentence's final, or for its speech, before the next person speaks.
WAIT_S = 10.0
#: Silence before the first person and after the last echo.
LEAD_S = 0.5
TRAIL_S = 3.0


@dataclass(frozen=True)
class Turn:
    """One person's sentence and how its spoken translation comes back into the microphone."""

    pcm: np.ndarray  # int16 at the mic's rate
    text: str
    gain_db: float | None = -6.0  # None: the speech is not heard (headphones)
    delay_s: float = 1.5  # after the final, when the speech starts playing
    over_s: float = 0.0  # the next person starts this long before the speech ends (0: ``gap_s`` after it)
    gap_s: float = 0.4


@dataclass
class RoomRun:
    """What a stream through the room gave back."""

    rate: int = 16000
    events: list[tuple[str, Any]] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)  # per event: how far the microphone had sent when it came
    mic: np.ndarray | None = None  # everything the microphone sent
    turn_spans_s: list[tuple[float, float]] = field(default_factory=list)  # where each person spoke
    echo_spans_s: list[tuple[float, float]] = field(default_factory=list)  # where the speech came back

    def of_kind(self, kind: str) -> list[Any]:
        """The messages of one kind, in order."""
        return [m for k, m in self.events if k == kind]

    @property
    def people(self) -> list[pb.FinalTranscript]:
        """Finals that are not flagged as echo."""
        return [f for f in self.of_kind("final_transcript") if not f.echo]

    @property
    def echoes(self) -> list[pb.FinalTranscript]:
        """Finals flagged as echo."""
        return [f for f in self.of_kind("final_transcript") if f.echo]

    def turn_of(self, final: pb.FinalTranscript) -> int | None:
        """The person's turn a final overlaps most (by at least a third of a second), if any."""
        return _turn_of(final, self.turn_spans_s)


def _span_s(final: pb.FinalTranscript) -> tuple[float, float]:
    return final.audio_start_offset.ToTimedelta().total_seconds(), final.audio_end_offset.ToTimedelta().total_seconds()


def _turn_of(final: pb.FinalTranscript, spans: Sequence[tuple[float, float]]) -> int | None:
    start, end = _span_s(final)
    overlaps = [max(0.0, min(end, b) - max(start, a)) for a, b in spans]
    if not overlaps or max(overlaps) < 0.33:
        return None
    return int(np.argmax(overlaps))


class _Room:
    """The timeline, the sending position and the turns' progress; shared by the sender and the reader."""

    def __init__(self, rate: int, turns: Sequence[Turn], run: RoomRun, as_it_comes: bool = False) -> None:
        self.rate = rate
        self.as_it_comes = as_it_comes
        self.arrived: dict[int, list[tuple[int, np.ndarray]]] = {}  # utterance -> (mic position, chunk) not yet played
        self.played_to: dict[int, int] = {}  # utterance -> where its speech laid so far ends
        self.first_at: dict[int, int] = {}  # utterance -> where its speech started playing
        self.resamplers: dict[int, soxr.ResampleStream] = {}
        self.turns = turns
        self.run = run
        self.buf = np.zeros(0, dtype=np.float32)
        self.pos = 0
        self.done = False
        self.lock = threading.Lock()
        self.current = -1  # the turn being waited on
        self.final_at: dict[int, int] = {}  # turn -> mic position when its final came
        self.utterance_turn: dict[int, int] = {}
        self.waiting_since = 0.0
        self._speak(0, int(LEAD_S * rate))

    def _lay(self, samples: np.ndarray, at: int) -> tuple[int, int]:
        at = max(at, self.pos)
        end = at + len(samples)
        if end > len(self.buf):
            self.buf = np.concatenate([self.buf, np.zeros(end - len(self.buf), dtype=np.float32)])
        self.buf[at:end] += samples.astype(np.float32)
        return at, end

    def _speak(self, i: int, at: int) -> None:
        at, end = self._lay(self.turns[i].pcm, at)
        self.run.turn_spans_s.append((at / self.rate, end / self.rate))
        self.current = i
        self.waiting_since = time.monotonic() + (end - self.pos) / self.rate

    def _next(self, after: int, over: int = 0) -> None:
        """The next person speaks ``after`` (minus ``over``), or the room goes quiet and ends."""
        i = self.current + 1
        if i < len(self.turns):
            self._speak(i, after - over)
        else:
            self.current = len(self.turns)
            self._lay(np.zeros(int(TRAIL_S * self.rate), dtype=np.float32), after)
            self.done = True

    def final(self, message: pb.FinalTranscript) -> None:
        with self.lock:
            i = _turn_of(message, self.run.turn_spans_s)
            if message.echo or i is None or i in self.final_at:
                return
            self.final_at[i] = self.pos
            self.utterance_turn[message.utterance_id] = i
            if i == self.current and self.turns[i].gain_db is None:
                self._next(self.pos + int(self.turns[i].gap_s * self.rate))
            elif i == self.current:
                self.waiting_since = time.monotonic()
            self._play_arrived(message.utterance_id)

    def chunk(self, utterance_id: int, pcm: np.ndarray, last: bool) -> None:
        """A chunk of an utterance's speech arrived (simultaneous mode: it plays as it comes, int16 at 24 kHz)."""
        with self.lock:
            if utterance_id not in self.resamplers:  # one stream per utterance: no seams between its chunks
                self.resamplers[utterance_id] = soxr.ResampleStream(SPEECH_RATE_HZ, self.rate, 1, dtype="float32")
            samples = self.resamplers[utterance_id].resample_chunk(pcm.astype(np.float32), last=last)
            self.arrived.setdefault(utterance_id, []).append((self.pos, samples))
            self._play_arrived(utterance_id)
            i = self.utterance_turn.get(utterance_id)
            if not last or i is None or i != self.current or self.turns[i].gain_db is None:
                return
            end = self.played_to.get(utterance_id)
            if end is None:
                return
            t = self.turns[i]
            self.run.echo_spans_s.append((self.first_at[utterance_id] / self.rate, end / self.rate))
            if t.over_s:
                self._next(end, int(t.over_s * self.rate))
            else:
                self._next(end + int(t.gap_s * self.rate))

    def _play_arrived(self, utterance_id: int) -> None:
        """Lay the chunks of a person's utterance that arrived (once its final says whose it is)."""
        i = self.utterance_turn.get(utterance_id)
        gain_db = self.turns[i].gain_db if i is not None else None
        if not self.as_it_comes or i is None or i != self.current or gain_db is None:
            return
        delay = int(self.turns[i].delay_s * self.rate)
        for at, samples in self.arrived.pop(utterance_id, []):
            echo = samples * 10 ** (gain_db / 20)
            start = max(at + delay, self.played_to.get(utterance_id, 0))
            lo, hi = self._lay(echo, start)
            self.first_at.setdefault(utterance_id, lo)
            self.played_to[utterance_id] = hi

    def speech(self, utterance_id: int, pcm: np.ndarray) -> None:
        """The whole spoken translation of an utterance arrived: play it (if it is the turn waited on)."""
        with self.lock:
            i = self.utterance_turn.get(utterance_id)
            gain_db = self.turns[i].gain_db if i is not None else None
            if i is None or i != self.current or gain_db is None:
                return
            t = self.turns[i]
            echo = soxr.resample(pcm.astype(np.float32), SPEECH_RATE_HZ, self.rate) * 10 ** (gain_db / 20)
            at, end = self._lay(echo, self.final_at[i] + int(t.delay_s * self.rate))
            self.run.echo_spans_s.append((at / self.rate, end / self.rate))
            if t.over_s:
                self._next(end, int(t.over_s * self.rate))
            else:
                self._next(end + int(t.gap_s * self.rate))

    def chunks(self, first: pb.InterpretRequest) -> Iterator[pb.InterpretRequest]:
        yield first
        n = int(CHUNK_S * self.rate)
        start = time.monotonic()
        sent = 0
        while True:
            with self.lock:
                if self.done and self.pos >= len(self.buf):
                    return
                if not self.done and time.monotonic() - self.waiting_since > WAIT_S:
                    self._next(self.pos)  # the final or the speech never came: go on
                piece = np.zeros(n, dtype=np.float32)
                have = self.buf[self.pos : self.pos + n]
                piece[: len(have)] = have
                self.pos += n
            yield pb.InterpretRequest(audio=np.clip(piece, -32768, 32767).astype("<i2").tobytes())
            sent += 1
            time.sleep(max(0.0, start + sent * CHUNK_S - time.monotonic()))


def run_room(
    stub: pb_grpc.InterpreterStub,
    config: pb.InterpretConfig,
    turns: Sequence[Turn],
    *,
    language: str,
    as_it_comes: bool = False,
    timeout_s: float = 240.0,
) -> RoomRun:
    """Stream ``turns`` at real-time pace; ``language``: the spoken language that comes back into the mic.

    ``as_it_comes``: each chunk of speech plays as it arrives (simultaneous
    mode; LINEAR16 speech only), rather than the whole after the final.
    """
    rate = config.audio_format.sample_rate_hertz
    config.speech_output.sample_rate_hertz = SPEECH_RATE_HZ
    encoding = pb.SpeechEncoding.Name(config.speech_output.encoding or pb.SPEECH_ENCODING_LINEAR16)
    encoding = encoding.removeprefix("SPEECH_ENCODING_")
    run = RoomRun(rate=rate)
    room = _Room(rate, turns, run, as_it_comes)
    audio: dict[int, list[bytes]] = {}
    for response in stub.Interpret(room.chunks(pb.InterpretRequest(config=config)), timeout=timeout_s):
        kind = response.WhichOneof("event")
        message = getattr(response, kind)
        run.events.append((kind, message))
        run.times_s.append(room.pos / rate)
        if kind == "final_transcript":
            room.final(message)
        elif kind == "translation_audio" and message.target_language_code.split("-")[0] == language and as_it_comes:
            room.chunk(message.utterance_id, decode_audio(message.audio, encoding, SPEECH_RATE_HZ), message.last_chunk)
        elif kind == "translation_audio" and message.target_language_code.split("-")[0] == language:
            audio.setdefault(message.utterance_id, []).append(message.audio)
            if message.last_chunk:
                pcm = decode_audio(b"".join(audio.pop(message.utterance_id)), encoding, SPEECH_RATE_HZ)
                room.speech(message.utterance_id, pcm)
    run.mic = room.buf[: room.pos].copy()
    return run


def run_together(rooms: Mapping[str, Callable[[], RoomRun]]) -> dict[str, RoomRun]:
    """Run each room at the same time, on a thread of its own; the runs by name (a room's error is raised)."""
    with ThreadPoolExecutor(len(rooms)) as pool:
        futures = {name: pool.submit(run) for name, run in rooms.items()}
    return {name: future.result() for name, future in futures.items()}
