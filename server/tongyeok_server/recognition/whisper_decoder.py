"""One Whisper decoding pass over one utterance (runs inside a worker process).

faster-whisper's ``transcribe()`` pads every input to Whisper's 30-second
window, so a two-second utterance costs the encoder as much as thirty
seconds of audio (about 1.3 s of a core for Whisper base here). The
encoder takes shorter inputs, and this module gives it the utterance plus
at least a second of silence, at least ``MIN_CONTEXT_S`` in all: measured
on the bench's speech, that is 5-10 times cheaper and as accurate as the
full window, while shorter contexts made the decoder loop (repeat the
sentence) on a third of the utterances. Two guards keep what remains of
that risk out of finals: text whose timestamps lie beyond the audio is cut,
and a pass whose text compresses like a loop (Whisper's own compression-
ratio test) is decoded again with the full window.

The model is used through faster-whisper's pieces (feature extractor,
tokenizer, the CTranslate2 model), not through ``transcribe()``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 16000
MIN_CONTEXT_S = 5.0
FULL_CONTEXT_S = 30.0
TRAILING_SILENCE_S = 1.0
# Whisper's own thresholds (openai/whisper transcribe.py): text this repetitive is a loop;
# a pass this sure there is no speech, and this unsure of its words, heard none.
COMPRESSION_RATIO_LIMIT = 2.4
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0


@dataclass(frozen=True)
class Decoded:
    """What one pass heard."""

    text: str
    language: str  # Whisper's code, e.g. "ko"
    confidence: float  # exp(mean token log-probability), 0..1


class WhisperDecoder:
    """Decodes utterances with one loaded ``faster_whisper.WhisperModel``."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._ct2 = model.model
        tokenizer = model.hf_tokenizer
        self._tokenizer = tokenizer
        self.multilingual = bool(self._ct2.is_multilingual)
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        self.languages: tuple[str, ...] = tuple(_LANGUAGE_CODES) if self.multilingual else ("en",)
        self._sot = tokenizer.token_to_id("<|startoftranscript|>")
        self._transcribe = tokenizer.token_to_id("<|transcribe|>")
        self._timestamp_begin = tokenizer.token_to_id("<|0.00|>")
        self._eot = tokenizer.token_to_id("<|endoftext|>")

    def decode(self, audio: npt.NDArray[np.float32], languages: tuple[str, ...], *, beam_size: int) -> Decoded:
        """Transcribe ``audio`` (16 kHz float) in the likelier of ``languages`` (Whisper codes)."""
        duration = len(audio) / SAMPLE_RATE_HZ
        context = min(FULL_CONTEXT_S, max(MIN_CONTEXT_S, duration + TRAILING_SILENCE_S))
        decoded = self._pass(audio, languages, beam_size, context)
        if context < FULL_CONTEXT_S and _loops(decoded.text):
            decoded = self._pass(audio, languages, beam_size, FULL_CONTEXT_S)
        if repeated_run(decoded.text) is not None:
            decoded = replace(decoded, text=without_repeats(decoded.text))
        return decoded

    def _pass(self, audio: npt.NDArray[np.float32], languages: tuple[str, ...], beam: int, context_s: float) -> Decoded:
        import ctranslate2

        duration = len(audio) / SAMPLE_RATE_HZ
        audio = audio[: int(FULL_CONTEXT_S * SAMPLE_RATE_HZ)]
        padded = np.zeros(int(context_s * SAMPLE_RATE_HZ), dtype=np.float32)
        padded[: len(audio)] = audio
        features = self._model.feature_extractor(padded)
        frames = min(features.shape[-1] // 2 * 2, int(FULL_CONTEXT_S * 100))
        encoded = self._ct2.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames])),
            to_cpu=False,
        )
        language = self._language(encoded, languages)
        prompt = [self._sot, self._tokenizer.token_to_id(f"<|{language}|>"), self._transcribe]
        if not self.multilingual:
            prompt = [self._sot]
        result = self._ct2.generate(
            encoded,
            [prompt],
            beam_size=beam,
            max_length=int(24 + 8 * duration),
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        text_tokens: list[int] = []
        for token in result.sequences_ids[0]:
            if token >= self._timestamp_begin:
                if (token - self._timestamp_begin) * 0.02 > duration + 0.3:
                    break  # text placed after the end of the audio is made up
            elif token < self._eot:
                text_tokens.append(token)
        text = self._tokenizer.decode(text_tokens).strip()
        logprob = float(result.scores[0]) if result.scores else 0.0
        if result.no_speech_prob > NO_SPEECH_PROB and logprob < LOW_LOGPROB:
            text = ""
        return Decoded(text, language, math.exp(min(0.0, logprob)))

    def _language(self, encoded: Any, languages: tuple[str, ...]) -> str:
        """The likelier of the stream's languages (Whisper's language identification, restricted to them)."""
        if len(languages) == 1 or not self.multilingual:
            return languages[0]
        probabilities = dict(self._ct2.detect_language(encoded)[0])
        return max(languages, key=lambda code: probabilities.get(f"<|{code}|>", 0.0))


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


# A run of at least this many words said twice in a row is the decoder looping (a sentence said
# twice, seen on the bench and in the tests), not speech: people repeat a word or two, not a clause.
MIN_REPEATED_WORDS = 3


def _loops(text: str) -> bool:
    return _compression_ratio(text) > COMPRESSION_RATIO_LIMIT or repeated_run(text) is not None


def _words(text: str) -> list[str]:
    return [w.strip(".,!?;:\"'").lower() for w in text.split()]


def repeated_run(text: str) -> tuple[int, int] | None:
    """The first run of words said twice in a row, as (start, length) in words; None if there is none."""
    words = _words(text)
    for start in range(len(words)):
        for length in range((len(words) - start) // 2, MIN_REPEATED_WORDS - 1, -1):
            if words[start : start + length] == words[start + length : start + 2 * length]:
                return start, length
    return None


def without_repeats(text: str) -> str:
    """``text`` with each run of words said twice in a row said once."""
    tokens = text.split()
    while (run := repeated_run(" ".join(tokens))) is not None:
        start, length = run
        del tokens[start + length : start + 2 * length]
    return " ".join(tokens)
