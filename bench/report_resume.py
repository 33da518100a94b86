"""The resumption part of the bench's table: figures, and targets beside them."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# The network is back: the meeting should go on about as fast as the client's backoff allows
# (its next attempt comes at most 4 s after the last one; for a 3 s outage at 0.75 s).
RESTORE_TO_FIRST_EVENT_P50_MS = 2000.0
# Events produced after the break arrive as they would have without it.
AFTER_BREAK_EXTRA_P99_MS = 200.0
# What a session holds while it waits for its caller (recogniser stream, its log, buffers).
DETACHED_SESSION_MB = 2.0


def _f(summary: dict[str, Any] | None, key: str) -> str:
    value = (summary or {}).get(key)
    return "-" if value is None else f"{value:.0f}"


def _triple(summary: dict[str, Any] | None) -> str:
    return f"{_f(summary, 'p50')}/{_f(summary, 'p99')}/{_f(summary, 'max')}"


def resume_table(resume: dict[str, Any]) -> Table:
    """How soon a broken meeting goes on, and what the break cost its events."""
    o = resume["options"]
    table = Table(
        title=(
            f"Resumption: {o['streams']} paced meetings, the network down for {o['down_s']:g} s "
            f"(ms p50/p99/max; resumed {resume['resumed_streams']}/{o['streams']})"
        ),
        title_justify="left",
    )
    table.add_column("measure")
    table.add_column("figure", justify="right")
    table.add_row("network back -> session_resumed", _triple(resume["restore_to_resumed_ms"]))
    table.add_row("network back -> first event after the resume", _triple(resume["restore_to_first_event_ms"]))
    table.add_row("finals produced during the break: extra latency", _triple(resume["extra_ms_during_break"]))
    table.add_row("finals after the break (from 5 s on): extra latency", _triple(resume["extra_ms_after_break"]))
    table.add_row(
        "every word once, in order / sentences the break split",
        f"{'yes' if resume['words_kept'] else 'NO'} / {resume['sentences_split']}",
    )
    m = resume["memory"]
    table.add_row(
        f"server memory per detached session ({m['sessions']} detached)",
        f"{m['per_detached_session_mb']:.3f} MB (RSS {m['rss_before_mb']} -> {m['rss_detached_mb']} MB)",
    )
    if resume["errors"]:
        table.add_row("streams that failed", "; ".join(resume["errors"])[:120])
    return table


def resume_targets(resume: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The targets of the resumption part (none when it did not run)."""
    if not resume:
        return []
    first = resume["restore_to_first_event_ms"]["p50"]
    after = resume["extra_ms_after_break"]["p99"]
    per = resume["memory"]["per_detached_session_mb"]
    whole = resume["words_kept"] and not resume["errors"]
    return [
        {
            "target": "resume: network back -> first event after the resume, p50",
            "required": f"<= {RESTORE_TO_FIRST_EVENT_P50_MS:.0f} ms, every word once",
            "measured": f"{_f(resume['restore_to_first_event_ms'], 'p50')} ms, words "
            + ("all there once" if whole else "LOST OR REPEATED")
            + f", {resume['sentences_split']} sentences split by the break",
            "met": None if first is None else first <= RESTORE_TO_FIRST_EVENT_P50_MS and whole,
        },
        {
            "target": "resume: extra latency of finals after the break, p99",
            "required": f"<= {AFTER_BREAK_EXTRA_P99_MS:.0f} ms",
            "measured": f"{_f(resume['extra_ms_after_break'], 'p99')} ms",
            "met": None if after is None else after <= AFTER_BREAK_EXTRA_P99_MS,
        },
        {
            "target": "resume: server memory per detached session",
            "required": f"<= {DETACHED_SESSION_MB:g} MB",
            "measured": f"{per:.3f} MB",
            "met": per <= DETACHED_SESSION_MB,
        },
    ]
