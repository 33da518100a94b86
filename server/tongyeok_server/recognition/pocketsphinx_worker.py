"""The pocketsphinx worker process: decodes several streams, one message at a time.

See ``worker_process`` for the loop and the messages; the open arguments
are ``(AudioSpec, interim, vad)``. Every stream gets a fresh decoder (see
``PocketsphinxWorker.__init__``); about 100 MB each.

Two things make a final nearer to what pocketsphinx hears in a whole file:

- **Pre-roll.** The endpointer declares speech once most of its window is
  voiced, and the soft start of the first word (an unvoiced /th/, /h/, /s/)
  comes before that; the decoder also gets ``PREROLL_S`` of the audio
  before the detected start, so that word is not clipped.
- **Second pass** (``--pocketsphinx-second-pass``). Live decoding
  normalises the cepstrum with a running mean that starts from a 16 kHz
  prior and settles only during the utterance; a second decode of the
  utterance at its end, with the mean of the whole utterance (batch CMN),
  comes nearer to a whole-file decode (docs/ARCHITECTURE.md has the
  figures). It doubles the decoding and adds a decode to each final's
  latency, so by default (``narrowband``) only telephone-band streams
  (under 16 kHz), where live CMN loses most of the words, get it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tongyeok_server.audio.convert import PcmConverter
from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.recognition import english_text, worker_process
from tongyeok_server.recognition.base import RecognitionEnded, SpeechActivity, Transcript
from tongyeok_server.recognition.stable_text import StableText

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
# sentences; the medium-strict mode splits them, and the pre-roll still hands
# the decoder the start of each word.
VAD_MODE = 2
# Audio before the detected start of speech that the decoder hears too.
PREROLL_S = 0.25
# An interim's stable text is what every hypothesis of the last 0.4 s of audio agrees on (stable_text.py has
# the measurement: agreement of two successive hypotheses left 29 % of "stable" words wrong).
STABLE_SPAN_S = 0.4
# Which streams get a second, batch-CMN pass at each endpoint (see the module doc).
SECOND_PASS_MODES = ("narrowband", "always", "never")
_BYTES_PER_SAMPLE = 2


@dataclass
class _Stream:
    """The state of one stream inside a worker."""

    sid: int
    decoder: Any
    endpointer: Any
    converter: PcmConverter
    interim: bool
    vad: bool
    second_pass: bool
    pending: bytearray = field(default_factory=bytearray)
    samples_in: int = 0  # 16 kHz samples given to the endpointer
    recent: bytearray = field(default_factory=bytearray)  # the last samples given to it, for the pre-roll
    utterance_start_s: float | None = None
    utterance_audio: bytearray = field(default_factory=bytearray)  # for the second pass
    last_interim: tuple[str, str] = ("", "")  # text, stable text
    # What successive hypotheses of the utterance agree on (the interims' stable_text).
    stable: StableText = field(default_factory=lambda: StableText(STABLE_SPAN_S))


class PocketsphinxWorker(worker_process.StreamWorker):
    """Decoding state of one worker process."""

    name = "pocketsphinx"

    def __init__(
        self, send: worker_process.Send, *, preroll_s: float = PREROLL_S, second_pass: str = "narrowband"
    ) -> None:
        super().__init__(send)
        self._streams: dict[int, _Stream] = {}
        self._preroll_bytes = int(preroll_s * SAMPLE_RATE_HZ) * _BYTES_PER_SAMPLE
        # Decoders adapt to the voice and line they hear (cepstral mean
        # normalisation and more) and keep that state: a reused decoder would
        # let one caller's audio change the next caller's words. So every
        # stream gets a fresh decoder, built ahead in the worker's idle time
        # so that opening a stream does not stall the streams already running
        # here for the quarter second a build takes.
        self._spares: list[Any] = [self._new_decoder()]
        # Batch CMN starts from the utterance's own mean each time: nothing
        # carries over, so one second-pass decoder serves every stream.
        self._second_pass = second_pass
        self._batch_decoder = self._new_decoder(cmn="batch") if second_pass != "never" else None

    @staticmethod
    def _new_decoder(**config: Any) -> Any:
        from pocketsphinx import Decoder

        return Decoder(samprate=SAMPLE_RATE_HZ, loglevel="FATAL", **config)

    def idle(self) -> bool:
        """Build a decoder for the next stream if none is ready."""
        if self._spares:
            return False
        self._spares.append(self._new_decoder())
        return True

    def open(self, sid: int, *args: Any) -> None:
        from pocketsphinx import Endpointer

        spec: AudioSpec = args[0]
        decoder = self._spares.pop() if self._spares else self._new_decoder()
        endpointer = Endpointer(window=ENDPOINT_WINDOW_S, vad_mode=VAD_MODE, sample_rate=SAMPLE_RATE_HZ)
        second = self._batch_decoder is not None and (
            self._second_pass == "always" or spec.sample_rate_hz < SAMPLE_RATE_HZ
        )
        converter = PcmConverter(spec, SAMPLE_RATE_HZ)
        self._streams[sid] = _Stream(sid, decoder, endpointer, converter, args[1], args[2], second)

    def audio(self, sid: int, data: bytes) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            self._feed(stream, stream.converter.convert(data), last=False)

    def finish(self, sid: int) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            self._feed(stream, stream.converter.flush(), last=True)
            self.release(sid)
            self.emit(sid, RecognitionEnded())

    def release(self, sid: int) -> None:
        stream = self._streams.pop(sid, None)
        if stream is not None and stream.utterance_start_s is not None:
            stream.decoder.end_utt()

    def _feed(self, stream: _Stream, pcm: bytes, *, last: bool) -> None:
        """Run PCM through the endpointer and decoder, emitting what it yields."""
        stream.pending += pcm
        ep = stream.endpointer
        frame_bytes: int = ep.frame_bytes
        # What the pre-roll may reach back to: the endpointer's window plus the pre-roll.
        keep = self._preroll_bytes + int((ENDPOINT_WINDOW_S + 0.1) * SAMPLE_RATE_HZ) * _BYTES_PER_SAMPLE
        fed_speech = False
        while len(stream.pending) >= frame_bytes or (last and stream.pending):
            frame = bytes(stream.pending[:frame_bytes])
            del stream.pending[:frame_bytes]
            was_in_speech = ep.in_speech
            speech = ep.end_stream(frame) if len(frame) < frame_bytes else ep.process(frame)
            stream.samples_in += len(frame) // _BYTES_PER_SAMPLE
            stream.recent += frame
            del stream.recent[:-keep]
            if speech is None:
                continue
            if not was_in_speech and stream.utterance_start_s is None:
                self._begin_utterance(stream, float(ep.speech_start))
                self._decode(stream, self._preroll(stream, float(ep.speech_start)))
            self._decode(stream, speech)
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
            stable = ""
            if text:
                text, stable = stream.stable.update(text, at_s=self._now_s(stream))
            # A hypothesis heard again is news too: its words have become stable.
            if text and (text, stable) != stream.last_interim:
                stream.last_interim = (text, stable)
                self.emit(
                    stream.sid,
                    Transcript(
                        text, LANGUAGE_CODE, False, stream.utterance_start_s, self._now_s(stream), stable_text=stable
                    ),
                )

    def _preroll(self, stream: _Stream, start_s: float) -> bytes:
        """Up to ``PREROLL_S`` of the audio just before ``start_s`` (what the endpointer has let go by)."""
        start_byte = int(start_s * SAMPLE_RATE_HZ) * _BYTES_PER_SAMPLE
        recent_start = stream.samples_in * _BYTES_PER_SAMPLE - len(stream.recent)
        lo = max(recent_start, start_byte - self._preroll_bytes)
        return bytes(stream.recent[lo - recent_start : max(lo, start_byte) - recent_start])

    def _decode(self, stream: _Stream, pcm: bytes) -> None:
        if pcm:
            stream.decoder.process_raw(pcm, False, False)
            if stream.second_pass:
                stream.utterance_audio += pcm

    @staticmethod
    def _now_s(stream: _Stream) -> float:
        return stream.samples_in / SAMPLE_RATE_HZ

    def _begin_utterance(self, stream: _Stream, start_s: float, *, announce: bool = True) -> None:
        stream.decoder.start_utt()
        stream.utterance_start_s = start_s
        stream.last_interim = ("", "")
        stream.stable.reset()
        stream.utterance_audio.clear()
        if announce and stream.vad:
            self.emit(stream.sid, SpeechActivity(True, start_s))

    def _end_utterance(self, stream: _Stream, end_s: float) -> None:
        decoder = stream.decoder
        decoder.end_utt()
        start_s = stream.utterance_start_s or 0.0
        stream.utterance_start_s = None
        if stream.vad:
            self.emit(stream.sid, SpeechActivity(False, end_s))
        if self._batch_decoder is not None and stream.second_pass and stream.utterance_audio:
            decoder = self._batch_decoder
            decoder.start_utt()
            decoder.process_raw(bytes(stream.utterance_audio), False, True)
            decoder.end_utt()
            stream.utterance_audio.clear()
        hyp = decoder.hyp()
        text = english_text.sentence(hyp.hypstr) if hyp is not None else ""
        if text:
            self.emit(
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


def run(conn: Connection, second_pass: str = "narrowband") -> None:
    """Entry point of a worker process."""
    worker_process.serve(conn, lambda send: PocketsphinxWorker(send, second_pass=second_pass))
