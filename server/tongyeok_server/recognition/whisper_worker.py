"""The Whisper worker process: segments several streams, decodes their utterances, one pass at a time.

See ``worker_process`` for the loop and the messages; the open arguments
are ``(AudioSpec, languages, interim, vad)``, ``languages`` pairs of (the
caller's tag, Whisper's code).

Audio is converted to 16 kHz (``audio.convert``) and cut into utterances
by ``vad.Segmenter`` as it arrives, so an utterance's end is known at once.
Decoding happens in the worker's idle time, in this order:

1. **Finals** of ended utterances, oldest first, with beam search (5): the
   whole utterance, language chosen by Whisper among the stream's languages.
2. **Speculative finals**: once an open utterance has been quiet for
   ``SPECULATE_AFTER_S``, the final's decode runs then, while the endpointer
   waits for the rest of its silence window; if nobody spoke again before
   the endpoint, that result is the final and the final costs no decode
   after the endpoint (a final-quality pass over the same voiced audio).
3. **Interims**: for streams in the middle of an utterance, the one whose
   last pass is oldest, if its utterance grew by ``INTERIM_STEP_S`` since:
   a greedy pass over the utterance so far, fed to ``LocalAgreement`` (only
   words two passes agree on are shown).

A busy worker therefore drops interim passes first (each pass takes the
newest audio, so none is ever queued), and finals keep their latency as
long as the worker keeps up at all.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from tongyeok_server.audio.convert import PcmConverter
from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.recognition import whisper_model, worker_process
from tongyeok_server.recognition.base import RecognitionEnded, SpeechActivity, Transcript
from tongyeok_server.recognition.stable_prefix import LocalAgreement
from tongyeok_server.recognition.vad import SAMPLE_RATE_HZ, Segmenter, SpeechEnded, SpeechStarted
from tongyeok_server.recognition.whisper_decoder import Decoded, WhisperDecoder

log = logging.getLogger(__name__)

FINAL_BEAM = 5
INTERIM_BEAM = 1
# New audio an utterance needs before the next interim pass; two passes must agree
# before a word shows, so the first word shows about two steps after speech starts.
INTERIM_STEP_S = 0.4
# An interim pass needs this much of the utterance (pre-roll included) to hear a word at all.
INTERIM_MIN_S = 0.6
# Agreed words are shown as fairly stable; the final may still change them (flicker, README).
INTERIM_STABILITY = 0.9
# Quiet this long inside an open utterance: decode its final already (see the module doc).
SPECULATE_AFTER_S = 0.2


@dataclass
class _Stream:
    sid: int
    converter: PcmConverter
    segmenter: Segmenter
    languages: tuple[tuple[str, str], ...]  # (caller's tag, Whisper code)
    interim: bool
    vad: bool
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    passed_samples: int = 0  # utterance length at its last interim pass
    passed_at: float = 0.0  # when that pass ran
    speculation: tuple[int, Decoded] | None = None  # (voiced_until it heard, its result)

    def tag(self, whisper_code: str) -> str:
        return next((tag for tag, code in self.languages if code == whisper_code), self.languages[0][0])


@dataclass(frozen=True)
class _Final:
    sid: int
    ended: SpeechEnded
    decoded: Decoded | None = None  # already decoded (a speculation that held)


class WhisperWorker(worker_process.StreamWorker):
    """Decoding state of one worker process: the model, the streams, the finals to decode."""

    name = "whisper"

    def __init__(self, send: worker_process.Send, source: whisper_model.ModelSource, device: str, threads: int) -> None:
        super().__init__(send)
        self._decoder = WhisperDecoder(whisper_model.load(source, device, threads))
        self._streams: dict[int, _Stream] = {}
        self._finals: deque[_Final] = deque()

    def info(self) -> dict[str, Any]:
        """The languages the loaded model knows (Whisper's codes)."""
        return {"languages": list(self._decoder.languages)}

    def open(self, sid: int, *args: Any) -> None:
        spec: AudioSpec = args[0]
        self._streams[sid] = _Stream(sid, PcmConverter(spec, SAMPLE_RATE_HZ), Segmenter(), args[1], args[2], args[3])

    def audio(self, sid: int, data: bytes) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            self._segment(stream, stream.segmenter.feed(stream.converter.convert(data)))

    def finish(self, sid: int) -> None:
        stream = self._streams.get(sid)
        if stream is None:
            return
        segmenter = stream.segmenter
        self._segment(stream, segmenter.feed(stream.converter.flush()) + segmenter.flush())
        # This stream's finals now, before its end: the others' wait at most this long.
        for job in [j for j in self._finals if j.sid == sid]:
            self._finals.remove(job)
            self._final(stream, job)
        self.release(sid)
        self.emit(sid, RecognitionEnded())

    def release(self, sid: int) -> None:
        self._streams.pop(sid, None)
        for job in [j for j in self._finals if j.sid == sid]:
            self._finals.remove(job)

    def _segment(self, stream: _Stream, events: list[SpeechStarted | SpeechEnded]) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                stream.agreement = LocalAgreement()
                stream.passed_samples = 0
                stream.speculation = None
                if stream.vad:
                    self.emit(stream.sid, SpeechActivity(True, event.start_sample / SAMPLE_RATE_HZ))
            else:
                if stream.vad:
                    self.emit(stream.sid, SpeechActivity(False, event.end_sample / SAMPLE_RATE_HZ))
                speculation, stream.speculation = stream.speculation, None
                held = speculation is not None and speculation[0] == event.voiced_until
                self._finals.append(_Final(stream.sid, event, speculation[1] if held and speculation else None))

    def idle(self) -> bool:
        """One decoding pass: the oldest final, else a speculation, else the stalest interim; False if none."""
        if self._finals:
            job = self._finals.popleft()
            stream = self._streams.get(job.sid)
            if stream is not None:
                self._final(stream, job)
            return True
        quiet = [s for s in self._streams.values() if self._speculation_due(s)]
        if quiet:
            stream = quiet[0]
            audio = bytes(stream.segmenter.utterance or b"")
            voiced_until = stream.segmenter.voiced_until
            stream.speculation = (voiced_until, self._decode_final(stream, audio))
            return True
        due = [s for s in self._streams.values() if self._interim_due(s)]
        if not due:
            return False
        self._interim(min(due, key=lambda s: s.passed_at))
        return True

    @staticmethod
    def _speculation_due(stream: _Stream) -> bool:
        segmenter = stream.segmenter
        if segmenter.quiet_s < SPECULATE_AFTER_S:
            return False
        return stream.speculation is None or stream.speculation[0] != segmenter.voiced_until

    @staticmethod
    def _interim_due(stream: _Stream) -> bool:
        utterance = stream.segmenter.utterance
        if not stream.interim or utterance is None or stream.segmenter.quiet_s >= SPECULATE_AFTER_S:
            return False
        samples = len(utterance) // 2
        return samples >= INTERIM_MIN_S * SAMPLE_RATE_HZ and (
            samples - stream.passed_samples >= INTERIM_STEP_S * SAMPLE_RATE_HZ
        )

    def _interim(self, stream: _Stream) -> None:
        segmenter = stream.segmenter
        audio = bytes(segmenter.utterance or b"")
        stream.passed_samples = len(audio) // 2
        stream.passed_at = time.monotonic()
        heard = self._decoder.decode(_float(audio), self._codes(stream), beam_size=INTERIM_BEAM)
        text = stream.agreement.update(heard.text)
        if text:
            start_s = segmenter.utterance_start / SAMPLE_RATE_HZ
            end_s = start_s + len(audio) / 2 / SAMPLE_RATE_HZ
            self.emit(
                stream.sid,
                Transcript(text, stream.tag(heard.language), False, start_s, end_s, stability=INTERIM_STABILITY),
            )

    def _decode_final(self, stream: _Stream, audio: bytes) -> Decoded:
        return self._decoder.decode(_float(audio), self._codes(stream), beam_size=FINAL_BEAM)

    def _final(self, stream: _Stream, job: _Final) -> None:
        ended = job.ended
        heard = job.decoded or self._decode_final(stream, ended.audio)
        if heard.text:
            self.emit(
                stream.sid,
                Transcript(
                    heard.text,
                    stream.tag(heard.language),
                    True,
                    ended.start_sample / SAMPLE_RATE_HZ,
                    ended.end_sample / SAMPLE_RATE_HZ,
                    confidence=heard.confidence,
                ),
            )

    @staticmethod
    def _codes(stream: _Stream) -> tuple[str, ...]:
        return tuple(code for _, code in stream.languages)


def _float(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def run(conn: Connection, source: whisper_model.ModelSource, device: str, threads: int) -> None:
    """Entry point of a worker process: load (and check) the model, then serve."""
    worker_process.serve(conn, lambda send: WhisperWorker(send, source, device, threads))
