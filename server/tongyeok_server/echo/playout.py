"""The session's speech laid on the timeline of the caller's audio: the echo canceller's reference.

A client plays each utterance's chunks as they arrive, one utterance after
another within a language. So an utterance can start playing, at the
earliest, when its first chunk is sent (the caller's audio has then reached
sample ``now``) or when the previous utterance of its language ends,
whichever is later; it then plays without gaps. Its real start is that plus
the client's playback delay (network, buffers, the microphone's own), which
``align`` finds on the signal. Positions are samples of the caller's audio,
mono, at the caller's rate, counted from the first sample this server took.
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

    def utterance_in(self, start: int, end: int) -> int:
        """The last utterance whose speech is placed within [start, end); 0 if none."""
        with self._lock:
            found = [s for s in self._segments if s.start < end and s.end > start]
        return found[-1].utterance_id if found else 0

    def busy(self, start: int, end: int, max_delay: int) -> bool:
        """Whether any speech placed before ``end`` could still be heard in [start, end) with up to ``max_delay``."""
        with self._lock:
            return any(s.start < end and s.end + max_delay >= start for s in self._segments)

    def reference(self, start: int, end: int) -> Float32Array:
        """The speech (all languages mixed) at positions [start, end); zeros where none was placed."""
        out = np.zeros(max(0, end - start), dtype=np.float32)
        with self._lock:
            for s in self._segments:
                if s.end <= start or s.start >= end:
                    continue
                at = s.start
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
