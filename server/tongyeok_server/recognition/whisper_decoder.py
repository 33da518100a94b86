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
# Whisper's decoder has 448 positions, the prompt's included.
MAX_TOKENS = 448
# Of the words said before the audio decoded, the decoder is given the last this many tokens (Whisper: up to 223).
MAX_PREVIOUS_TOKENS = 120
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0


@dataclass(frozen=True)
class Word:
    """Where one word of a pass's text was heard, in seconds into the audio decoded."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Decoded:
    """What one pass heard."""

    text: str
    language: str  # Whisper's code, e.g. "ko"
    confidence: float  # exp(mean token log-probability), 0..1
    words: tuple[Word, ...] = ()  # the text's words with their times, when asked for and they could be aligned


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
        self._sot_prev = tokenizer.token_to_id("<|startofprev|>")
        self._transcribe = tokenizer.token_to_id("<|transcribe|>")
        self._timestamp_begin = tokenizer.token_to_id("<|0.00|>")
        self._no_timestamps = tokenizer.token_to_id("<|notimestamps|>")
        self._eot = tokenizer.token_to_id("<|endoftext|>")

    def decode(
        self,
        audio: npt.NDArray[np.float32],
        languages: tuple[str, ...],
        *,
        beam_size: int,
        prefix: str = "",
        before: str = "",
        timings: bool = False,
        timestamps: bool = True,
    ) -> Decoded:
        """Transcribe ``audio`` (16 kHz float) in the likelier of ``languages`` (Whisper codes).

        ``prefix``: words already committed for this audio (an utterance's stable
        prefix); the decoder is forced to start with them and the text does. With a
        prefix, ``languages`` should be the one language the prefix was heard in.
        ``before``: words said just before ``audio`` (the previous final, the part of
        the utterance already decoded), given to the decoder as the previous text; not
        in the result.
        ``timings``: also align the text's words to the audio (``Decoded.words``).
        ``timestamps``: decode in Whisper's timestamp mode, which lets a pass over audio
        cut mid-word drop text placed after its end (interims). A whole utterance
        (finals) is one segment and is decoded as text only (``<|notimestamps|>``):
        measured on the bench's set, that heard fewer words wrong (see ``_pass``).
        """
        duration = len(audio) / SAMPLE_RATE_HZ
        context = min(FULL_CONTEXT_S, max(MIN_CONTEXT_S, duration + TRAILING_SILENCE_S))
        decoded = self._pass(audio, languages, beam_size, context, prefix, before, timings, timestamps)
        if not timestamps and _loops(decoded.text):
            # Text only, the decoder may go on into the silence after the speech and say it again;
            # timestamp mode cuts what it places there (a tenth of the full window's cost).
            timestamps = True
            decoded = self._pass(audio, languages, beam_size, context, prefix, before, timings, timestamps)
        if context < FULL_CONTEXT_S and _loops(decoded.text):
            decoded = self._pass(audio, languages, beam_size, FULL_CONTEXT_S, prefix, before, timings, timestamps)
        if repeated_run(decoded.text) is not None:
            decoded = replace(decoded, text=_without_repeats_after(prefix, decoded.text), words=())
        return decoded

    def _pass(
        self,
        audio: npt.NDArray[np.float32],
        languages: tuple[str, ...],
        beam: int,
        context_s: float,
        prefix: str,
        before: str,
        timings: bool,
        timestamps: bool,
    ) -> Decoded:
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
        sot_sequence = [self._sot, self._tokenizer.token_to_id(f"<|{language}|>"), self._transcribe]
        if not self.multilingual:
            sot_sequence = [self._sot]
        previous = self._tokens(before)[-MAX_PREVIOUS_TOKENS:]
        forced = self._tokens(prefix)
        prompt = [*([self._sot_prev, *previous] if previous else []), *sot_sequence]
        if not timestamps:
            # Text only: on the bench's 16 kHz set, finals in this mode got 8 words of 325 wrong where
            # timestamp mode got 9, and 6 where it got 7 with the previous final as context.
            prompt = [*prompt, self._no_timestamps, *forced]
        elif forced:
            # Timestamp mode starts with a timestamp; the committed words follow it.
            prompt = [*prompt, self._timestamp_begin, *forced]
        result = self._ct2.generate(
            encoded,
            [prompt],
            beam_size=beam,
            max_length=min(MAX_TOKENS, len(prompt) + int(24 + 8 * duration)),
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
        if not forced and result.no_speech_prob > NO_SPEECH_PROB and logprob < LOW_LOGPROB:
            text = ""
        if forced and not _starts_with(text, prefix):
            # A safety net for the contract (the words were forced, so only a tokenizer round trip
            # that changed them could get here): committed words are never taken back.
            text = " ".join([*prefix.split(), *text.split()[len(prefix.split()) :]])
        words = self._align(encoded, language, text_tokens, duration, text) if timings and text else ()
        return Decoded(text, language, math.exp(min(0.0, logprob)), words)

    def _tokens(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids) if text.strip() else []

    def _align(
        self, encoded: Any, language: str, text_tokens: list[int], duration: float, text: str
    ) -> tuple[Word, ...]:
        """The words of ``text`` with their times (cross-attention alignment, as faster-whisper's word timestamps).

        Empty when the aligner's words are not the text's space-separated words
        (languages written without spaces), so callers can rely on one per word.
        """
        from faster_whisper.tokenizer import Tokenizer

        tokenizer = Tokenizer(self._tokenizer, self.multilingual, "transcribe", language if self.multilingual else None)
        frames = int(duration * 100)
        (aligned,) = self._model.find_alignment(tokenizer, [text_tokens], encoded, frames)
        words: list[Word] = []
        for w in aligned:
            piece = w["word"].strip()
            if words and not any(c.isalnum() for c in piece):
                words[-1] = replace(words[-1], text=words[-1].text + piece)  # "today" "." -> "today."
            elif piece:
                words.append(Word(piece, float(w["start"]), float(w["end"])))
        return tuple(words) if len(words) == len(text.split()) else ()

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


def _starts_with(text: str, prefix: str) -> bool:
    words = _words(prefix)
    return _words(text)[: len(words)] == words


def _without_repeats_after(prefix: str, text: str) -> str:
    """``without_repeats(text)``, but the committed ``prefix`` stays as it is (only the rest is cut)."""
    cut = without_repeats(text)
    if _starts_with(cut, prefix):
        return cut
    tail = text.split()[len(prefix.split()) :]
    return " ".join([*prefix.split(), *without_repeats(" ".join(tail)).split()])


def without_repeats(text: str) -> str:
    """``text`` with each run of words said twice in a row said once."""
    tokens = text.split()
    while (run := repeated_run(" ".join(tokens))) is not None:
        start, length = run
        del tokens[start + length : start + 2 * length]
    return " ".join(tokens)
