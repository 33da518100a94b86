"""The echo room in simultaneous mode: the people still interpreted while they speak, nothing of the echo committed.

In simultaneous mode the server speaks a translation while people still
speak, and commits words of a translation before the sentence's final; so
each interim is judged before anything of it is committed
(``EchoGuard.judge``), and commitment waits while that cannot be told yet.
What that costs is what this part measures, per room (``bench/echo.py``
runs them): each person's first committed word after they started
(microphone time: how much audio had been sent when it came) and how many
of their sentences had words committed before their final, beside the room
without echo and suppression off; the people who started over the end of
the speech apart (their speech is heard under its echo). And what must
never happen: a word of the echo's translation committed, or shown as
tentative text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import stats
from tests.support.room import RoomRun

#: Issue 19's target for the embedded path: the first committed word within 3 s of the sentence's start.
FIRST_WORD_TARGET_S = 3.0


def simultaneous_figures(run: RoomRun) -> dict[str, Any]:
    """When each person's sentence was first interpreted, and what of the echo went out.

    Times are the microphone's (how much audio had been sent when an event
    came). A person's utterance is a final not flagged as echo, in English,
    over one of their turns (``judge``'s rule); the tokens and tentative
    texts of every other utterance are the echo's.
    """
    people = {
        f.utterance_id: turn
        for f in run.people
        if (turn := run.turn_of(f)) is not None and f.language_code.startswith("en")
    }
    final_at: dict[int, float] = {}
    first_at: dict[int, float] = {}
    echo_committed = echo_shown = 0
    for (kind, message), at in zip(run.events, run.times_s, strict=True):
        uid = getattr(message, "utterance_id", None)
        if kind == "final_transcript":
            final_at.setdefault(message.utterance_id, at)
        elif kind == "translation_token" and uid in people:
            first_at.setdefault(uid, at)
        elif kind == "translation_token":
            echo_committed += 1
        elif kind == "translation_tentative" and message.text and uid not in people:
            echo_shown += 1
    first_word: list[float] = []
    over_first_word: list[float] = []
    early = speaking = 0
    for uid, turn in people.items():
        if uid not in first_at:
            continue
        start, end = run.turn_spans_s[turn]
        delay = first_at[uid] - start
        first_word.append(delay)
        # A person who started while the speech was still coming back spoke over its echo.
        if any(a <= start < b for a, b in run.echo_spans_s):
            over_first_word.append(delay)
        early += first_at[uid] < final_at.get(uid, float("inf"))
        speaking += first_at[uid] <= end
    return {
        "first_word_s": [round(v, 2) for v in first_word],
        "over_first_word_s": [round(v, 2) for v in over_first_word],
        "early": early,
        "while_speaking": speaking,
        "echo_committed": echo_committed,
        "echo_shown": echo_shown,
    }


def _pooled(run: dict[str, Any], key: str) -> list[float]:
    return [v for m in run["modes"].values() for v in m.get(key, [])]


def _p50(values: list[float]) -> str:
    p = stats.percentile(values, 50)
    return "-" if p is None else f"{p:.2f} s"


def simultaneous_rows(result: dict[str, Any], totals: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    """The simultaneous rooms' table (markdown lines), the floor beside them."""
    runs = result["runs"]
    if "simultaneous-on" not in runs:
        return []
    lines = [
        "Simultaneous mode (the speech played as it comes): first committed word after the person started, "
        "p50 [over the speech's end]",
        "| run | echo caught | echo translated / committed / shown | sentences kept | people's WER | "
        "interpreted while speaking / before their final | first committed word | server CPU ms per audio s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    labels = (
        ("simultaneous-floor", "no echo, suppression off (floor)"),
        ("simultaneous-off", "echo, suppression off"),
        ("simultaneous-on", "echo, suppression on"),
        ("simultaneous-uncancelled", "echo, suppression on, 22.05 kHz: no canceller"),
    )
    for name, label in labels:
        run = runs.get(name)
        if run is None:
            continue
        t = totals(run)
        modes = run["modes"].values()
        caught = "-" if t["caught"] is None else f"{t['caught']:.0%} of {t['returns']}"
        leaked = (
            f"{t['translated']} / {sum(m['echo_committed'] for m in modes)} / {sum(m['echo_shown'] for m in modes)}"
        )
        lines.append(
            f"| {label} | {caught} | {leaked} | {t['kept']}/{t['sentences']} | {100 * t['wer']:.1f} % | "
            f"{sum(m['while_speaking'] for m in modes)} / {sum(m['early'] for m in modes)} of {t['sentences']} | "
            f"{_p50(_pooled(run, 'first_word_s'))} [{_p50(_pooled(run, 'over_first_word_s'))}] | "
            f"{run['server_cpu_ms_per_audio_s']} |"
        )
    for name in ("simultaneous-off", "simultaneous-on", "simultaneous-uncancelled"):
        for mode, m in runs.get(name, {}).get("modes", {}).items():
            lines.append(f"{name} {mode}: heard {m['heard']}")
    return lines


def simultaneous_targets(
    result: dict[str, Any], totals: Callable[[dict[str, Any]], dict[str, Any]], wer_points: float
) -> list[dict[str, Any]]:
    """Targets of the simultaneous rooms: all echo caught, nothing of it out, people kept and still interpreted."""
    runs = result["runs"]
    if "simultaneous-on" not in runs or "simultaneous-floor" not in runs:
        return []
    floor = totals(runs["simultaneous-floor"])
    floor_first = _p50(_pooled(runs["simultaneous-floor"], "first_word_s"))
    floor_speaking = sum(m["while_speaking"] for m in runs["simultaneous-floor"]["modes"].values())
    out: list[dict[str, Any]] = []
    for name, label in (("simultaneous-on", "16 kHz"), ("simultaneous-uncancelled", "22.05 kHz, no canceller")):
        run = runs.get(name)
        if run is None:
            continue
        t = totals(run)
        modes = run["modes"].values()
        committed = sum(m["echo_committed"] + m["echo_shown"] for m in modes)
        points = 100 * (t["wer"] - floor["wer"])
        first = stats.percentile(_pooled(run, "first_word_s"), 50)
        over = _pooled(run, "over_first_word_s")
        speaking = sum(m["while_speaking"] for m in modes)
        out += [
            {
                "target": f"echo, simultaneous ({label}): the speech heard again, caught; none of its translation "
                "committed or shown",
                "required": "100 %, 0 words",
                "measured": f"{'-' if t['caught'] is None else format(t['caught'], '.0%')} of {t['returns']} "
                f"({t['translated']} translated; {committed} committed or shown)",
                "met": t["caught"] is not None and t["caught"] >= 1.0 and t["translated"] == 0 and committed == 0,
            },
            {
                "target": f"echo, simultaneous ({label}): real sentences kept; the people's WER against no echo",
                "required": f"100 %; <= +{wer_points:g} point",
                "measured": f"{t['kept']}/{t['sentences']}; {100 * t['wer']:.1f} % vs {100 * floor['wer']:.1f} % "
                f"({points:+.1f} points)",
                "met": t["kept"] >= t["sentences"] and points <= wer_points,
            },
            {
                "target": f"echo, simultaneous ({label}): a person still interpreted while speaking (first committed "
                "word after they start, p50; over the speech's end)",
                "required": f"<= {FIRST_WORD_TARGET_S} s",
                "measured": f"{'-' if first is None else format(first, '.2f')} s, {speaking}/{t['sentences']} while "
                f"speaking (no echo: {floor_first}, {floor_speaking}/{floor['sentences']}); over the end "
                f"{_p50(over)} ({len(over)} sentences)",
                "met": None if first is None else first <= FIRST_WORD_TARGET_S,
            },
        ]
    return out
