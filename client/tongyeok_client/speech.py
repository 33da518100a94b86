"""Spoken translations on the client: build ``speech_output``, write a session's speech to WAV, play it.

Example::

    from tongyeok_client import InterpreterClient, config, open_audio, paced
    from tongyeok_client.speech import SpeechWriter, speech_output

    audio = open_audio("meeting.wav")
    cfg = config(source="en-US", target="es", audio=audio.format)
    cfg.speech_output.CopyFrom(speech_output(sample_rate_hertz=24000))
    with InterpreterClient() as client, SpeechWriter("meeting-es.wav") as writer:
        for event in client.interpret(cfg, paced(audio.chunks, audio.chunk_duration_s)):
            writer.handle(event)

``SpeechWriter`` keeps each utterance's audio until its last chunk (a
``translation_reset`` discards it, as the proto says), then appends it to the
file of its language, decoded to 16-bit PCM (Ogg Opus too). ``SpeechPlayer``
plays the chunks as they arrive on the local audio device (``sounddevice``,
the ``tongyeok[speak]`` extra, which needs PortAudio).

A microphone in the same room hears that speech. The server removes it
(``InterpretConfig.echo_suppression``), but a client does better before it
sends: headphones; the system's echo canceller (``echo_cancelling_devices``:
PulseAudio/PipeWire ``module-echo-cancel``), playing and recording through it;
or half-duplex, the microphone held while a player speaks
(``Microphone(hold=lambda: player.speaking)``).
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import soundfile

from .events import Event, TranslationAudio, TranslationEvent, TranslationReset
from .proto import interpreter_pb2 as pb

__all__ = ["NoAudioDevice", "SpeechPlayer", "SpeechWriter", "decode_audio", "echo_cancelling_devices", "speech_output"]

_ENCODINGS = {
    "LINEAR16": pb.SPEECH_ENCODING_LINEAR16,
    "OGG_OPUS": pb.SPEECH_ENCODING_OGG_OPUS,
    "MULAW": pb.SPEECH_ENCODING_MULAW,
    "ALAW": pb.SPEECH_ENCODING_ALAW,
}
_RAW = {"LINEAR16": "PCM_16", "MULAW": "ULAW", "ALAW": "ALAW"}


def speech_output(
    *,
    voices: Mapping[str, str] | Sequence[str] = (),
    encoding: str = "LINEAR16",
    sample_rate_hertz: int = 24000,
    speaking_rate: float = 0.0,
) -> pb.SpeechOutputConfig:
    """Build a ``SpeechOutputConfig``.

    Args:
        voices: ``{language: voice}`` (``"default"`` or ``""`` for the server's choice), or a list of
            languages to speak in their default voices; empty = every target language.
        encoding: ``"linear16"``, ``"ogg_opus"``, ``"mulaw"`` or ``"alaw"`` (any case).
        sample_rate_hertz: Rate of the audio sent back (the server resamples).
        speaking_rate: 0.5-2.0; 0 = the voice's natural pace.

    Raises:
        ValueError: unknown encoding.

    """
    key = encoding.strip().upper().removeprefix("SPEECH_ENCODING_")
    if key not in _ENCODINGS:
        raise ValueError(f"unknown speech encoding {encoding!r}; use one of {', '.join(e.lower() for e in _ENCODINGS)}")
    pairs = voices.items() if isinstance(voices, Mapping) else ((lang, "") for lang in voices)
    return pb.SpeechOutputConfig(
        voices=[pb.VoiceSelection(language_code=lang, voice=voice) for lang, voice in pairs],
        encoding=_ENCODINGS[key],
        sample_rate_hertz=sample_rate_hertz,
        speaking_rate=speaking_rate,
    )


def decode_audio(audio: bytes, encoding: str, sample_rate_hertz: int) -> np.ndarray:
    """One utterance's audio (all its chunks joined) -> int16 samples at ``sample_rate_hertz``."""
    if not audio:
        return np.zeros(0, dtype=np.int16)
    if encoding == "OGG_OPUS":
        samples, _ = soundfile.read(io.BytesIO(audio), dtype="int16")
        return np.asarray(samples, dtype=np.int16)
    samples, _ = soundfile.read(
        io.BytesIO(audio), format="RAW", subtype=_RAW[encoding], samplerate=sample_rate_hertz, channels=1, dtype="int16"
    )
    return np.asarray(samples, dtype=np.int16)


class SpeechWriter:
    """Writes the speech of a session (or a TranslateText call) to one WAV file per language.

    ``path`` is used as it is when only one language is spoken; with several,
    each language's file is ``path`` with ``-<lang>`` before the suffix
    (``out.wav`` -> ``out-es.wav``, ``out-ko.wav``). :attr:`paths` says which.
    """

    def __init__(self, path: str | Path, languages: Sequence[str] = ()) -> None:
        self._path = Path(path)
        self._several = len(languages) > 1
        self._pending: dict[tuple[int, str], list[TranslationAudio]] = {}
        self._files: dict[str, soundfile.SoundFile] = {}
        #: Language -> file written.
        self.paths: dict[str, Path] = {}
        #: Language -> seconds of speech written.
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> SpeechWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def handle(self, event: Event | TranslationEvent) -> None:
        """Take one event; only audio and resets matter."""
        if isinstance(event, TranslationReset):
            self._pending.pop((event.utterance_id, event.target_language_code), None)
        elif isinstance(event, TranslationAudio):
            key = (event.utterance_id, event.target_language_code)
            chunks = self._pending.setdefault(key, [])
            chunks.append(event)
            if event.last_chunk:
                del self._pending[key]
                self._append(event.target_language_code, chunks)

    def _append(self, language: str, chunks: list[TranslationAudio]) -> None:
        first = chunks[0]
        samples = decode_audio(b"".join(c.audio for c in chunks), first.encoding, first.sample_rate_hertz)
        out = self._files.get(language)
        if out is None:
            path = self._path
            if self._several:
                path = path.with_name(f"{path.stem}-{language}{path.suffix or '.wav'}")
            out = self._files[language] = soundfile.SoundFile(
                path, mode="w", samplerate=first.sample_rate_hertz, channels=1, subtype="PCM_16", format="WAV"
            )
            self.paths[language] = path
        out.write(samples)
        self.seconds[language] = self.seconds.get(language, 0.0) + len(samples) / first.sample_rate_hertz

    def close(self) -> None:
        """Close the files (an utterance whose last chunk never came is left out)."""
        for f in self._files.values():
            f.close()
        self._files.clear()


class NoAudioDevice(RuntimeError):
    """There is no way to play audio here; the message says why and what to do instead."""


#: How long after its speech ends a player still counts as speaking (the room's echo dies away).
SPEAKING_TAIL_S = 0.3


def echo_cancelling_devices() -> tuple[str, str] | None:
    """(input, output) device names of the system's echo canceller, if it has one PortAudio sees.

    PulseAudio's and PipeWire's ``module-echo-cancel`` (WebRTC's canceller)
    add a source and a sink named ``echo-cancel``/``echocancel``: playing to
    that sink and recording from that source removes the speech from the
    microphone before it leaves the machine (``pactl load-module
    module-echo-cancel`` turns it on). None where there is no such device
    (or no PortAudio).
    """
    try:
        import sounddevice
    except (ImportError, OSError):
        return None
    try:
        devices = list(sounddevice.query_devices())
    except Exception:  # PortAudioError: no host API at all
        return None

    def named(kind: str) -> str | None:
        for d in devices:
            name = str(d.get("name", ""))
            plain = name.lower().replace("-", "").replace("_", "").replace(" ", "")
            if "echocancel" in plain and int(d.get(f"max_{kind}_channels", 0)) > 0:
                return name
        return None

    source, sink = named("input"), named("output")
    return (source, sink) if source and sink else None


class SpeechPlayer:
    """Plays one language's spoken translation on an output device, chunk by chunk as it arrives.

    Audio is written to the device from a thread of its own, so reading the
    stream never waits for the speaker. A reset cannot take back what was
    played; the chunks of the reset translation still queued are dropped.
    ``speaking`` says whether it is playing (or about to, or its echo is
    dying away): a microphone held while it speaks (``Microphone(hold=...)``,
    ``--half-duplex``) never sends the speech back to the server.

    Raises:
        NoAudioDevice: sounddevice or PortAudio is missing, or there is no output device.

    """

    def __init__(self, language: str, sample_rate_hertz: int, device: str | int | None = None) -> None:
        try:
            import sounddevice
        except (ImportError, OSError) as e:  # OSError: the PortAudio library is missing
            raise NoAudioDevice(
                f"cannot play audio here ({e}); install the tongyeok[speak] extra and PortAudio "
                "(Debian: libportaudio2), or write the speech to a file with --speak-to FILE"
            ) from None
        try:
            sounddevice.query_devices(kind="output")
            self._stream: Any = sounddevice.RawOutputStream(
                samplerate=sample_rate_hertz, channels=1, dtype="int16", device=device
            )
        except Exception as e:  # PortAudioError, ValueError: no device
            raise NoAudioDevice(
                f"no audio output device ({e}); write the speech to a file with --speak-to FILE"
            ) from None
        self.language = language
        self._rate = sample_rate_hertz
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._dropped: set[int] = set()
        self._lock = threading.Lock()
        self._queued = 0  # chunks queued, not yet written to the device
        self._until = 0.0  # when what was written will have played (monotonic)
        self._thread = threading.Thread(target=self._play, name="tongyeok-player", daemon=True)
        self._stream.start()
        self._thread.start()

    @property
    def speaking(self) -> bool:
        """Whether speech is queued, playing, or ended less than ``SPEAKING_TAIL_S`` ago."""
        with self._lock:
            return self._queued > 0 or time.monotonic() < self._until + SPEAKING_TAIL_S

    def handle(self, event: Event | TranslationEvent) -> None:
        """Queue the audio of this player's language (LINEAR16 only); drop what a reset voids."""
        if isinstance(event, TranslationReset) and event.target_language_code == self.language:
            self._dropped.add(event.utterance_id)
        elif isinstance(event, TranslationAudio) and event.target_language_code == self.language:
            if event.sequence_number == 0:
                self._dropped.discard(event.utterance_id)
            with self._lock:
                self._queued += 1
            self._queue.put((event.utterance_id, event.audio))

    def _play(self) -> None:
        latency = float(getattr(self._stream, "latency", 0.0) or 0.0)  # the device's own buffer
        while True:
            item = self._queue.get()
            if item is None:
                return
            uid, audio = item
            if uid not in self._dropped:
                with self._lock:
                    start = max(time.monotonic(), self._until)
                    self._until = start + len(audio) / 2 / self._rate + latency
                self._stream.write(audio)
            with self._lock:
                self._queued -= 1

    def close(self) -> None:
        """Play what is queued, then release the device."""
        self._queue.put(None)
        self._thread.join()
        self._stream.stop()
        self._stream.close()
