"""From an engine's PCM to the encoding and rate the caller asked for, one utterance at a time.

- Resampling: ``soxr``'s streaming resampler (filter state kept between
  chunks, so clause boundaries leave no clicks).
- G.711: a 65536-entry table encoded once by libsndfile (``soundfile``), as
  ``audio/convert.py`` decodes it.
- Ogg Opus: PyAV (FFmpeg's libopus and Ogg muxer). libsndfile writes Ogg
  Opus too, but holds each Ogg page until about a second of audio is in it
  and has no way to flush one, so the end of a clause would wait for the
  next clause; FFmpeg's muxer is told to close a page every 20 ms (one Opus
  frame), so each chunk holds whole pages of everything encoded so far
  (less the codec's ~26 ms of look-ahead and partial frame).
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from tongyeok_server.session.speech import SpeechEncoding

Int16Array = npt.NDArray[np.int16]
OGG_PAGE_DURATION_US = 20_000


@functools.cache
def _g711_encoder(encoding: SpeechEncoding) -> npt.NDArray[np.uint8]:
    """The G.711 byte of every int16 value (index: value + 32768)."""
    subtype = {SpeechEncoding.MULAW: "ULAW", SpeechEncoding.ALAW: "ALAW"}[encoding]
    out = io.BytesIO()
    values = np.arange(-32768, 32768, dtype=np.int16)
    soundfile.write(out, values, 8000, format="RAW", subtype=subtype)
    return np.frombuffer(out.getvalue(), dtype=np.uint8)


class _Sink(io.RawIOBase):
    """Where the Ogg muxer writes; ``take`` hands over what it wrote so far."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buf += data
        return len(data)

    def take(self) -> bytes:
        out, self._buf = bytes(self._buf), bytearray()
        return out


class _OggOpus:
    """An Ogg Opus stream being written, through PyAV."""

    def __init__(self, rate: int) -> None:
        import av  # only speech output in OGG_OPUS needs FFmpeg

        self._av = av
        self._rate = rate
        self._sink = _Sink()
        self._container: Any = av.open(
            self._sink, mode="w", format="ogg", options={"page_duration": str(OGG_PAGE_DURATION_US)}
        )
        self._stream: Any = self._container.add_stream("libopus", rate=rate, layout="mono")
        self._stream.options = {"application": "voip"}  # tuned for speech
        self._pts = 0

    def encode(self, samples: Int16Array) -> bytes:
        if len(samples):
            frame = self._av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self._rate
            frame.pts = self._pts
            self._pts += len(samples)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()

    def finish(self) -> bytes:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.take()


class SpeechEncoder:
    """Encodes one utterance's speech: PCM at ``input_rate_hz`` in, the caller's format out."""

    def __init__(self, encoding: SpeechEncoding, sample_rate_hz: int, input_rate_hz: int) -> None:
        self.encoding = encoding
        self.sample_rate_hz = sample_rate_hz
        self._resampler = (
            None
            if input_rate_hz == sample_rate_hz
            else soxr.ResampleStream(input_rate_hz, sample_rate_hz, 1, dtype="int16", quality="HQ")
        )
        self._ogg = _OggOpus(sample_rate_hz) if encoding is SpeechEncoding.OGG_OPUS else None
        self._odd = b""  # a byte of a sample split between two chunks

    def encode(self, pcm: bytes) -> bytes:
        """Encode one chunk of 16-bit PCM; returns the bytes ready so far (may be empty)."""
        pcm = self._odd + pcm
        cut = len(pcm) - len(pcm) % 2
        pcm, self._odd = pcm[:cut], pcm[cut:]
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=False)
        return self._encode(samples)

    def finish(self) -> bytes:
        """The end of the utterance: whatever the resampler and codec still hold."""
        tail = np.zeros(0, dtype=np.int16)
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(tail, last=True)
        out = self._encode(tail)
        if self._ogg is not None:
            out += self._ogg.finish()
        return out

    def _encode(self, samples: Int16Array) -> bytes:
        if self._ogg is not None:
            return self._ogg.encode(samples)
        if self.encoding is SpeechEncoding.LINEAR16:
            return samples.astype("<i2", copy=False).tobytes()
        table = _g711_encoder(self.encoding)
        return table[samples.astype(np.int32) + 32768].tobytes()


class PassThrough:
    """The ``SpeechEncoder`` of an engine that already gives the caller's encoding and rate."""

    def encode(self, audio: bytes) -> bytes:
        """``audio`` as it is."""
        return audio

    def finish(self) -> bytes:
        """Nothing is held back."""
        return b""
