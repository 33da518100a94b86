"""Conversion of a caller's audio to the 16 kHz mono PCM the embedded recogniser needs.

G.711 decoding tables come from libsndfile (through ``soundfile``) rather
than hand-written bit twiddling; resampling is ``soxr``'s streaming
resampler, which keeps its filter state between chunks so chunk boundaries
leave no clicks.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from tongyeok_server.audio.format import AudioSpec, Encoding

Int16Array = npt.NDArray[np.int16]


@functools.cache
def _g711_table(encoding: Encoding) -> Int16Array:
    """The 256 linear values of every G.711 byte, decoded once by libsndfile."""
    subtype = {Encoding.MULAW: "ULAW", Encoding.ALAW: "ALAW"}[encoding]
    table, _ = soundfile.read(
        io.BytesIO(bytes(range(256))), format="RAW", subtype=subtype, samplerate=8000, channels=1, dtype="int16"
    )
    return np.ascontiguousarray(table, dtype=np.int16)


def decode(data: bytes, spec: AudioSpec) -> Int16Array:
    """Bytes in ``spec``'s encoding -> int16 samples, shape (frames, channels)."""
    if spec.encoding is Encoding.LINEAR16:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
    else:
        samples = _g711_table(spec.encoding)[np.frombuffer(data, dtype=np.uint8)]
    return samples.reshape(-1, spec.channels)


def downmix(frames: Int16Array) -> Int16Array:
    """(frames, channels) -> mono, averaging channels without overflow."""
    if frames.shape[1] == 1:
        return frames[:, 0]
    mono: Int16Array = (frames.astype(np.int32).sum(axis=1) // frames.shape[1]).astype(np.int16)
    return mono


class PcmConverter:
    """Stateful converter from one stream's audio to mono PCM at ``target_rate_hz``."""

    def __init__(self, spec: AudioSpec, target_rate_hz: int = 16000) -> None:
        self.spec = spec
        self.target_rate_hz = target_rate_hz
        self._resampler = (
            None
            if spec.sample_rate_hz == target_rate_hz
            else soxr.ResampleStream(spec.sample_rate_hz, target_rate_hz, 1, dtype="int16", quality="HQ")
        )

    def convert(self, data: bytes) -> bytes:
        """Convert one chunk (whole frames); returns the PCM ready so far."""
        mono = downmix(decode(data, self.spec))
        if self._resampler is None:
            return mono.tobytes()
        out: Int16Array = self._resampler.resample_chunk(mono, last=False)
        return out.tobytes()

    def flush(self) -> bytes:
        """The samples the resampler still holds, at the end of the stream."""
        if self._resampler is None:
            return b""
        out: Int16Array = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out.tobytes()
