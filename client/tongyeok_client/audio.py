"""Reading audio into chunks for an ``Interpret`` stream, and sending them at real-time speed.

Two kinds of input:

* files ``soundfile`` (libsndfile) can decode — WAV, FLAC, OGG/Vorbis/Opus, MP3
  and more — are read as signed 16-bit PCM (LINEAR16) at their native sample
  rate; mono and stereo stay as they are, more channels are downmixed to mono;
* headerless audio (``.raw``/``.pcm`` LINEAR16, ``.ulaw``/``.mulaw``,
  ``.alaw``, or stdin) is passed through byte for byte in the encoding,
  rate and channel count the caller states.

Either way the result is an :class:`AudioStream`: its :class:`AudioFormat`
(ready for :func:`tongyeok_client.client.config`) and an iterator of chunks of
whole frames, read lazily so that an hour-long meeting is never held in memory.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile

__all__ = [
    "ENCODINGS",
    "AudioFormat",
    "AudioStream",
    "open_audio",
    "open_raw",
    "paced",
    "read_audio_file",
]

#: Encodings the service accepts, with their bytes per sample.
ENCODINGS: dict[str, int] = {"LINEAR16": 2, "MULAW": 1, "ALAW": 1}

# File extensions that mean "headerless", and the encoding they imply.
_RAW_EXTENSIONS: dict[str, str] = {
    ".raw": "LINEAR16",
    ".pcm": "LINEAR16",
    ".s16": "LINEAR16",
    ".ulaw": "MULAW",
    ".mulaw": "MULAW",
    ".ul": "MULAW",
    ".alaw": "ALAW",
    ".al": "ALAW",
}

_ENCODING_ALIASES: dict[str, str] = {
    "linear16": "LINEAR16",
    "pcm": "LINEAR16",
    "s16le": "LINEAR16",
    "pcm_s16le": "LINEAR16",
    "mulaw": "MULAW",
    "ulaw": "MULAW",
    "mu-law": "MULAW",
    "pcm_mulaw": "MULAW",
    "alaw": "ALAW",
    "a-law": "ALAW",
    "pcm_alaw": "ALAW",
}


def normalize_encoding(name: str) -> str:
    """Return the canonical encoding name (``LINEAR16``, ``MULAW`` or ``ALAW``) for ``name``.

    Accepts common spellings case-insensitively (``ulaw``, ``mu-law``, ``pcm_s16le`` ...).

    Raises:
        ValueError: the name is not an encoding the service accepts.

    """
    key = name.strip().lower()
    if key.startswith("audio_encoding_"):
        key = key[len("audio_encoding_") :]
    try:
        return _ENCODING_ALIASES[key]
    except KeyError:
        raise ValueError(f"unknown audio encoding {name!r}; use one of linear16, mulaw, alaw") from None


@dataclass(frozen=True)
class AudioFormat:
    """The format of the chunks an :class:`AudioStream` yields (channels interleaved)."""

    #: ``LINEAR16`` (signed 16-bit little-endian), ``MULAW`` or ``ALAW``.
    encoding: str
    #: Samples per second per channel.
    sample_rate_hertz: int
    #: 1 or 2.
    channel_count: int

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one frame: one sample for every channel."""
        return ENCODINGS[self.encoding] * self.channel_count

    def duration_s(self, n_bytes: int) -> float:
        """Seconds of audio held by ``n_bytes`` bytes in this format."""
        return n_bytes / self.bytes_per_frame / self.sample_rate_hertz


@dataclass(frozen=True)
class AudioStream:
    """Audio ready to send: its format and a one-shot iterator of chunks of whole frames."""

    format: AudioFormat
    #: The chunks; each holds whole frames, all but the last exactly ``chunk_duration_s`` long.
    chunks: Iterator[bytes]
    #: Duration of one full chunk, in seconds (what :func:`paced` needs).
    chunk_duration_s: float
    #: Total duration in seconds if known up front (files), else ``None`` (stdin).
    duration_s: float | None = None


def _frames_per_chunk(sample_rate: int, chunk_ms: float) -> int:
    if chunk_ms <= 0:
        raise ValueError(f"chunk length must be positive, got {chunk_ms} ms")
    return max(1, round(sample_rate * chunk_ms / 1000))


def read_audio_file(path: str | os.PathLike[str], *, chunk_ms: float = 100.0) -> AudioStream:
    """Open an audio file that libsndfile can decode and stream it as LINEAR16 chunks.

    The native sample rate is kept (the server resamples); mono and stereo are kept,
    files with more channels are downmixed to mono by averaging.

    Raises:
        soundfile.LibsndfileError: the file is missing or not a format libsndfile decodes
            (it is a ``RuntimeError``; its message says why).

    """
    # Open eagerly so that a missing or undecodable file fails here, not inside the
    # gRPC request thread halfway through a stream.
    sf = soundfile.SoundFile(os.fspath(path))
    channels_in = sf.channels
    channels_out = channels_in if channels_in <= 2 else 1
    fmt = AudioFormat("LINEAR16", int(sf.samplerate), channels_out)
    frames = _frames_per_chunk(fmt.sample_rate_hertz, chunk_ms)
    # MP3 and some OGG files report no or an estimated frame count; only trust a positive one.
    duration = sf.frames / sf.samplerate if sf.frames > 0 else None

    def chunks() -> Iterator[bytes]:
        with sf:
            while True:
                if channels_in <= 2:
                    # Read as int16 directly: exact for 16-bit sources, libsndfile scales the rest.
                    block = sf.read(frames, dtype="int16", always_2d=True)
                else:
                    wide = sf.read(frames, dtype="float32", always_2d=True)
                    mono = np.clip(wide.mean(axis=1), -1.0, 32767 / 32768)
                    block = (mono * 32768.0).astype("<i2")
                if len(block) == 0:
                    return
                yield np.ascontiguousarray(block, dtype="<i2").tobytes()

    return AudioStream(fmt, chunks(), frames / fmt.sample_rate_hertz, duration)


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads (pipes return what they have)."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        data = stream.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


def open_raw(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    encoding: str,
    sample_rate_hertz: int,
    channel_count: int = 1,
    chunk_ms: float = 100.0,
) -> AudioStream:
    """Stream headerless audio (a file, ``"-"`` for stdin, or a binary file object) as-is.

    A trailing partial frame is dropped: the service only accepts whole frames.

    Raises:
        ValueError: unknown encoding, or a rate or channel count out of range.
        OSError: the file cannot be opened.

    """
    enc = normalize_encoding(encoding)
    if sample_rate_hertz <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate_hertz}")
    if channel_count not in (1, 2):
        raise ValueError(f"headerless audio must have 1 or 2 channels, got {channel_count}")
    fmt = AudioFormat(enc, sample_rate_hertz, channel_count)
    frames = _frames_per_chunk(sample_rate_hertz, chunk_ms)
    chunk_bytes = frames * fmt.bytes_per_frame

    duration: float | None = None
    stream: BinaryIO
    owned = False
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
            stream = sys.stdin.buffer
        else:
            stream = open(source, "rb")  # noqa: SIM115 - closed by the generator below
            owned = True
            duration = fmt.duration_s(os.fstat(stream.fileno()).st_size)
    else:
        stream = source

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                data = _read_full(stream, chunk_bytes)
                whole = len(data) - len(data) % fmt.bytes_per_frame
                if whole:
                    yield data[:whole]
                if len(data) < chunk_bytes:
                    return
        finally:
            if owned:
                stream.close()

    return AudioStream(fmt, chunks(), frames / sample_rate_hertz, duration)


def open_audio(
    path: str | os.PathLike[str],
    *,
    encoding: str | None = None,
    sample_rate_hertz: int | None = None,
    channel_count: int | None = None,
    chunk_ms: float = 100.0,
) -> AudioStream:
    """Open ``path`` as a decodable file, or as headerless audio when that is what it is.

    Headerless means: ``path`` is ``"-"`` (stdin), has a raw extension (``.raw``,
    ``.pcm``, ``.s16`` = LINEAR16; ``.ulaw``/``.mulaw``/``.ul``; ``.alaw``/``.al``),
    or ``encoding`` is given. Headerless LINEAR16 needs ``sample_rate_hertz``;
    MULAW and ALAW default to 8000 Hz. Channels default to 1.

    Raises:
        ValueError: headerless audio without the facts needed to read it.
        OSError / soundfile.LibsndfileError: the file cannot be opened or decoded.

    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if name != "-" and encoding is None and ext not in _RAW_EXTENSIONS:
        return read_audio_file(name, chunk_ms=chunk_ms)
    enc = normalize_encoding(encoding) if encoding is not None else _RAW_EXTENSIONS.get(ext, "LINEAR16")
    rate = sample_rate_hertz
    if rate is None:
        if enc == "LINEAR16":
            # Guessing a PCM rate would silently turn speech into noise; ask instead.
            raise ValueError("headerless LINEAR16 audio needs its sample rate (--rate)")
        rate = 8000
    return open_raw(name, encoding=enc, sample_rate_hertz=rate, channel_count=channel_count or 1, chunk_ms=chunk_ms)


def paced(
    chunks: Iterable[bytes],
    chunk_duration_s: float,
    speed: float = 1.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """Yield ``chunks`` at ``speed`` times real time, like a microphone would deliver them.

    Chunk ``i`` is released at ``start + i * chunk_duration_s / speed``, computed from the
    start rather than by sleeping a fixed step after each chunk, so that time spent by
    the consumer and sleep overshoot do not accumulate as drift. If the consumer falls
    behind, the late chunks go out at once until the schedule is met again.

    Args:
        chunks: The audio chunks, each ``chunk_duration_s`` long (the last may be shorter).
        chunk_duration_s: Duration of one chunk in seconds.
        speed: 1.0 is real time, 2.0 twice as fast; must be positive.
        clock: Monotonic clock in seconds (tests pass a fake one).
        sleep: Sleep function (tests pass a fake one).

    Raises:
        ValueError: ``speed`` or ``chunk_duration_s`` is not positive.

    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    if chunk_duration_s <= 0:
        raise ValueError(f"chunk duration must be positive, got {chunk_duration_s}")
    step = chunk_duration_s / speed
    start: float | None = None
    for i, chunk in enumerate(chunks):
        now = clock()
        if start is None:
            start = now
        delay = start + i * step - now
        if delay > 0:
            sleep(delay)
        yield chunk
