"""The Whisper worker process: segments several streams, decodes their utterances, one pass at a time.

See ``worker_process`` for the loop and the messages; the open arguments
are ``(AudioSpec, languages, interim, vad)``, ``languages`` pairs of (the
caller's tag, Whisper's code).

Audio is converted to 16 kHz (``audio.convert``) and cut into utterances
by ``vad.Segmenter`` as it arrives, so an utterance's end is known at once.
Decoding happens in the worker's idle time, in this order:

1. **Finals** of ended utterances, oldest first, with beam search (5): the
   utterance (its window, item 4), starting with its committed words in
   their language, or with the language chosen by Whisper among the
   stream's languages when nothing was committed.
2. **Speculative finals**: once an open utterance has been quiet for
   ``SPECULATE_AFTER_S``, the final's decode runs then, while the endpointer
   waits for the rest of its silence window; if nobody spoke again before
   the endpoint, that result is the final and the final costs no decode
   after the endpoint (a final-quality pass over the same voiced audio).
3. **Interims**: for streams in the middle of an utterance, the one whose
   last pass is oldest, if its utterance grew by ``INTERIM_STEP_S`` since:
   a greedy pass over the utterance so far, fed to ``LocalAgreement``. An
   interim shows what the pass heard; the words two passes agree on are its
   ``stable_text``, committed: every later pass of the utterance, the final
   included, is forced to start with them (and keeps their language).

4. **Windows** (long utterances): once the audio after the last cut is
   longer than ``WINDOW_S``, an interim pass also aligns its words to the
   audio, and the next passes (the final included) decode only the audio
   from the start of the last ``KEEP_COMMITTED`` committed words on, forced
   to start with those words, with the committed words before the cut as
   the decoder's previous text. Whisper's encoder costs in proportion to the
   audio it hears (at least ``MIN_CONTEXT_S``), so a 10 s sentence costs
   about as much per pass as a 5 s one.

5. **Context**: a final's pass (speculations included) is given the
   stream's previous final as the text said before (Whisper's
   ``condition_on_previous_text``, as faster-whisper's ``transcribe()`` does
   within a file), when that final's language is the one the pass may hear,
   and is decoded without timestamps (``WhisperDecoder.decode``). Measured
   on the bench's set (16 kHz, finals): 9 words of 325 wrong before, 7 with
   the context, 6 with both. Interim passes get neither: with the context,
   two greedy passes agreed on a wrong word ("signed" -> "sign") that the
   final then had to keep. Nor does a final's pass over a window (item 4):
   its context is the utterance's words before the cut. With the previous
   final as well, text only, the decoder said the window's sentence again
   after it ("... with our partners. We need a little more time ..."), and
   beams that went on into the silence doubled the pass (0.35 -> 0.74 s
   of a core): long-sentence final p95 went from 1.0 s to 1.9 s in
   ``bench.live_sim`` and WER on one voice from 1.2 % to 8.2 %. A pass
   whose new words repeat ``ECHO_WORDS`` words of that context in a row is
   decoded again without it (the decoder reading its prompt back).

A busy worker therefore drops interim passes first (each pass takes the
newest audio, so none is ever queued), and finals keep their latency as
long as the worker keeps up at all.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field, replace
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
# New audio an utterance needs before the next interim pass.
INTERIM_STEP_S = 0.4
# An interim pass needs this much of the utterance (pre-roll included) to hear a word at all.
INTERIM_MIN_S = 0.6
# In a two-language stream, a pass needs this much of the utterance (pre-roll included) before its
# words may be committed: language identification on less than a second of speech is a guess.
LANGUAGE_SETTLE_S = 1.5
# Quiet this long inside an open utterance: decode its final already (see the module doc).
SPECULATE_AFTER_S = 0.2
# Audio after the cut beyond which the next interim pass aligns its words to move the cut (item 4).
WINDOW_S = 6.0
# Committed words kept at the start of a window, decoded again as its forced prefix: a cut
# just before a word's aligned start may clip the word before it, never these.
KEEP_COMMITTED = 3
# A window's text that repeats this many words of the text before the window in a row is an echo.
ECHO_WORDS = 4
# Cut this much before the aligned start of the first word kept (alignments are ~20-40 ms coarse).
CUT_MARGIN_S = 0.05


@dataclass(frozen=True)
class _Committed:
    """What is settled of the open utterance: its committed words and where the decoded window starts."""

    words: tuple[str, ...] = ()
    cut_words: int = 0  # words said before the window (the decoder's previous text)
    cut_sample: int = 0  # where the window starts, in samples into the utterance
    language: str = ""  # Whisper code of the committed words ("" until words are committed)

    @property
    def before(self) -> str:
        return " ".join(self.words[: self.cut_words])

    @property
    def prefix(self) -> str:
        return " ".join(self.words[self.cut_words :])

    def window(self, utterance: bytes) -> bytes:
        return utterance[self.cut_sample * 2 :]


@dataclass
class _Stream:
    sid: int
    converter: PcmConverter
    segmenter: Segmenter
    languages: tuple[tuple[str, str], ...]  # (caller's tag, Whisper code)
    interim: bool
    vad: bool
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    committed: _Committed = field(default_factory=_Committed)
    passed_samples: int = 0  # utterance length at its last interim pass
    passed_at: float = 0.0  # when that pass ran
    passed_language: str = ""  # the language that pass heard
    # A final decoded ahead: (voiced_until it heard, what was committed then, its result).
    speculation: tuple[int, _Committed, Decoded] | None = None
    previous: Decoded | None = None  # the stream's last final with words (item 5's context)

    def tag(self, whisper_code: str) -> str:
        return next((tag for tag, code in self.languages if code == whisper_code), self.languages[0][0])

    def codes(self, committed: _Committed) -> tuple[str, ...]:
        """The languages a pass may hear: the committed words' once there are any."""
        return (committed.language,) if committed.language else tuple(code for _, code in self.languages)

    def context(self, committed: _Committed) -> str:
        """The previous final's text, if a pass with ``committed`` hears only that final's language."""
        previous = self.previous
        return previous.text if previous is not None and self.codes(committed) == (previous.language,) else ""


@dataclass(frozen=True)
class _Final:
    sid: int
    ended: SpeechEnded
    committed: _Committed  # what the final starts with and where its window starts
    decoded: Decoded | None = None  # already decoded (a speculation that held)


class WhisperWorker(worker_process.StreamWorker):
    """Decoding state of one worker process: the model, the streams, the finals to decode."""

    name = "whisper"

    def __init__(self, send: worker_process.Send, decoder: WhisperDecoder) -> None:
        super().__init__(send)
        self._decoder = decoder
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
                stream.committed = _Committed()
                stream.passed_samples = 0
                stream.passed_language = ""
                stream.speculation = None
                if stream.vad:
                    self.emit(stream.sid, SpeechActivity(True, event.start_sample / SAMPLE_RATE_HZ))
            else:
                if stream.vad:
                    self.emit(stream.sid, SpeechActivity(False, event.end_sample / SAMPLE_RATE_HZ))
                speculation, stream.speculation = stream.speculation, None
                committed = stream.committed
                held = speculation is not None and speculation[:2] == (event.voiced_until, committed)
                self._finals.append(
                    _Final(stream.sid, event, committed, speculation[2] if speculation and held else None)
                )

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
            voiced_until, committed = stream.segmenter.voiced_until, stream.committed
            started = time.monotonic()
            heard = self._decode(stream, audio, committed, FINAL_BEAM, final=True)
            stream.speculation = (voiced_until, committed, heard)
            _log_pass("speculation", stream.sid, committed.window(audio), started)
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
        return stream.speculation is None or stream.speculation[:2] != (segmenter.voiced_until, stream.committed)

    @staticmethod
    def _interim_due(stream: _Stream) -> bool:
        utterance = stream.segmenter.utterance
        if not stream.interim or utterance is None or stream.segmenter.quiet_s >= SPECULATE_AFTER_S:
            return False
        samples = len(utterance) // 2
        return samples >= INTERIM_MIN_S * SAMPLE_RATE_HZ and (
            samples - stream.passed_samples >= INTERIM_STEP_S * SAMPLE_RATE_HZ
        )

    def _decode(
        self,
        stream: _Stream,
        utterance: bytes,
        committed: _Committed,
        beam: int,
        timings: bool = False,
        *,
        final: bool = False,
        context: bool = True,
    ) -> Decoded:
        """One pass over ``utterance``'s window; the text is the whole utterance's (``words``: the window's).

        ``final``: a final's pass: text only, given the previous final when ``context`` (item 5),
        if it decodes the whole utterance. A window is decoded as an interim is: its own words
        before the cut are its context, and timestamp mode drops text placed after the audio.
        """
        text_only = final and not committed.cut_words  # a final over the whole utterance
        said = stream.context(committed) if context and text_only else ""
        heard = self._decoder.decode(
            _float(committed.window(utterance)),
            stream.codes(committed),
            beam_size=beam,
            prefix=committed.prefix,
            before=f"{said} {committed.before}".strip(),
            timings=timings,
            timestamps=not text_only,
        )
        if said and _echoes(said, " ".join(heard.text.split()[len(committed.prefix.split()) :])):
            return self._decode(stream, utterance, committed, beam, timings, final=final, context=False)
        if not committed.cut_words:
            return heard
        if _echoes(committed.before, heard.text):
            # Whisper sometimes says its previous text again: decode the whole utterance instead.
            whole = replace(committed, cut_words=0, cut_sample=0)
            return self._decode(stream, utterance, whole, beam, timings=False, final=final, context=context)
        return replace(heard, text=f"{committed.before} {heard.text}".strip())

    def _interim(self, stream: _Stream) -> None:
        segmenter = stream.segmenter
        audio = bytes(segmenter.utterance or b"")
        stream.passed_samples = len(audio) // 2
        stream.passed_at = time.monotonic()
        committed = stream.committed
        long_window = len(committed.window(audio)) / 2 > WINDOW_S * SAMPLE_RATE_HZ
        heard = self._decode(stream, audio, committed, INTERIM_BEAM, timings=long_window)
        _log_pass("interim", stream.sid, committed.window(audio), stream.passed_at)
        # Two languages: words are committed (and with them the language) only once two passes
        # over enough speech heard the same language; before that, interims still show the words.
        settled = len(stream.languages) == 1 or (
            heard.language == stream.passed_language and len(audio) / 2 >= LANGUAGE_SETTLE_S * SAMPLE_RATE_HZ
        )
        stream.passed_language = heard.language
        interim = stream.agreement.update(heard.text, commit=settled or bool(committed.words))
        stable = tuple(stream.agreement.stable)
        if len(stable) > len(committed.words):
            # Committed words keep the language they were heard in.
            committed = replace(committed, words=stable, language=heard.language)
        stream.committed = _moved_cut(committed, heard) if long_window else committed
        if interim is not None:
            start_s = segmenter.utterance_start / SAMPLE_RATE_HZ
            end_s = start_s + len(audio) / 2 / SAMPLE_RATE_HZ
            self.emit(
                stream.sid,
                Transcript(
                    interim.text,
                    stream.tag(heard.language),
                    False,
                    start_s,
                    end_s,
                    stability=interim.stability,
                    stable_text=interim.stable,
                ),
            )

    def _final(self, stream: _Stream, job: _Final) -> None:
        ended = job.ended
        started = time.monotonic()
        heard = job.decoded or self._decode(stream, ended.audio, job.committed, FINAL_BEAM, final=True)
        window = job.committed.window(ended.audio)
        _log_pass("final (speculation held)" if job.decoded else "final", stream.sid, window, started)
        if heard.text:
            stream.previous = heard
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


def _echoes(before: str, text: str) -> bool:
    """Whether ``text`` repeats a run of ``ECHO_WORDS`` words of ``before`` (the decoder reading its prompt back)."""
    said = _keys(before)
    heard = _keys(text)
    runs = {tuple(said[i : i + ECHO_WORDS]) for i in range(len(said) - ECHO_WORDS + 1)}
    return any(tuple(heard[i : i + ECHO_WORDS]) in runs for i in range(len(heard) - ECHO_WORDS + 1))


def _keys(text: str) -> list[str]:
    return ["".join(c for c in w.lower() if c.isalnum()) for w in text.split()]


def _moved_cut(committed: _Committed, heard: Decoded) -> _Committed:
    """``committed`` with its window starting at the last ``KEEP_COMMITTED`` committed words, if aligned."""
    keep_from = len(committed.words) - KEEP_COMMITTED
    index = keep_from - committed.cut_words  # that word's index in the window's words
    if index <= 0 or index >= len(heard.words):
        return committed
    cut = committed.cut_sample + int((heard.words[index].start_s - CUT_MARGIN_S) * SAMPLE_RATE_HZ)
    if cut <= committed.cut_sample:
        return committed
    return replace(committed, cut_words=keep_from, cut_sample=cut)


def _log_pass(kind: str, sid: int, audio: bytes, started: float) -> None:
    log.debug(
        "%s pass, stream %d: %.2f s of audio in %.0f ms",
        kind,
        sid,
        len(audio) / 2 / SAMPLE_RATE_HZ,
        (time.monotonic() - started) * 1000,
    )


def _float(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def run(conn: Connection, source: whisper_model.ModelSource, device: str, threads: int) -> None:
    """Entry point of a worker process: load (and check) the model, then serve."""
    worker_process.serve(conn, lambda send: WhisperWorker(send, load(source, device, threads)))


def load(source: whisper_model.ModelSource, device: str, threads: int) -> WhisperDecoder:
    """A decoder of the model in ``source`` (checked as it loads)."""
    return WhisperDecoder(whisper_model.load(source, device, threads))
