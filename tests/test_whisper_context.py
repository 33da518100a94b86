"""What the Whisper worker gives a final's pass: the stream's previous final as context, text only.

The decoder is a recording stand-in (the real model's accuracy is the
bench's to measure); the audio is real synthesised speech, cut by the real
VAD, so the passes come in the order a stream makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tests.support.speech import Speech
from tongyeok_server.audio.format import AudioSpec, Encoding
from tongyeok_server.recognition import whisper_worker
from tongyeok_server.recognition.base import Transcript
from tongyeok_server.recognition.whisper_decoder import Decoded, Word
from tongyeok_server.recognition.whisper_worker import CUT_MARGIN_S, WhisperWorker

PCM_16K = AudioSpec(Encoding.LINEAR16, 16000, 1)


@dataclass
class Pass:
    before: str
    prefix: str
    languages: tuple[str, ...]
    timestamps: bool
    finals_before: list[str]  # the finals the stream had emitted when the pass ran


@dataclass
class RecordingDecoder:
    """Hears "utterance N words" (N counts the passes), in ``language``; ``echo``: reads a given context back."""

    language: str = "en"
    echo: bool = False
    passes: list[Pass] = field(default_factory=list)
    finals: list[Transcript] = field(default_factory=list)

    def decode(self, audio: np.ndarray[Any, Any], languages: tuple[str, ...], **options: Any) -> Decoded:
        before, prefix = options["before"], options["prefix"]
        self.passes.append(Pass(before, prefix, languages, options["timestamps"], [f.text for f in self.finals]))
        if self.echo and before:
            return Decoded(f"{prefix} {before}".strip(), self.language, 0.9)
        return Decoded(f"{prefix} pass {len(self.passes)} heard these words".strip(), self.language, 0.9)


def run(
    decoder: RecordingDecoder | TimedDecoder, speech: Speech, languages: tuple[tuple[str, str], ...], interim: bool
) -> None:
    def send(message: tuple[int, Any]) -> None:
        if isinstance(message[1], Transcript) and message[1].is_final:
            decoder.finals.append(message[1])

    worker = WhisperWorker(send, decoder)  # type: ignore[arg-type]
    worker.open(1, PCM_16K, languages, interim, False)
    pcm = speech.pcm()
    for offset in range(0, len(pcm), 3200):
        worker.audio(1, pcm[offset : offset + 3200])
        while worker.idle():
            pass
    worker.finish(1)


def test_a_finals_pass_is_given_the_previous_final_and_is_text_only(speech: Speech) -> None:
    decoder = RecordingDecoder()
    run(decoder, speech, (("en-US", "en"),), interim=True)
    assert len(decoder.finals) == len(speech.sentences)
    # Interims keep timestamps (a pass over audio cut mid-word drops text placed after its end).
    interims = [p for p in decoder.passes if p.timestamps]
    finals = [p for p in decoder.passes if not p.timestamps]
    assert len(finals) >= len(speech.sentences) and interims
    for p in finals:
        assert p.before == (p.finals_before[-1] if p.finals_before else "")
    assert any(p.before for p in finals)
    # Interims are not (their greedy agreement on a word misheard with the context would bind the final).
    assert all(p.before == "" for p in interims)


def test_a_final_in_another_language_is_not_the_context_of_a_pass_that_may_hear_both(speech: Speech) -> None:
    decoder = RecordingDecoder(language="es")
    run(decoder, speech, (("en-US", "en"), ("es-ES", "es")), interim=False)
    assert len(decoder.finals) == len(speech.sentences)
    assert all(p.languages == ("en", "es") and p.before == "" for p in decoder.passes)


def test_a_pass_reading_its_context_back_is_decoded_again_without_it(speech: Speech) -> None:
    decoder = RecordingDecoder(echo=True)
    run(decoder, speech, (("en-US", "en"),), interim=False)
    texts = [f.text for f in decoder.finals]
    assert len(texts) == len(speech.sentences)
    assert len(set(texts)) == len(texts)  # no final is the one before it again
    retried = [p for p in decoder.passes if p.finals_before and p.before == ""]
    assert retried and all(p.finals_before for p in retried)


@dataclass
class TimedDecoder:
    """Hears the words "uKwI" (utterance K, word I), one every ``WORD_S`` of audio, and aligns them when asked.

    A window starts at its first forced word (the worker cuts just before a committed word), so
    the window's words continue from there; two interim passes agree on all but the growing end.
    """

    passes: list[tuple[int, str, str, bool]] = field(default_factory=list)  # (beam, before, prefix, timestamps)
    finals: list[Transcript] = field(default_factory=list)

    WORD_S = 0.3

    def decode(self, audio: np.ndarray[Any, Any], languages: tuple[str, ...], **options: Any) -> Decoded:
        beam, before, prefix = options["beam_size"], options["before"], options["prefix"]
        self.passes.append((beam, before, prefix, options["timestamps"]))
        first = int(prefix.split()[0].split("w")[1]) if prefix else 0
        count = max(len(prefix.split()), int(len(audio) / 16000 / self.WORD_S))
        words = [f"u{len(self.finals)}w{first + i}" for i in range(count)]
        timed = tuple(
            Word(w, CUT_MARGIN_S + i * self.WORD_S, CUT_MARGIN_S + (i + 1) * self.WORD_S) for i, w in enumerate(words)
        )
        return Decoded(" ".join(words), "en", 0.9, timed if options["timings"] else ())


def test_a_finals_pass_over_a_window_has_the_words_before_the_cut_as_context_with_timestamps(
    speech: Speech, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows from 1 s on, so that the test's short sentences are long ones to the worker.
    monkeypatch.setattr(whisper_worker, "WINDOW_S", 1.0)
    decoder = TimedDecoder()
    run(decoder, speech, (("en-US", "en"),), interim=True)
    assert len(decoder.finals) == len(speech.sentences)
    finals = [(before, prefix, timestamps) for beam, before, prefix, timestamps in decoder.passes if beam > 1]
    windowed = [f for f in finals if f[1] and not f[1].split()[0].endswith("w0")]  # forced words from a cut on
    assert windowed, finals
    for before, prefix, timestamps in windowed:
        # The utterance's own words up to the window, not the previous final as well; and not text only
        # (with both, the decoder said the window's sentence again after it, and beams ran on into the silence).
        utterance, first = prefix.split()[0].split("w")
        assert before == " ".join(f"{utterance}w{i}" for i in range(int(first))), (before, prefix)
        assert timestamps
    whole = [f for f in finals if f not in windowed]
    assert all(not timestamps for _, _, timestamps in whole)
    assert any(before for before, _, _ in whole)  # the previous final, as before
