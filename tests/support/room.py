"""A phone on a meeting table, simulated at real-time pace: people's sentences, and the service's own speech coming back.

The microphone is a timeline of samples sent 100 ms at a time, as a live
microphone delivers them. A person's sentence is laid on it; when the
server's spoken translation of that sentence has arrived, it is played
"through the loudspeaker": mixed into the timeline at ``gain_db`` (relative
to the speech as sent), ``delay_s`` after the mic had reached the
sentence's final. The next person speaks either ``gap_s`` after that speech
ends, or over its end (``over_s`` before it ends). Everything the server
sends back is kept for the test to judge (``RoomRun``).

Used by ``tests/test_echo.py`` and the benchmark (``bench/echo.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

CHUNK_S = 0.1
SPEECH_RATE_HZ = 24000
#: A sentence whose final has not come this long after it ended is given up on (the next person speaks).
FINAL_TIMEOUT_S = 8.0


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

    events: list[tuple[str, Any]] = field(default_factory=list)
    mic: np.ndarray | None = None  # everything the microphone sent
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


class _Mic:
    """The timeline and the sending position, shared by the request thread and the response reader."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.buf = np.zeros(0, dtype=np.float32)
        self.pos = 0
        self.done = False
        self.lock = threading.Lock()

    def lay(self, samples: np.ndarray, at: int) -> tuple[int, int]:
        with self.lock:
            at = max(at, self.pos)
            end = at + len(samples)
            if end > len(self.buf):
                self.buf = np.concatenate([self.buf, np.zeros(end - len(self.buf), dtype=np.float32)])
            self.buf[at:end] += samples.astype(np.float32)
            return at, end

    def chunks(self, first: pb.InterpretRequest) -> Iterator[pb.InterpretRequest]:
        yield first
        n = int(CHUNK_S * self.rate)
        start = time.monotonic()
        sent = 0
        while True:
            with self.lock:
                if self.done and self.pos >= len(self.buf):
                    return
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
    timeout_s: float = 180.0,
) -> RoomRun:
    """Stream ``turns`` at real-time pace; ``language``: the spoken language that comes back into the mic."""
    rate = config.audio_format.sample_rate_hertz
    config.speech_output.sample_rate_hertz = SPEECH_RATE_HZ
    mic = _Mic(rate)
    run = RoomRun()
    turn_of: dict[int, int] = {}  # utterance id -> turn
    audio: dict[int, list[bytes]] = {}
    next_turn = 0
    deadline: list[float] = []

    def person(i: int, at: int) -> None:
        nonlocal next_turn
        next_turn = i + 1
        _, end = mic.lay(turns[i].pcm, at)
        deadline[:] = [time.monotonic() + (end - mic.pos) / rate + FINAL_TIMEOUT_S]
        if next_turn == len(turns):
            mic.lay(np.zeros(int(2.0 * rate), dtype=np.float32), end)

    def after_turn(i: int, speech_end: int) -> None:
        if i + 1 < len(turns):
            t = turns[i]
            at = speech_end - int(t.over_s * rate) if t.over_s else speech_end + int(t.gap_s * rate)
            person(i + 1, at)
        else:
            mic.lay(np.zeros(int(4.0 * rate), dtype=np.float32), speech_end)
            mic.done = True

    person(0, int(0.5 * rate))
    final_at: dict[int, int] = {}
    responses = stub.Interpret(mic.chunks(pb.InterpretRequest(config=config)), timeout=timeout_s)
    for response in responses:
        kind = response.WhichOneof("event")
        message = getattr(response, kind)
        run.events.append((kind, message))
        if kind == "final_transcript" and not message.echo and message.utterance_id not in turn_of:
            i = next_turn - 1
            if i not in turn_of.values():
                turn_of[message.utterance_id] = i
                final_at[message.utterance_id] = mic.pos
                if turns[i].gain_db is None:
                    after_turn(i, mic.pos)
        elif kind == "translation_audio" and message.target_language_code.split("-")[0] == language:
            audio.setdefault(message.utterance_id, []).append(message.audio)
            turn = turn_of.get(message.utterance_id)
            gain = turns[turn].gain_db if turn is not None else None
            if message.last_chunk and turn is not None and gain is not None:
                t = turns[turn]
                pcm = np.frombuffer(b"".join(audio.pop(message.utterance_id)), dtype="<i2").astype(np.float32)
                echo = soxr.resample(pcm, SPEECH_RATE_HZ, rate) * 10 ** (gain / 20)
                at, end = mic.lay(echo, final_at[message.utterance_id] + int(t.delay_s * rate))
                run.echo_spans_s.append((at / rate, end / rate))
                after_turn(turn, end)
        if deadline and time.monotonic() > deadline[0] and next_turn - 1 not in turn_of.values():
            after_turn(next_turn - 1, mic.pos)  # its final never came: go on
    run.mic = mic.buf[: mic.pos].copy()
    return run
