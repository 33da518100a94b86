"""Formatting the exports share: clocks, durations, dates, single lines."""

from __future__ import annotations

from datetime import UTC, datetime

from tongyeok_server.store.records import SessionRecord


def clock(seconds: float, fraction_sep: str = ".", *, digits: int = 3) -> str:
    """``83.2`` -> ``00:01:23.200`` (``,`` for SRT; ``digits`` 0 drops the fraction)."""
    millis = max(0, round(seconds * 1000))
    h, rest = divmod(millis, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    out = f"{h:02d}:{m:02d}:{s:02d}"
    if digits:
        out += fraction_sep + f"{ms:03d}"[:digits]
    return out


def human_duration(seconds: float) -> str:
    """``3723`` -> ``1 h 2 min 3 s``; ``42.4`` -> ``42 s``."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h"] if h else []
    if h or m:
        parts.append(f"{m} min")
    parts.append(f"{s} s")
    return " ".join(parts)


def utc(value: datetime) -> str:
    """An aware datetime as ``2026-12-03 10:15:00 UTC``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def session_duration(record: SessionRecord) -> str:
    """How long the session lasted, in words (the audio's length while it runs)."""
    if record.duration_s is not None:
        return human_duration(record.duration_s)
    if record.audio_duration_s is not None:
        return human_duration(record.audio_duration_s)
    return "still running"
