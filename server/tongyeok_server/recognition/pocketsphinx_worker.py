"""The pocketsphinx worker process: decodes several streams, one message at a time.

pocketsphinx holds the GIL while it decodes, so decoding in threads of the
server process would serialise every stream on one core. Each worker is a
process of its own with its own GIL; the server spreads streams across
workers (see ``pocketsphinx_engine``). A worker reads commands from its pipe
and answers with events. Every stream gets a fresh decoder (see
``Worker.__init__``); about 100 MB each.

Messages in (tuples): ``("open", sid, AudioSpec, interim, vad)``,
``("audio", sid, bytes)``, ``("finish", sid)``, ``("cancel", sid)``,
``("stop",)``. Messages out: ``(sid, event)`` with the events of
``recognition.base``; ``RecognitionEnded`` is the last one of a stream.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tongyeok_server.audio.convert import PcmConverter
from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition import english_text
from tongyeok_server.recognition.base import (
    RecognitionEnded,
    RecognitionEvent,
    SpeechActivity,
    Transcript,
)

SAMPLE_RATE_HZ = 16000
LANGUAGE_CODE = "en-US"
# Someone who speaks for this long without a pause still gets finals, so a
# caller never waits a minute for text and a decoder's lattice stays small.
MAX_UTTERANCE_S = 20.0
# The endpointer's decision window: a sentence ends once ~90 % of this much
# audio is non-speech. pocketsphinx's default (0.3 s) keeps the final within
# half a second of the end of speech; pauses inside a sentence are shorter.
ENDPOINT_WINDOW_S = 0.3
# The VAD's two loose modes can stay "in speech" through a second of exact
# digital zeros (a muted phone line, a padded recording) and merge two
# sentences; the medium-strict mode splits them, and the endpointer's
# look-back window still hands the decoder the start of each word.
VAD_MODE = 2

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    """The state of one stream inside a worker."""

    sid: int
    decoder: Any
    endpointer: Any
    converter: PcmConverter
    interim: bool
    vad: bool
    pending: bytearray = field(default_factory=bytearray)
    samples_in: int = 0  # 16 kHz samples given to the endpointer
    utterance_start_s: float | None = None
    last_interim: str = ""


class Worker:
    """Decoding state of one worker process; ``handle`` takes one message."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self._streams: dict[int, _Stream] = {}
        # Decoders adapt to the voice and line they hear (cepstral mean
        # normalisation and more) and keep that state: a reused decoder would
        # let one caller's audio change the next caller's words. So every
        # stream gets a fresh decoder, built ahead in the worker's idle time
        # (``prepare_spare``) so that opening a stream does not stall the
        # streams already running here for the quarter second a build takes.
        self._spares: list[Any] = [self._new_decoder()]

    @staticmethod
    def _new_decoder() -> Any:
        from pocketsphinx import Decoder

        return Decoder(samprate=SAMPLE_RATE_HZ, loglevel="FATAL")

    def prepare_spare(self) -> bool:
        """Build a decoder for the next stream if none is ready; True if it did."""
        if self._spares:
            return False
        self._spares.append(self._new_decoder())
        return True

    def handle(self, message: tuple[Any, ...]) -> bool:
        """Process one command; False when the worker should stop."""
        op = message[0]
        if op == "stop":
            return False
        sid = message[1]
        try:
            if op == "open":
                self._open(sid, message[2], message[3], message[4])
            elif op == "audio":
                stream = self._streams.get(sid)
                if stream is not None:
                    self._feed(stream, stream.converter.convert(message[2]), last=False)
            elif op == "finish":
                stream = self._streams.get(sid)
                if stream is not None:
                    self._feed(stream, stream.converter.flush(), last=True)
                    self._release(sid)
                    self._emit(sid, RecognitionEnded())
            elif op == "cancel":
                self._release(sid)
        except Exception as exc:  # a bad stream must not take the worker's other streams down
            log.exception("pocketsphinx worker failed on stream %s", sid)
            self._release(sid)
            self._emit(sid, RecognitionEnded(ServiceError(_internal(), f"offline recogniser failed: {exc}")))
        return True

    def _open(self, sid: int, spec: AudioSpec, interim: bool, vad: bool) -> None:
        from pocketsphinx import Endpointer

        decoder = self._spares.pop() if self._spares else self._new_decoder()
        endpointer = Endpointer(window=ENDPOINT_WINDOW_S, vad_mode=VAD_MODE, sample_rate=SAMPLE_RATE_HZ)
        self._streams[sid] = _Stream(sid, decoder, endpointer, PcmConverter(spec, SAMPLE_RATE_HZ), interim, vad)

    def _release(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        if stream is None:
            return
        if stream.utterance_start_s is not None:
            stream.decoder.end_utt()

    def _emit(self, sid: int, event: RecognitionEvent) -> None:
        self._send((sid, event))

    def _feed(self, stream: _Stream, pcm: bytes, *, last: bool) -> None:
        """Run PCM through the endpointer and decoder, emitting what it yields."""
        stream.pending += pcm
        ep = stream.endpointer
        frame_bytes: int = ep.frame_bytes
        fed_speech = False
        while len(stream.pending) >= frame_bytes or (last and stream.pending):
            frame = bytes(stream.pending[:frame_bytes])
            del stream.pending[:frame_bytes]
            was_in_speech = ep.in_speech
            speech = ep.end_stream(frame) if len(frame) < frame_bytes else ep.process(frame)
            stream.samples_in += len(frame) // 2
            if speech is None:
                continue
            if not was_in_speech and stream.utterance_start_s is None:
                self._begin_utterance(stream, float(ep.speech_start))
            stream.decoder.process_raw(speech, False, False)
            fed_speech = True
            if not ep.in_speech:
                self._end_utterance(stream, float(ep.speech_end))
            elif self._now_s(stream) - (stream.utterance_start_s or 0.0) > MAX_UTTERANCE_S:
                self._end_utterance(stream, self._now_s(stream))
                self._begin_utterance(stream, self._now_s(stream), announce=False)
        if last and stream.utterance_start_s is not None:
            self._end_utterance(stream, self._now_s(stream))
        elif fed_speech and stream.interim and stream.utterance_start_s is not None:
            # One interim per caller chunk, not per 30 ms frame: hyp() costs
            # a search over the lattice and callers re-render on each one.
            hyp = stream.decoder.hyp()
            text = english_text.words(hyp.hypstr) if hyp is not None else ""
            if text and text != stream.last_interim:
                stream.last_interim = text
                self._emit(
                    stream.sid,
                    Transcript(text, LANGUAGE_CODE, False, stream.utterance_start_s, self._now_s(stream)),
                )

    @staticmethod
    def _now_s(stream: _Stream) -> float:
        return stream.samples_in / SAMPLE_RATE_HZ

    def _begin_utterance(self, stream: _Stream, start_s: float, *, announce: bool = True) -> None:
        stream.decoder.start_utt()
        stream.utterance_start_s = start_s
        stream.last_interim = ""
        if announce and stream.vad:
            self._emit(stream.sid, SpeechActivity(True, start_s))

    def _end_utterance(self, stream: _Stream, end_s: float) -> None:
        decoder = stream.decoder
        decoder.end_utt()
        start_s = stream.utterance_start_s or 0.0
        stream.utterance_start_s = None
        if stream.vad:
            self._emit(stream.sid, SpeechActivity(False, end_s))
        hyp = decoder.hyp()
        text = english_text.sentence(hyp.hypstr) if hyp is not None else ""
        if text:
            self._emit(
                stream.sid, Transcript(text, LANGUAGE_CODE, True, start_s, end_s, confidence=_confidence(decoder))
            )


def _confidence(decoder: Any) -> float:
    """Mean posterior probability of the words of the best path (0..1).

    The bindings already turn pocketsphinx's log posteriors into
    probabilities; silences and fillers say nothing about the words.
    """
    probs = [float(seg.prob) for seg in decoder.seg() if not seg.word.startswith(("<", "[", "++"))]
    if not probs:
        return 0.0
    return float(min(1.0, max(0.0, sum(probs) / len(probs))))


def _internal() -> Any:
    import grpc

    return grpc.StatusCode.INTERNAL


def run(conn: Connection) -> None:
    """Entry point of a worker process: serve commands until ``stop`` or EOF."""
    # The server handles Ctrl-C and SIGTERM and stops workers itself; a
    # worker killed by the terminal's SIGINT first would lose streams.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=os.environ.get("TONGYEOK_LOG_LEVEL", "WARNING"))
    worker = Worker(conn.send)
    conn.send(("ready", os.getpid()))
    try:
        while True:
            # Idle time (nothing to decode for a moment) is when the next
            # stream's decoder gets built.
            if not conn.poll(0.05) and worker.prepare_spare():
                continue
            if not worker.handle(conn.recv()):
                break
    except (EOFError, OSError):
        pass  # the server went away: nothing left to serve
