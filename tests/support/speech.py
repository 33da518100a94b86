"""Synthesised test speech: real voices the embedded recognisers understand.

Festival's HTS voice (cmu_us_slt_arctic_hts) is recognised by pocketsphinx
nearly word for word (see ENGINE-NOTES), flite's voices nearly as well;
espeak-ng speaks other languages (``espeak:es``), robotically. Each sentence
is synthesised on its own and the sentences are joined with silence, as a
person pauses between sentences. Results are cached under .cache/speech by
content, so a rerun does not synthesise again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "speech"
VOICE = "(voice_cmu_us_slt_arctic_hts)"
# Voices by name: Festival's HTS voice, flite's (``flite:rms``), espeak-ng's (``espeak:es``).
HTS = "hts"
# espeak-ng's default rate (175 words a minute) is too fast for Whisper base to follow its robotic voice.
ESPEAK_RATE = "130"


@dataclass(frozen=True)
class Speech:
    """A synthesised recording and the sentences in it."""

    path: Path
    sentences: tuple[str, ...]
    sample_rate_hz: int
    sentence_end_s: tuple[float, ...]  # where each sentence's audio ends

    def pcm(self) -> bytes:
        """The recording as 16-bit mono PCM bytes."""
        data, _ = soundfile.read(self.path, dtype="int16")
        return bytes(data.tobytes())


def synthesize(
    sentences: list[str], pause_s: float = 0.8, rate_hz: int = 16000, voice: str | Sequence[str] = HTS
) -> Speech:
    """Speak ``sentences`` with ``pause_s`` of silence around each; cached by content.

    ``voice`` is one voice for all sentences or one per sentence (a conversation).
    """
    voices = [voice] * len(sentences) if isinstance(voice, str) else list(voice)
    tools = {"hts": "text2wave", "flite": "flite", "espeak": "espeak-ng"}
    for tool in {tools[v.split(":")[0]] for v in voices} | {"sox"}:
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run `make test` (it installs festival, flite, espeak-ng and sox)")
    key_voices = VOICE if voices == [HTS] * len(sentences) else voices  # keeps the old cache keys
    key = hashlib.sha256(repr((sentences, pause_s, rate_hz, key_voices)).encode()).hexdigest()[:16]
    out = CACHE / f"{key}.wav"
    ends_file = out.with_suffix(".ends")
    if not out.exists() or not ends_file.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        silence = np.zeros(int(pause_s * rate_hz), dtype=np.int16)
        pieces = [silence]
        ends = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (sentence, who) in enumerate(zip(sentences, voices, strict=True)):
                raw = Path(tmp, f"{i}.wav")
                resampled = Path(tmp, f"{i}-r.wav")
                _speak(who, sentence, raw)
                subprocess.run(["sox", str(raw), "-r", str(rate_hz), "-c", "1", "-b", "16", str(resampled)], check=True)
                audio, _ = soundfile.read(resampled, dtype="int16")
                pieces.append(audio)
                ends.append(sum(len(p) for p in pieces) / rate_hz)
                pieces.append(silence)
        tmp_out = out.with_suffix(".tmp.wav")
        soundfile.write(tmp_out, np.concatenate(pieces), rate_hz, subtype="PCM_16")
        tmp_out.replace(out)
        ends_file.write_text(" ".join(f"{e:.3f}" for e in ends))
    ends_s = tuple(float(e) for e in ends_file.read_text().split())
    return Speech(out, tuple(sentences), rate_hz, ends_s)


def _speak(voice: str, text: str, out: Path) -> None:
    kind, _, name = voice.partition(":")
    if kind == "hts":
        script = out.with_suffix(".txt")
        script.write_text(text + "\n")
        command = ["text2wave", "-eval", VOICE, str(script), "-o", str(out)]
    elif kind == "flite":
        command = ["flite", "-voice", name, "-t", text, "-o", str(out)]
    elif kind == "espeak":
        command = ["espeak-ng", "-v", name, "-s", ESPEAK_RATE, "-w", str(out), text]
    else:
        raise ValueError(f"unknown voice {voice!r}: hts, flite:NAME or espeak:LANG")
    subprocess.run(command, check=True, capture_output=True)


def convert(
    speech: Speech, out: Path, *, rate_hz: int, channels: int = 1, encoding: str = "signed-integer", bits: int = 16
) -> bytes:
    """Convert with sox to headerless audio (e.g. 8 kHz mu-law, 48 kHz stereo); returns the bytes."""
    subprocess.run(
        [
            "sox",
            str(speech.path),
            "-t",
            "raw",
            "-r",
            str(rate_hz),
            "-c",
            str(channels),
            "-e",
            encoding,
            "-b",
            str(bits),
            str(out),
        ],
        check=True,
    )
    return out.read_bytes()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference length (case and punctuation ignored)."""

    def norm(text: str) -> list[str]:
        return "".join(c.lower() if c.isalnum() or c in " '" else " " for c in text).split()

    ref, hyp = norm(reference), norm(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))
