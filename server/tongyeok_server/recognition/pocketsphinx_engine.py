"""The embedded US-English recogniser: pocketsphinx in a pool of worker processes.

The pool (``worker_pool``) pins each stream to one worker process; a worker
serves at most ``offline_streams_per_worker`` streams, chosen so that it
keeps up with real time (pocketsphinx needs about 0.1-0.25 of a core per
stream); beyond the pool's slots a new stream is refused with
RESOURCE_EXHAUSTED. The decoding itself is in ``pocketsphinx_worker``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import StartError
from tongyeok_server.recognition import pocketsphinx_worker
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionListener,
    Recognizer,
    RecognizerStream,
)
from tongyeok_server.recognition.worker_pool import WorkerPool
from tongyeok_server.settings import GoogleSettings, RecognitionSettings


class PocketsphinxRecognizer(Recognizer):
    """US-English recognition with the model that ships in the pocketsphinx wheel."""

    def __init__(self, workers: int, streams_per_worker: int, second_pass: str = "narrowband") -> None:
        if second_pass not in pocketsphinx_worker.SECOND_PASS_MODES:
            raise StartError(
                f"--pocketsphinx-second-pass {second_pass!r}: choose one of "
                f"{', '.join(pocketsphinx_worker.SECOND_PASS_MODES)}"
            )
        self._pool = WorkerPool(
            "pocketsphinx",
            pocketsphinx_worker.run,
            (second_pass,),
            workers,
            streams_per_worker,
            "more --offline-workers or --offline-streams-per-worker",
        )

    @property
    def description(self) -> EngineDescription:
        return EngineDescription("pocketsphinx", "CMU US-English model, offline")

    @property
    def capacity(self) -> int:
        """How many streams the pool serves at once."""
        return self._pool.capacity

    def language_codes(self) -> Sequence[str]:
        return [pocketsphinx_worker.LANGUAGE_CODE]

    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        return self._pool.open(listener, config.audio, config.interim_results, config.voice_activity_events)

    def close(self) -> None:
        self._pool.close()


def create(settings: RecognitionSettings, google: GoogleSettings) -> Recognizer:
    """Factory used by the registry."""
    return PocketsphinxRecognizer(
        settings.offline_workers, settings.offline_streams_per_worker, settings.pocketsphinx_second_pass
    )
