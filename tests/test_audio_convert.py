"""Audio conversion to 16 kHz mono: G.711 decoding, downmix, resampling."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tongyeok_server.audio.convert import PcmConverter, decode
from tongyeok_server.audio.format import AudioSpec, Encoding


@pytest.mark.parametrize(("encoding", "sox_encoding"), [(Encoding.MULAW, "mu-law"), (Encoding.ALAW, "a-law")])
def test_g711_decodes_like_sox(tmp_path: Path, encoding: Encoding, sox_encoding: str) -> None:
    every_byte = tmp_path / "all.raw"
    every_byte.write_bytes(bytes(range(256)))
    linear = subprocess.run(
        [
            "sox",
            "-t",
            "raw",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            sox_encoding,
            "-b",
            "8",
            str(every_byte),
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    expected = np.frombuffer(linear, dtype="<i2")
    got = decode(bytes(range(256)), AudioSpec(encoding, 8000))[:, 0]
    assert np.array_equal(got, expected)


def tone(rate: int, seconds: float, hz: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1)


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (16000, 1), (44100, 2), (48000, 2)])
def test_chunked_conversion_keeps_pitch_and_length(rate: int, channels: int) -> None:
    audio = tone(rate, 1.0, 440.0, channels)
    converter = PcmConverter(AudioSpec(Encoding.LINEAR16, rate, channels))
    chunk = rate // 10
    out = b"".join(converter.convert(audio[i : i + chunk].tobytes()) for i in range(0, len(audio), chunk))
    out += converter.flush()
    assert abs(len(out) // 2 - 16000) <= 2
    assert abs(dominant_hz(out, 16000) - 440.0) < 2.0


def test_stereo_downmix_averages_channels() -> None:
    frames = np.array([[1000, 3000], [-2000, 2000], [32767, 32767]], dtype=np.int16)
    mono = decode(frames.tobytes(), AudioSpec(Encoding.LINEAR16, 16000, 2))
    converter = PcmConverter(AudioSpec(Encoding.LINEAR16, 16000, 2))
    assert np.frombuffer(converter.convert(frames.tobytes()), dtype=np.int16).tolist() == [2000, 0, 32767]
    assert mono.shape == (3, 2)
