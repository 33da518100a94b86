"""The echo bench's simultaneous-mode measures on a hand-made room (the bench itself needs engines and minutes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bench.echo import _totals, echo_targets, judge, render_echo
from bench.echo_simultaneous import simultaneous_figures
from tests.support.room import RoomRun
from tongyeok_client.proto import interpreter_pb2 as pb

SENTENCES = ["we would like to talk", "the date is friday"]


def _final(uid: int, text: str, start: float, end: float, language: str = "en-US", echo: bool = False) -> Any:
    final = pb.FinalTranscript(utterance_id=uid, text=text, language_code=language, echo=echo)
    final.audio_start_offset.FromTimedelta(timedelta(seconds=start))
    final.audio_end_offset.FromTimedelta(timedelta(seconds=end))
    return final


def _room() -> RoomRun:
    """Two people (0.5-2.5 s, 6.0-8.0 s: the second over the end of the first one's speech, 5.0-6.5 s)."""
    run = RoomRun(turn_spans_s=[(0.5, 2.5), (6.0, 8.0)], echo_spans_s=[(5.0, 6.5)])
    tok = pb.TranslationToken
    events: list[tuple[str, Any, float]] = [
        ("translation_token", tok(utterance_id=1, text="Nos"), 1.7),  # 1.2 s after they started, while speaking
        ("translation_token", tok(utterance_id=1, text=" gustaría"), 2.2),
        ("final_transcript", _final(1, "we would like to talk", 0.5, 2.5), 2.9),
        ("translation_complete", pb.TranslationComplete(utterance_id=1, text="Nos gustaría hablar"), 3.0),
        # The speech came back and leaked past the canceller: one word of its translation shown, one committed.
        ("translation_tentative", pb.TranslationTentative(utterance_id=2, text="We would"), 5.6),
        ("translation_token", tok(utterance_id=2, text="We"), 5.8),
        ("final_transcript", _final(2, "nos gustaría", 5.0, 5.9, "es-ES"), 6.0),
        ("final_transcript", _final(3, "the date is friday", 6.0, 8.0), 8.5),
        ("translation_token", tok(utterance_id=3, text="La"), 8.6),  # only after their final
        ("translation_complete", pb.TranslationComplete(utterance_id=3, text="La fecha es el viernes"), 9.0),
    ]
    for kind, message, at in events:
        run.events.append((kind, message))
        run.times_s.append(at)
    return run


def test_first_committed_word_while_speaking_and_the_echo_committed_or_shown() -> None:
    figures = simultaneous_figures(_room())
    assert figures["first_word_s"] == [1.2, 2.6]
    assert figures["over_first_word_s"] == [2.6], "the second person started while the speech came back"
    assert (figures["while_speaking"], figures["early"]) == (1, 1)
    assert (figures["echo_committed"], figures["echo_shown"]) == (1, 1), "a Spanish final is no person's"


def test_the_simultaneous_targets_stand_beside_the_floor() -> None:
    quiet = RoomRun(turn_spans_s=[(0.5, 2.5), (6.0, 8.0)])
    for kind, message, at in (
        ("final_transcript", _final(1, "we would like to talk", 0.5, 2.5), 2.9),
        ("translation_token", pb.TranslationToken(utterance_id=1, text="Nos"), 1.5),
        ("translation_complete", pb.TranslationComplete(utterance_id=1, text="Nos gustaría hablar"), 3.0),
        ("final_transcript", _final(3, "the date is friday", 6.0, 8.0), 8.5),
        ("translation_token", pb.TranslationToken(utterance_id=3, text="La"), 7.5),
        ("translation_complete", pb.TranslationComplete(utterance_id=3, text="La fecha"), 9.0),
    ):
        quiet.events.append((kind, message))
        quiet.times_s.append(at)

    def room(run: RoomRun) -> dict[str, Any]:
        modes = {"one-way": judge(run, SENTENCES) | simultaneous_figures(run)}
        return {"modes": modes, "server_cpu_ms_per_audio_s": 10.0, "wall_s": 1.0}

    consecutive = room(quiet)
    result: dict[str, Any] = {
        "sentences": 2,
        "runs": {
            "floor": consecutive,
            "quiet": consecutive,
            "off": consecutive,
            "on": consecutive,
            "simultaneous-floor": room(quiet),
            "simultaneous-on": room(_room()),
        },
    }
    assert _totals(result["runs"]["simultaneous-on"])["translated"] == 0
    by_name = {t["target"]: t for t in echo_targets(result)}
    caught = next(t for name, t in by_name.items() if name.startswith("echo, simultaneous (16 kHz): the speech heard"))
    assert caught["met"] is False and "2 committed or shown" in caught["measured"]
    first = next(t for name, t in by_name.items() if name.startswith("echo, simultaneous (16 kHz): a person still"))
    assert first["met"] is True and "1.20 s, 1/2 while speaking (no echo: 1.00 s, 2/2)" in first["measured"]
    assert "| echo, suppression on | 0% of 1 | 0 / 1 / 1 | 2/2 |" in render_echo(result)
