"""The recogniser comparison's own arithmetic: flicker and the report (no servers)."""

from __future__ import annotations

from typing import Any

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


def summary(v: float) -> dict[str, float]:
    return {"p50": v, "p95": v * 1.2, "max": v * 1.3, "count": 10}


def _step(streams: int, first: float, final: float, shrank: int = 0) -> dict[str, Any]:
    return {
        "streams": streams,
        "sentences_kind": "short",
        "sentences": 10,
        "first_interim_s": summary(first),
        "final_s": summary(final),
        "floor_first_interim_s": summary(0.3),
        "floor_final_s": summary(0.6),
        "sentences_without_interim": 0,
        "wer": 0.01,
        "stable": {"interims": 30, "with_stable": 20, "not_prefix": 0, "shrank": shrank, "final_differs": 0},
        "words_per_interim": {"mean": 1.5, "max": 3, "shorter": 0},
        "refused_beyond_capacity": "RESOURCE_EXHAUSTED" if streams == 4 else None,
        "load_average": [1.0, 1.5],
    }


def test_live_report_puts_each_latency_beside_its_target_and_floor() -> None:
    live = {
        "startup_s": 4.0,
        "server_rss_mb": 1200.0,
        "steps": [_step(1, 0.6, 0.8), _step(2, 1.1, 0.9, shrank=1), _step(4, 1.0, 1.9)],
        "two_way": {"utterances": 20, "labelled_right": 19, "share": 0.95},
        "workers": 2,
        "one_core": [
            {
                "streams": 1,
                "sentences_kind": "short",
                "first_interim_s": {"p50": 0.3, "p95": 0.4},
                "final_s": {"p50": 0.7, "p95": 0.8},
            }
        ],
    }
    rows = {t["target"]: t["met"] for t in targets({"live": live})}
    assert rows["live, 1 stream(s), short sentences: speech start -> first interim"] is True
    assert rows["live, 2 stream(s), short sentences: speech start -> first interim"] is False
    assert (
        rows[
            "live, 2 stream(s), short sentences: stable_text kept (prefix of the text, never shorter, final starts with it)"
        ]
        is False
    )
    assert rows["live, 4 stream(s), short sentences: speech end -> final (p95)"] is False  # 1.9 * 1.2 > 2.0
    assert rows["live, 4 stream(s), short sentences: one more stream"] is True
    assert rows["live two-way en/es: finals labelled with the language spoken"] is True
    console = Console(record=True, width=250)
    render({"live": live}, console)
    text = console.export_text()
    assert "Live recognition" in text and "600 / 720" in text and "300 / 360" in text
    assert "300 / 400; 700 / 800" in text  # 1 and 2 streams on 2 workers: one stream per worker


def test_stable_checks_count_each_breach() -> None:
    from bench.live_asr import stable_checks

    result = Result(
        finals=[(1, "We would like to discuss it.", 3.0, 3.5)],
        interims=[(1, "We would", 1.0), (1, "We would like", 1.5), (1, "They would like to", 2.0)],
        stable_texts=["We", "We would", "We"],
    )
    checks = stable_checks(result)
    assert checks["with_stable"] == 3
    assert checks["not_prefix"] == 1  # "They would like to" does not start with "We"
    assert checks["shrank"] == 1  # "We would" -> "We"
    assert checks["final_differs"] == 0
