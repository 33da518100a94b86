"""The caller's audio format, as the engines see it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 48000
MAX_CHANNELS = 2


class Encoding(enum.Enum):
    """Sample encodings the service accepts."""

    LINEAR16 = "LINEAR16"
    MULAW = "MULAW"
    ALAW = "ALAW"

    @property
    def bytes_per_sample(self) -> int:
        """Bytes one sample of one channel takes."""
        return 2 if self is Encoding.LINEAR16 else 1


@dataclass(frozen=True)
class AudioSpec:
    """Encoding, rate and channel count of a stream's audio bytes (interleaved)."""

    encoding: Encoding
    sample_rate_hz: int
    channels: int = 1

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame: one sample for every channel."""
        return self.encoding.bytes_per_sample * self.channels

    @property
    def bytes_per_second(self) -> int:
        """Bytes of one second of audio."""
        return self.frame_bytes * self.sample_rate_hz

    def duration_s(self, n_bytes: int) -> float:
        """Seconds of audio in ``n_bytes`` bytes."""
        return n_bytes / self.bytes_per_second

    def bytes_at(self, seconds: float) -> int:
        """The byte offset of the last whole frame at or before ``seconds`` into the audio."""
        return max(0, int(seconds * self.sample_rate_hz)) * self.frame_bytes
