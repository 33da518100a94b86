"""The simultaneous bench's measures on hand-made streams (the bench itself needs engines and minutes)."""

from __future__ import annotations

import pytest

from bench.simul_metrics import (
    Translation,
    average_lagging,
    erasure,
    retracted_chars,
    stable_word_times,
    word_times,
)


def test_word_times_are_when_each_word_was_complete() -> None:
    tokens = [(1.0, "Nos"), (1.5, " gust"), (1.7, "aría"), (2.0, " hablar"), (3.0, ".")]
    # "hablar." ends with the full stop: the token that ended it came at 3.0.
    assert word_times(tokens) == [1.0, 1.7, 3.0]
    assert word_times([]) == []


def test_average_lagging_of_a_consecutive_translation_is_its_first_words_delay() -> None:
    # A 9 s sentence translated after it ended: every word comes after the speech, tau = 1.
    assert average_lagging([10.5, 10.6, 10.7], 9.0) == pytest.approx(10.5)


def test_average_lagging_of_a_simultaneous_translation() -> None:
    # Four words over an 8 s sentence (ideal 0, 2, 4, 6 s), each 2.5 s behind; then the rest after the end.
    delays = [2.5, 4.5, 6.5, 8.5, 9.0]
    rate = 8.0 / 5
    expected = sum(d - i * rate for i, d in enumerate(delays[:4])) / 4  # tau: the first word at or after 8 s
    assert average_lagging(delays, 8.0) == pytest.approx(expected)
    assert average_lagging([], 8.0) is None


def test_retracted_committed_text() -> None:
    assert retracted_chars("Nos gustaría", "Nos gustaría hablar.") == 0
    assert retracted_chars("Nos gustaría hablar", "Nos gustaría discutir.") == len("hablar") - 0
    assert retracted_chars(" Hola", "Hola") == 0


def test_erasure_counts_the_tentative_words_a_screen_took_back() -> None:
    t = Translation(1)
    t.tentatives.append((1.0, "Nos gusta"))  # shown: Nos gusta
    t.tokens.append((2.0, "Nos"))  # confirms "Nos"; "gusta" still shown
    t.tentatives.append((2.0, " gustaría hablar"))  # "gusta" taken back (1)
    t.tokens.append((3.0, " gustaría"))
    t.tentatives.append((3.0, " discutir"))  # "hablar" taken back (2)
    t.tokens.append((4.0, " discutir"))
    t.tokens.append((4.0, " hoy."))
    t.complete = "Nos gustaría discutir hoy."
    assert erasure(t) == (2, 4)
    clean = Translation(2, tokens=[(1.0, "Hola"), (2.0, " mundo")], complete="Hola mundo")
    assert erasure(clean) == (0, 2)


def test_stable_word_times_are_the_recognisers_floor() -> None:
    assert stable_word_times([(0.7, ""), (1.0, "we"), (1.4, "we would like"), (1.8, "we would like")]) == [
        1.0,
        1.4,
        1.4,
    ]
