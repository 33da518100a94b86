"""The embedded multilingual recogniser: Whisper (faster-whisper, CTranslate2) in a pool of worker processes.

Each worker process loads the model once (Whisper base: about 430 MB, half
a second) and decodes its streams one pass at a time on ``whisper_threads``
cores; the pool (``worker_pool``, shared with pocketsphinx) pins streams to
workers and refuses a stream with RESOURCE_EXHAUSTED when every slot is
taken. Segmentation, interims and finals: ``whisper_worker``; the model and
its checksums: ``whisper_model``; a decoding pass: ``whisper_decoder``.

Languages: any the model knows, one per stream or two for a conversation
(Whisper's language identification then chooses between those two only,
for every utterance). Finals carry the caller's tag for the language heard
(``ko-KR`` if the caller said ``ko-KR``), so the session translates each
into the other language.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tongyeok_server import languages
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import StartError
from tongyeok_server.recognition import whisper_model, whisper_worker
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionListener,
    Recognizer,
    RecognizerStream,
)
from tongyeok_server.recognition.worker_pool import WorkerPool, WorkerStartError
from tongyeok_server.settings import GoogleSettings, RecognitionSettings

DEVICES = ("cpu", "cuda", "auto")
# BCP-47 primary tags Whisper spells differently.
_ALIASES = {"jv": "jw", "iw": "he"}


class WhisperRecognizer(Recognizer):
    """Whisper recognition in every language the model knows, offline."""

    def __init__(
        self, source: whisper_model.ModelSource, device: str, threads: int, workers: int, streams: int
    ) -> None:
        if device not in DEVICES:
            raise StartError(f"--whisper-device {device!r}: choose one of {', '.join(DEVICES)}")
        try:
            self._pool = WorkerPool(
                "whisper",
                whisper_worker.run,
                (source, device, threads),
                workers,
                streams,
                "more --offline-workers or --whisper-streams-per-worker",
            )
        except WorkerStartError as exc:
            raise StartError(f"cannot start the whisper recogniser: {exc}") from None
        self._source = source
        self._device = device
        self._languages: tuple[str, ...] = tuple(self._pool.info.get("languages", ("en",)))

    @property
    def description(self) -> EngineDescription:
        return EngineDescription("whisper", f"{self._source.name}, faster-whisper int8 on {self._device}, offline")

    @property
    def capacity(self) -> int:
        """How many streams the pool serves at once."""
        return self._pool.capacity

    @property
    def max_source_languages(self) -> int:
        return 2

    def language_codes(self) -> Sequence[str]:
        return self._languages

    def resolve_language(self, code: str) -> str | None:
        """Any tag whose language the model knows, kept as the caller wrote it (normalised)."""
        primary = languages.primary(code)
        return languages.normalize(code) if _ALIASES.get(primary, primary) in self._languages else None

    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        pairs = tuple(
            (tag, _ALIASES.get(languages.primary(tag), languages.primary(tag))) for tag in config.language_codes
        )
        return self._pool.open(listener, config.audio, pairs, config.interim_results, config.voice_activity_events)

    def close(self) -> None:
        self._pool.close()


def create(settings: RecognitionSettings, google: GoogleSettings) -> Recognizer:
    """Factory used by the registry: the packaged Whisper base unless ``--whisper-model DIR``."""
    if settings.whisper_model:
        source = whisper_model.directory_source(Path(settings.whisper_model), settings.whisper_model_sha256)
    else:
        source = whisper_model.packaged_source()
    return WhisperRecognizer(
        source,
        settings.whisper_device,
        settings.whisper_threads,
        settings.offline_workers,
        settings.whisper_streams_per_worker,
    )
