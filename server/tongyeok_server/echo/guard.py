"""One session's echo guard: the speech it sent as reference, the caller's audio cleaned, finals judged.

Fed by the session on the event loop (``on_event`` as an observer: the
speech chunks and texts it sends; ``clean`` for each chunk of the caller's
audio, whose work runs on the loop's offload threads while the session's
speech can still be heard, and costs nothing otherwise), and asked by the
session at each final (``echo_of``, any thread) and, in simultaneous mode,
at each interim before anything of its utterance is committed (``judge``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tongyeok_server import languages
from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.echo import aec
from tongyeok_server.echo.align import Delay, find_delay
from tongyeok_server.echo.base import Verdict
from tongyeok_server.echo.frames import ECHO_ONLY_DB, FrameLog
from tongyeok_server.echo.linear import LinearEstimate
from tongyeok_server.echo.pcm import Float32Array, Int16Array, SpeechDecoder, encode, mono, to_int16
from tongyeok_server.echo.playout import PlayoutTrack
from tongyeok_server.echo.residual import ResidualGate
from tongyeok_server.echo.words import SpokenWords
from tongyeok_server.recognition.base import Transcript
from tongyeok_server.session import events as ev
from tongyeok_server.session.observer import EventSink, SessionObserver

log = logging.getLogger(__name__)

#: The stretch of the caller's audio correlated with the speech to find the delay.
WINDOW_S = 0.3
#: How often the delay is looked for while the speech can be heard: before one is found, and after.
CHECK_UNLOCKED_S = 0.1
CHECK_LOCKED_S = 1.0
#: The canceller keeps running this long after the speech (as delayed) ends: the room's reverberation.
TAIL_S = 0.3
#: A match this strong is the echo; a weaker one needs another window, not overlapping it, within
#: ``AGREE_WITHIN_S`` to have found the same lag (within ``AGREE_S``).
STRONG_SCORE = 0.5
AGREE_S = 0.003
AGREE_WITHIN_S = 1.5
#: A delay found this far from a segment's own replaces it (if it matched better): AEC3 follows smaller
#: errors by itself as long as the reference stays ahead of the echo, and each change costs it its filter.
RELOCK_S = 0.04
#: Caller audio quieter than this (RMS, int16 scale; about -50 dBFS) is not correlated.
VOICED_RMS = 100.0
#: A final at least this much of whose heard energy was the session's speech is echo.
ECHO_SHARE = 0.7
#: Speech heard in the audio has its delay found within this much audio after it starts (a strong match
#: in one ``WINDOW_S`` window, a weaker one in two that agree): what passed before is then marked as the
#: speech heard uncancelled. Until the guard has looked this far past an interim's span while speech
#: without a delay of its own may be heard there, that span cannot be judged yet.
SETTLE_S = 0.7


def _taken(before: Int16Array, out: Int16Array, f: int) -> npt.NDArray[np.bool_]:
    """Per sample: whether the canceller took its frame (``f`` samples) down by more than ``ECHO_ONLY_DB``."""
    n = len(before) // f
    b = (before[: n * f].astype(np.float64).reshape(n, f) ** 2).sum(axis=1)
    o = (out[: n * f].astype(np.float64).reshape(n, f) ** 2).sum(axis=1)
    flags = np.repeat(b > o * 10 ** (ECHO_ONLY_DB / 10), f)
    return np.concatenate([flags, np.zeros(len(before) - len(flags), dtype=bool)])


@dataclass
class EchoStats:
    """Figures for the session's log line and the benchmark."""

    echo_finals: int = 0
    delay_ms: int | None = None
    cancelled_s: float = 0.0


class EchoGuard(SessionObserver):
    """Keeps one session's own speech out of its recognition (see ``echo/__init__.py``)."""

    def __init__(
        self,
        audio: AudioSpec,
        sink: EventSink,
        spoken_languages: tuple[str, ...],
        *,
        max_delay_s: float,
        base_s: float = 0.0,
        cancel: bool = True,
    ) -> None:
        self._spec = audio
        self._sink = sink
        self._languages = set(spoken_languages)
        rate = self._rate = audio.sample_rate_hz
        self._max_delay = int(max_delay_s * rate)
        self._base = round(base_s * rate)
        self._cancel = cancel and aec.available() and aec.supports_rate(rate)
        self._track = PlayoutTrack(rate)
        self._words = SpokenWords(self._max_delay, keep=int(60 * rate))
        self._frames = FrameLog(max(1, rate // 100))
        self._decoders: dict[tuple[int, str], SpeechDecoder] = {}
        self._pos = 0  # caller samples taken so far
        self._looked = 0  # caller samples cleaned (and looked at for the delay) so far
        self._settle = int(SETTLE_S * rate)
        self._window = int(WINDOW_S * rate)
        self._recent: collections.deque[Float32Array] = collections.deque()
        self._recent_len = 0
        self._next_check = 0
        self._delay: int | None = None
        self._tail = int(TAIL_S * rate)
        self._canceller = aec.Canceller(rate) if self._cancel else None
        self._finds: collections.deque[tuple[int, int]] = collections.deque()  # (window end, lag) of weak matches
        self._agree = max(1, int(AGREE_S * rate))
        self._aligned: int | None = None  # the delay the canceller's filter has learnt the echo at
        self._gate = ResidualGate(rate)
        self._linear = LinearEstimate(rate)
        self._gate_tail = 0  # the gate runs up to here (the speech's end and its reverberation)
        self._heard = threading.Event()
        self.stats = EchoStats()

    @property
    def cancels(self) -> bool:
        """Whether the canceller runs (else only finals are judged)."""
        return self._cancel

    # -- the session's own speech (on the loop) ----------------------------------

    def on_event(self, event: ev.SessionEvent) -> None:
        if isinstance(event, ev.Audio):
            self._spoke_audio(event)
        elif isinstance(event, ev.Token) and self._speaks(event.target_language):
            # Simultaneous mode speaks a translation clause by clause before it is complete: its words are
            # known as they are committed.
            span = self._track.span(event.utterance_id, event.target_language) or (self._pos, self._pos)
            self._words.said(event.utterance_id, event.target_language, event.text, *span)
        elif isinstance(event, ev.Complete) and self._speaks(event.target_language):
            span = self._track.span(event.utterance_id, event.target_language) or (self._pos, self._pos)
            self._words.spoken(event.utterance_id, event.target_language, event.text, *span)
        elif isinstance(event, ev.Reset):
            self._track.close(event.utterance_id, event.target_language)
            self._decoders.pop((event.utterance_id, event.target_language), None)
            if self._speaks(event.target_language):
                self._words.said(event.utterance_id, event.target_language, "", self._pos, self._pos)

    def _speaks(self, language: str) -> bool:
        return any(languages.same_language(language, spoken) for spoken in self._languages)

    def _spoke_audio(self, event: ev.Audio) -> None:
        key = (event.utterance_id, event.target_language)
        decoder = self._decoders.get(key)
        if decoder is None or event.sequence_number == 0:
            decoder = self._decoders[key] = SpeechDecoder(event.encoding, event.sample_rate_hz, self._rate)
        samples = decoder.decode(event.audio, event.last)
        if event.last:
            self._decoders.pop(key, None)
        segment = self._track.add(event.utterance_id, event.target_language, samples, self._pos, event.last)
        self._words.spoken(event.utterance_id, event.target_language, "", segment.start, segment.end)

    # -- the caller's audio ----------------------------------------------------------

    async def clean(self, audio: bytes) -> bytes:
        """The chunk with the session's speech cancelled; the chunk itself while none can be heard."""
        samples = mono(audio, self._spec)
        start = self._pos
        self._pos += len(samples)
        if not self._track.audible(start, self._pos, self._max_delay, self._tail):
            self._forget_recent()
            self._looked = self._pos
            if self._canceller is None:
                self._frames.add(start, samples)
                return audio
            out, _ = self._canceller.process(samples, None)  # nothing to cancel: only its constant delay
            self._frames.add(start - self._canceller.latency, out)
            return encode(out, self._spec)
        loop = asyncio.get_running_loop()
        cleaned = await loop.run_in_executor(None, self._process, samples, start)
        self._looked = start + len(samples)
        return audio if cleaned is samples else encode(cleaned, self._spec)

    @property
    def latency_s(self) -> float:
        """How far the audio ``clean`` returns is behind the audio it takes (the canceller's constant delay)."""
        return self._canceller.latency / self._rate if self._canceller is not None else 0.0

    def flush(self) -> bytes:
        """The audio held back (``latency_s`` of it) at the end of the caller's audio."""
        if self._canceller is None:
            return b""
        out, _ = self._canceller.flush()
        return encode(out, self._spec)

    def _process(self, samples: Int16Array, start: int) -> Int16Array:
        """Find the delay, cancel (offload thread; one chunk of a session at a time, in order)."""
        end = start + len(samples)
        self._remember(samples.astype(np.float32))
        unlocked = self._track.unlocked(start, end, self._max_delay)
        if self._recent_len >= self._window and (unlocked or end >= self._next_check):
            self._look_for_delay(end)
        canceller = self._canceller
        if canceller is None:  # words only: the delay still tells which finals were mostly echo
            self._frames.add(start, samples, self._explained(samples, start, end))
            return samples
        reference = None
        if self._delay is not None:
            head = int(aec.HEADROOM_S * self._rate)
            heard = self._track.heard(start + head - self._tail, end + head, self._delay)
            if np.any(heard):
                aligned = self._track.delay_heard(start + head - self._tail, end + head, self._delay)
                if aligned != self._aligned:
                    if self._aligned is not None:
                        lo, hi = canceller.history_span
                        canceller.restart(to_int16(self._track.heard(lo + head, hi + head, self._delay)))
                        self._linear.reset()
                    self._aligned = aligned
                reference = to_int16(heard[self._tail :])
                self.stats.cancelled_s += len(samples) / self._rate
        out, before = canceller.process(samples, reference)
        at = start - canceller.latency  # where ``out`` and ``before`` are in the caller's audio
        echo = None
        if reference is not None or self._gate_tail > at:
            if reference is not None:
                self._gate_tail = end + self._tail
            pad = self._linear.pad
            padded = self._track.heard(at - pad, at + len(out) + pad, self._delay)
            talking = None
            if reference is not None:
                out, talking = self._linear.apply(out, before, padded.astype(np.float64))
            expected = to_int16(padded[pad : pad + len(out)])
            out, frames = self._gate.apply(out, before, expected, talking)
            echo = np.repeat(frames > 0, self._gate.frame)
            echo = np.concatenate([echo, np.zeros(len(out) - len(echo), dtype=bool)])
            echo |= _taken(before, out, self._gate.frame)
        self._frames.add(at, out, echo)
        return out

    def _explained(self, samples: Int16Array, start: int, end: int) -> npt.NDArray[np.bool_] | None:
        """Without a canceller: per sample, whether its frame is no louder than the speech expected there.

        The audio passes as it is; frames the speech at its delay explains
        (``ResidualGate``'s judgement, the echo's loudness learnt when the
        delay was found) count as echo, and a person louder than it does not.
        """
        if self._delay is None:
            return None
        expected = to_int16(self._track.heard(start, end, self._delay))
        _, frames = self._gate.apply(samples, samples, expected)
        f = self._gate.frame
        echo = np.repeat(frames > 0, f)
        return np.concatenate([echo, np.zeros(len(samples) - len(echo), dtype=bool)])

    def _look_for_delay(self, end: int) -> None:
        window = np.concatenate(list(self._recent))[-self._window :]
        if float(np.sqrt(np.mean(window * window))) < VOICED_RMS:
            return
        self._next_check = end + int(CHECK_LOCKED_S * self._rate)
        reference = self._track.placed(end - self._window - self._max_delay, end)
        found = find_delay(window, reference, self._rate)
        if found is None or not self._believed(found, end):
            return
        delay = found.samples
        changed = self._track.lock(
            end - self._window - delay, end - delay, delay, found.score, int(RELOCK_S * self._rate)
        )
        if not changed:
            return
        log.debug("echo delay %.4f s (score %.2f) at %.2f", delay / self._rate, found.score, end / self._rate)
        previous, self._delay = self._delay, delay
        self.stats.delay_ms = int(1000 * delay / self._rate)
        if self._canceller is None:  # how loud the echo is here (what the canceller's work teaches otherwise)
            reference = self._track.heard(end - self._window, end, delay)
            self._gate.measured(
                float(np.sum(window.astype(np.float64) ** 2)), float(np.sum(reference.astype(np.float64) ** 2))
            )
        if previous != delay:
            self._mark_leaked(end)  # what passed before was cancelled at another delay, or not at all
        self._echo_heard(changed[-1][0].utterance_id)

    def _believed(self, found: Delay, end: int) -> bool:
        """Whether a match is the echo, not a person's speech matching the session's by chance.

        Measured: the echo matched at 0.46-1.0 in a digital mix and 0.3-0.7 in
        a reverberant room; people's speech against the session's matched at
        0.30-0.38, at lags that wander. A strong match is believed at once; a
        weaker one when a window that does not overlap this one found the
        same lag (the echo matches at the same lag again and again).
        """
        if found.score >= STRONG_SCORE:
            return True
        while self._finds and self._finds[0][0] < end - int(AGREE_WITHIN_S * self._rate):
            self._finds.popleft()
        agreed = any(
            at <= end - self._window and abs(samples - found.samples) <= self._agree for at, samples in self._finds
        )
        self._finds.append((end, found.samples))
        return agreed

    def _mark_leaked(self, end: int) -> None:
        """The recent frames where the speech, at the delays now known, played: heard uncancelled."""
        lo = max(0, end - self._recent_len)
        f = self._frames.frame
        first = -(-lo // f)
        n = max(0, (end - first * f) // f)
        ref = self._track.heard(first * f, first * f + n * f, self._delay)
        energy = (ref.astype(np.float64).reshape(n, f) ** 2).sum(axis=1) if n else np.zeros(0)
        self._frames.mark_leaked(first * f, end, energy)

    def _remember(self, samples: Float32Array) -> None:
        self._recent.append(samples)
        self._recent_len += len(samples)
        keep = self._window + self._rate  # the window, and a second of what came before (marked if it leaked)
        while self._recent_len - len(self._recent[0]) >= keep:
            self._recent_len -= len(self._recent.popleft())

    def _forget_recent(self) -> None:
        if self._recent:
            self._recent.clear()
            self._recent_len = 0

    # -- finals (any thread) ----------------------------------------------------------

    def echo_of(self, transcript: Transcript) -> int:
        """The utterance whose spoken translation this final is the echo of, or 0."""
        start = int(transcript.start_offset_s * self._rate) - self._base
        end = int(transcript.end_offset_s * self._rate) - self._base
        uid = self._words.match(transcript.text, transcript.language_code, start, end)
        if not uid and self._frames.echo_share(start, end) >= ECHO_SHARE:
            uid = self._track.heard_utterance(start, end, self._delay or 0)
        if uid:
            self.stats.echo_finals += 1
            self._echo_heard(uid)
        return uid

    def judge(self, transcript: Transcript) -> Verdict:
        """Whether the audio behind an interim may be committed yet (simultaneous mode; on the loop).

        The span the recogniser heard is judged as a final's is (the share
        of its energy that was the session's speech; its stable text against
        the words the session just spoke in that language), before any of it
        is committed. Undecided while its stable text has too few words to
        compare (``SpokenWords.judge``), or while the part of it the guard
        has not yet looked ``SETTLE_S`` past (a delay found then marks what
        passed as echo), if speech without a delay of its own may be heard
        there, is enough of what it heard to make it echo.
        """
        start = int(transcript.start_offset_s * self._rate) - self._base
        end = int(transcript.end_offset_s * self._rate) - self._base
        words = self._words.judge(transcript.stable_text, transcript.language_code, start, end)
        if words is Verdict.ECHO or self._frames.echo_share(start, end) >= ECHO_SHARE:
            return Verdict.ECHO
        if words is Verdict.PENDING:
            return Verdict.PENDING
        # The span's last ``SETTLE_S`` (as far as the guard has looked) may still turn out to be echo, if speech
        # without a delay of its own may be heard there: undecided if that could make it echo.
        unknown = max(start, self._looked - self._settle)
        if (
            unknown < end
            and self._track.unlocked(unknown, end, self._max_delay)
            and self._frames.echo_share(start, end, unknown) >= ECHO_SHARE
        ):
            return Verdict.PENDING
        return Verdict.SPEECH

    def _echo_heard(self, utterance_id: int) -> None:
        if self._heard.is_set():
            return
        self._heard.set()
        self._sink.emit(
            ev.Notice(
                ev.NoticeCode.ECHO_HEARD,
                "the microphone hears the spoken translations; the server removes them, but headphones or "
                "the device's echo cancellation work better",
                utterance_id,
            )
        )
