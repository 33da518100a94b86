"""The recogniser comparison's own arithmetic: flicker and the report (no servers)."""

from __future__ import annotations

from rich.console import Console

from bench.offline_asr import Result, flicker
from bench.report import render, targets


def test_flicker_counts_shown_words_that_change_later() -> None:
    result = Result(
        finals=[(1, "We would like to discuss the contract.", 3.0, 3.5)],
        interims=[(1, "We would", 1.0), (1, "We would like to do", 1.5), (1, "We would like to discuss", 2.0)],
    )
    # Positions 0-4 shown; position 4 showed "do", then "discuss": one of five changed.
    assert flicker(result) == (5, 1)


def test_a_word_taken_back_counts_as_changed() -> None:
    result = Result(finals=[(1, "Thank you.", 1.0, 1.2)], interims=[(1, "thank you for", 0.8)])
    assert flicker(result) == (3, 1)


def test_stable_interims_do_not_flicker() -> None:
    result = Result(
        finals=[(1, "Good morning everyone.", 1.0, 1.2)], interims=[(1, "Good", 0.5), (1, "Good morning", 0.8)]
    )
    assert flicker(result) == (2, 0)


def test_report_shows_both_engines_and_their_targets() -> None:
    figures = {
        "wer": {"16k": 0.031, "8k": 0.04},
        "latency": {
            "final_s": {"p50": 600.0, "p95": 900.0, "max": 950.0},
            "first_interim_s": {"p50": 700.0, "p95": 1100.0, "max": 1200.0},
            "sentences_without_interim": 1,
            "sentences": 20,
        },
        "flicker": {"rate": 0.02, "changed": 1, "words_shown": 50},
        "cpu_cores_per_stream": 0.2,
        "capacity": {"1": {"streams": 3}, "2": {"streams": 6}},
        "capacity_ratio": 2.0,
    }
    results = {
        "asr": {
            "options": {"voices": ["hts"], "workers": [1, 2]},
            "sentences": ["a"],
            "whisper": figures,
            "pocketsphinx": figures,
        }
    }
    rows = {t["target"]: t["met"] for t in targets(results)}
    assert rows["whisper: WER through the service, 16 kHz"] is False
    assert rows["whisper: WER through the service, 8 kHz G.711"] is True
    assert rows["pocketsphinx: sentence end -> final (p95)"] is True
    assert rows["whisper: speech start -> first interim (p95)"] is False
    console = Console(record=True, width=200)
    render(results, console)
    text = console.export_text()
    assert "Embedded recognisers side by side" in text and "pocketsphinx" in text and "3.1%" in text
