"""The session's speech laid on the timeline of the caller's audio: the echo canceller's reference.

A client plays each utterance's chunks as they arrive, one utterance after
another within a language. So an utterance can start playing, at the
earliest, when its first chunk is sent (the caller's audio has then reached
sample ``now``) or when the previous utterance of its language ends,
whichever is later: that is where its segment is *placed*. It is *heard*
later, by the client's playback delay (network, buffers, the device), which
``align`` finds on the signal and which each segment keeps for itself: a
client may queue one utterance behind another, or its buffers may grow, so
the delay of the next one is only a good first guess. Positions are samples
of the caller's audio, mono, at the caller's rate, counted from the first
sample this server took.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

#: Speech is forgotten this long after it could have finished playing (beyond the longest delay looked for).
KEEP_AFTER_S = 30.0


@dataclass(eq=False)
class Segment:
    """One utterance's speech in one language, from where it could start playing."""

    utterance_id: int
    language: str
    start: int
    pieces: list[Float32Array] = field(default_factory=list)
    length: int = 0
    closed: bool = False  # its last chunk came (or a reset voided the rest)
    delay: int | None = None  # its playback delay, once found on the signal
    score: float = 0.0  # how well that delay matched (``align.Delay.score``)

    @property
    def end(self) -> int:
        """The sample after its last, as placed."""
        return self.start + self.length


class PlayoutTrack:
    """The session's speech by position in the caller's audio; written on the loop, read from a thread."""

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self._segments: list[Segment] = []
        self._lock = threading.Lock()

    def add(self, utterance_id: int, language: str, samples: Float32Array, now: int, last: bool) -> Segment:
        """Append speech of ``utterance_id`` in ``language``; ``now`` is how far the caller's audio has come."""
        with self._lock:
            segment = next(
                (
                    s
                    for s in reversed(self._segments)
                    if s.utterance_id == utterance_id and s.language == language and not s.closed
                ),
                None,
            )
            if segment is None:
                previous_end = max((s.end for s in self._segments if s.language == language), default=0)
                segment = Segment(utterance_id, language, max(now, previous_end))
                self._segments.append(segment)
                self._forget(now)
            if len(samples):
                segment.pieces.append(samples)
                segment.length += len(samples)
            segment.closed = segment.closed or last
            return segment

    def close(self, utterance_id: int, language: str) -> None:
        """No more audio comes for this segment (a reset: the new audio is a new segment after it)."""
        with self._lock:
            for s in self._segments:
                if s.utterance_id == utterance_id and s.language == language:
                    s.closed = True

    def span(self, utterance_id: int, language: str) -> tuple[int, int] | None:
        """Where that utterance's speech was placed (start, end), if any was sent."""
        with self._lock:
            found = [s for s in self._segments if s.utterance_id == utterance_id and s.language == language]
            return (found[0].start, found[-1].end) if found else None

    def heard_utterance(self, start: int, end: int, default_delay: int) -> int:
        """The last utterance whose speech is heard within [start, end) (each at its delay); 0 if none."""
        with self._lock:
            found = [
                s
                for s in self._segments
                if _heard_at(s, default_delay) < end and s.end + _delay(s, default_delay) > start
            ]
        return found[-1].utterance_id if found else 0

    def audible(self, start: int, end: int, max_delay: int, tail: int) -> bool:
        """Whether any speech may be heard in [start, end): at its delay (+ ``tail``), or anywhere up to ``max_delay``.

        A segment whose delay is not known yet may be heard from where it
        was placed up to ``max_delay`` after its end.
        """
        with self._lock:
            windows = [_window(s, max_delay, tail) for s in self._segments]
        return any(lo < end and hi > start for lo, hi in windows)

    def unlocked(self, start: int, end: int, max_delay: int) -> bool:
        """Whether speech that may be heard in [start, end) has no delay of its own yet."""
        with self._lock:
            return any(s.delay is None and s.start < end and s.end + max_delay > start for s in self._segments)

    def lock(self, start: int, end: int, delay: int, score: float, tolerance: int) -> list[tuple[Segment, int | None]]:
        """Give ``delay`` to the segments placed within [start, end) (the speech a match was found in).

        A segment keeps the delay it has unless this one is more than
        ``tolerance`` away and matched better: a first estimate a little off
        is followed by the canceller itself, while every change costs it its
        filter. Returns the segments changed, each with the delay it had.
        """
        with self._lock:
            changed = []
            for s in self._segments:
                if not (s.start < end and s.end > start):
                    continue
                if s.delay is None or (abs(s.delay - delay) > tolerance and score > s.score):
                    changed.append((s, s.delay))
                    s.delay, s.score = delay, score
            return changed

    def delay_heard(self, start: int, end: int, default_delay: int | None) -> int | None:
        """The delay of the last segment heard within [start, end) (``default_delay`` for one without its own)."""
        with self._lock:
            delays = [
                d
                for s in self._segments
                if (d := s.delay if s.delay is not None else default_delay) is not None
                and s.start + d < end
                and s.end + d > start
            ]
        return delays[-1] if delays else None

    def placed(self, start: int, end: int) -> Float32Array:
        """The speech (all languages mixed) at the positions it was placed, [start, end); zeros where none."""
        return self._render(start, end, None)

    def heard(self, start: int, end: int, default_delay: int | None) -> Float32Array:
        """The speech as the microphone should hear it in [start, end): each segment at its delay.

        A segment without a delay of its own is taken at ``default_delay``
        (the last one found: usually right), or left out if that is None.
        """
        return self._render(start, end, -1 if default_delay is None else default_delay)

    def _render(self, start: int, end: int, default_delay: int | None) -> Float32Array:
        out = np.zeros(max(0, end - start), dtype=np.float32)
        with self._lock:
            for s in self._segments:
                shift = 0 if default_delay is None else s.delay if s.delay is not None else default_delay
                if shift < 0 or s.end + shift <= start or s.start + shift >= end:
                    continue
                at = s.start + shift
                for piece in s.pieces:
                    lo, hi = max(at, start), min(at + len(piece), end)
                    if lo < hi:
                        out[lo - start : hi - start] += piece[lo - at : hi - at]
                    at += len(piece)
                    if at >= end:
                        break
        return out

    def _forget(self, now: int) -> None:
        horizon = now - int(KEEP_AFTER_S * self.rate_hz)
        self._segments = [s for s in self._segments if s.end >= horizon or not s.closed]


def _delay(segment: Segment, default: int) -> int:
    return segment.delay if segment.delay is not None else default


def _heard_at(segment: Segment, default: int) -> int:
    return segment.start + _delay(segment, default)


def _window(segment: Segment, max_delay: int, tail: int) -> tuple[int, int]:
    """Where a segment may be heard: at its delay once known, else anywhere up to ``max_delay`` after it."""
    if segment.delay is not None:
        return segment.start + segment.delay, segment.end + segment.delay + tail
    return segment.start, segment.end + max_delay + tail
