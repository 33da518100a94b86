"""espeak-ng (Debian package ``espeak-ng``): a formant synthesizer for about a hundred languages.

Robotic, but it speaks Korean, Spanish and most languages a meeting needs
where no neural voice is packaged (see ENGINE-NOTES). One ``espeak-ng``
process per clause, text on stdin, WAV on stdout: it starts in ~5 ms and
speaks at ~0.005 x real time, so a persistent process (whose output would
need framing) is not worth it, and a crash costs one clause. The process
runs from the loop's offload threads (``subprocess`` blocks), so the event
loop never waits for it; a cancelled clause kills its process at once.

Voices are espeak-ng's own language voices (``espeak-ng --voices``), named
by their tag (``es``, ``es-419``, ``ko``, ``en-us``); MBROLA voices (which
need another package) and dialect variants are left out.
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Sequence

import grpc
import soundfile

from tongyeok_server import languages
from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.errors import ServiceError
from tongyeok_server.settings import GoogleSettings, OpenAISettings, SynthesisSettings
from tongyeok_server.synthesis.base import ClauseSynthesizer, SpeechRequest

log = logging.getLogger(__name__)

BINARY = "espeak-ng"
SAMPLE_RATE_HZ = 22050
NORMAL_WPM = 175  # espeak-ng's default speed, words per minute
CLAUSE_TIMEOUT_S = 10.0
# Which voice "default" picks where espeak-ng has several for a language and none is the bare language.
PREFERRED = {"en": "en-us", "fr": "fr-fr", "pt": "pt-br", "vi": "vi"}
# espeak-ng's tags that BCP-47 callers write differently.
ALIASES = {"cmn": ("zh",), "yue": ("zh-HK",)}


def list_voices(binary: str = BINARY) -> list[Voice]:
    """espeak-ng's language voices, the preferred voice of each language first."""
    try:
        listing = subprocess.run([binary, "--voices"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("espeak-ng: cannot list voices (%s); speech output has no espeak-ng voices", exc)
        return []
    voices: dict[str, Voice] = {}
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5 or parts[4].startswith("mb/"):
            continue
        # Columns: Pty, Language, Age/Gender, VoiceName, File, Other languages.
        tag, voice_name = parts[1], parts[3].replace("_", " ")
        subtags = tag.split("-")
        if not languages.is_well_formed(tag) or len(subtags) > 2:
            continue  # dialect variants such as en-gb-x-rp
        if len(subtags) == 2 and not (len(subtags[1]) == 2 or subtags[1].isdigit()):
            continue  # scripts and other variants (cmn-latn-pinyin)
        if tag in voices:
            continue
        codes = (languages.normalize(tag), *ALIASES.get(tag, ()))
        voices[tag] = Voice(tag, codes, f"espeak-ng {voice_name}")

    def rank(voice: Voice) -> tuple[str, int]:
        lang = languages.primary(voice.name)
        preferred = PREFERRED.get(lang, lang)
        return (lang, 0 if voice.name == preferred else 1)

    return sorted(voices.values(), key=rank)


class EspeakSynthesizer(ClauseSynthesizer):
    """Speaks with espeak-ng, one process per clause."""

    def __init__(self, binary: str = BINARY) -> None:
        self._binary = shutil.which(binary) or binary
        self._voices = list_voices(self._binary)

    @property
    def description(self) -> EngineDescription:
        """Engine name and how many voices."""
        return EngineDescription("espeak-ng", f"{len(self._voices)} voices")

    def voices(self) -> Sequence[Voice]:
        """espeak-ng's language voices."""
        return self._voices

    def output_rate(self, request: SpeechRequest) -> int:
        """espeak-ng always speaks at 22.05 kHz."""
        return SAMPLE_RATE_HZ

    async def speak_clause(self, request: SpeechRequest, text: str) -> AsyncIterator[bytes]:
        """One espeak-ng process speaks ``text``."""
        wpm = max(80, min(450, round(NORMAL_WPM * request.speaking_rate)))
        argv = [self._binary, "-v", request.voice.name, "-s", str(wpm), "--stdout"]
        run = _Run(argv, text)
        loop = asyncio.get_running_loop()
        try:
            wav = await loop.run_in_executor(None, run.result)
        finally:
            run.kill()  # a cancelled clause (or a failure) leaves no process behind
        yield _pcm(wav)


class _Run:
    """One espeak-ng process, run from a pool thread; ``kill`` from anywhere."""

    def __init__(self, argv: list[str], text: str) -> None:
        self._argv = argv
        self._text = text
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._killed = False

    def result(self) -> bytes:
        with self._lock:
            if self._killed:
                return b""
            try:
                self._proc = subprocess.Popen(
                    self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            except OSError as exc:
                raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"espeak-ng cannot start: {exc}") from None
        proc = self._proc
        try:
            out, err = proc.communicate(self._text.encode() + b"\n", timeout=CLAUSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"espeak-ng took more than {CLAUSE_TIMEOUT_S:g} s for a clause"
            ) from None
        if proc.returncode != 0 and not self._killed:
            detail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            raise ServiceError(grpc.StatusCode.INTERNAL, f"espeak-ng failed: {detail[0][:200]}")
        return out

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()


def _pcm(wav: bytes) -> bytes:
    """The samples of espeak-ng's WAV (its header's sizes are those of a pipe, which libsndfile tolerates)."""
    if not wav:
        return b""
    try:
        samples, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise ServiceError(grpc.StatusCode.INTERNAL, f"espeak-ng wrote audio that cannot be read: {exc}") from None
    if rate != SAMPLE_RATE_HZ:
        raise ServiceError(grpc.StatusCode.INTERNAL, f"espeak-ng spoke at {rate} Hz, expected {SAMPLE_RATE_HZ}")
    return bytes(samples.tobytes())


def create(settings: SynthesisSettings, google: GoogleSettings, openai: OpenAISettings) -> EspeakSynthesizer:
    """Factory used by the registry (``--synthesizer espeak``)."""
    return EspeakSynthesizer()
