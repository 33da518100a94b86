"""Audio plumbing for the guard: the session's speech as reference samples, the caller's audio back in its format."""

from __future__ import annotations

import functools
import io

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from tongyeok_server.audio.convert import decode, downmix
from tongyeok_server.audio.format import AudioSpec, Encoding

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]


class SpeechDecoder:
    """One utterance's speech chunks (any speech encoding) -> float samples at the caller's rate, as they come."""

    def __init__(self, encoding: str, speech_rate_hz: int, out_rate_hz: int) -> None:
        self._encoding = encoding
        self._rate = speech_rate_hz
        self._resampler = (
            None
            if speech_rate_hz == out_rate_hz
            else soxr.ResampleStream(speech_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ")
        )
        self._ogg = bytearray()
        self._ogg_samples = 0

    def decode(self, data: bytes, last: bool) -> Float32Array:
        """The samples of one chunk (resampled); ``last`` flushes the resampler."""
        pcm = self._pcm(data, last)
        if self._resampler is None:
            return pcm
        out: Float32Array = self._resampler.resample_chunk(pcm, last=last)
        return out

    def _pcm(self, data: bytes, last: bool) -> Float32Array:
        if self._encoding == "LINEAR16":
            return np.frombuffer(data, dtype="<i2").astype(np.float32)
        if self._encoding in ("MULAW", "ALAW"):
            spec = AudioSpec(Encoding(self._encoding), self._rate)
            return downmix(decode(data, spec)).astype(np.float32)
        # Ogg Opus: chunks hold whole pages, but a page may end mid-packet; decode what has come so far
        # and keep the samples not yet taken (an utterance is a few tens of kB).
        self._ogg += data
        try:
            samples, _ = soundfile.read(io.BytesIO(bytes(self._ogg)), dtype="float32")
        except (RuntimeError, soundfile.LibsndfileError):
            return np.zeros(0, dtype=np.float32)
        samples = np.asarray(samples, dtype=np.float32).reshape(len(samples), -1)[:, 0] * 32768.0
        new = samples[self._ogg_samples :]
        self._ogg_samples = len(samples)
        return new


@functools.cache
def _g711_encoder(encoding: Encoding) -> UInt8Array:
    """The G.711 byte of every int16 value, encoded once by libsndfile (as ``convert`` decodes)."""
    subtype = {Encoding.MULAW: "ULAW", Encoding.ALAW: "ALAW"}[encoding]
    out = io.BytesIO()
    every = np.arange(-32768, 32768, dtype=np.int16)
    soundfile.write(out, every, 8000, format="RAW", subtype=subtype)
    return np.frombuffer(out.getvalue(), dtype=np.uint8)


def mono(audio: bytes, spec: AudioSpec) -> Int16Array:
    """The caller's chunk as mono int16 samples."""
    return downmix(decode(audio, spec))


def encode(samples: Int16Array, spec: AudioSpec) -> bytes:
    """Mono int16 samples back into the caller's encoding and channel count."""
    frames = np.repeat(samples[:, None], spec.channels, axis=1) if spec.channels > 1 else samples
    if spec.encoding is Encoding.LINEAR16:
        return frames.astype("<i2").tobytes()
    table = _g711_encoder(spec.encoding)
    return table[frames.astype(np.int32) + 32768].tobytes()


def to_int16(samples: Float32Array) -> Int16Array:
    """Float samples (int16 scale) clipped to int16."""
    return np.clip(samples, -32768, 32767).astype(np.int16)
