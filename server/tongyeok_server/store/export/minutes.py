"""Markdown minutes: when, how long, which languages, then the conversation turn by turn, languages side by side.

A turn is a run of utterances spoken in the same language (one speaker, in
a two-way meeting); its first row names the language, and a new turn starts
a new speaker cell. Each utterance is one row, so that a figure can be
checked sentence by sentence, and each language of the session is a column:
the spoken text stands in its own language's column, the translations in
the others.

Everything a record carries (what was said, its translations, glossary
renderings among them) is text, never markup: ``&``, ``<`` and ``>`` become
entities, so a renderer shows ``<script>`` or ``<img onerror=...>`` as
written instead of running it, and the characters Markdown reads as links,
images, emphasis, code and table cells (the backslash, the backtick,
``*``, ``_``, ``~``, ``[``, ``]``, ``|``) are escaped with a backslash, so
``![x](https://tracker)`` is not fetched either.
Block markers (``#``, ``-``, ``>``) cannot start a line: every value is
inside a table cell, on one line.
"""

from __future__ import annotations

from tongyeok_server import languages
from tongyeok_server.store.export.common import clock, human_duration, one_line, session_duration, utc
from tongyeok_server.store.records import RecordState, SessionRecord, UtteranceRecord, language_matches

MISSING = "—"
FAILED = "_(translation failed)_"


_AS_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", **{c: "\\" + c for c in "\\`*_~[]|"}})


def _cell(text: str) -> str:
    """``text`` as the content of a table cell: one line, shown as written (see the module docstring)."""
    return one_line(text).translate(_AS_TEXT) or MISSING


def _in_language(u: UtteranceRecord, code: str) -> str:
    """The cell of ``u`` in language ``code``: what was said, its translation, or our own mark for a failure."""
    if languages.same_language(code, u.language_code):
        return _cell(u.text)
    t = u.translation(code)
    if t is None:
        return MISSING
    return FAILED if t.failed else _cell(t.text)


def _columns(record: SessionRecord, language_code: str) -> list[str]:
    spoken = list(dict.fromkeys(record.source_languages))
    if language_code:
        wanted = [c for c in record.languages if language_matches(language_code, c)] or [language_code]
        return spoken + [c for c in wanted if not any(languages.same_language(c, s) for s in spoken)]
    return list(record.languages)


def markdown(record: SessionRecord, language_code: str = "") -> str:
    """The minutes of ``record`` (translations into ``language_code`` only, if set)."""
    state = {
        RecordState.OPEN: "open (the session is running, or its server stopped before writing its end)",
        RecordState.COMPLETE: "complete",
        RecordState.INCOMPLETE: f"incomplete: {record.incomplete_reason}",
    }[record.state]
    facts = [
        ("Started", utc(record.started_at)),
        ("Ended", utc(record.ended_at) if record.ended_at else "—"),
        ("Duration", session_duration(record)),
        ("Audio", human_duration(record.audio_duration_s) if record.audio_duration_s is not None else "—"),
        ("Spoken", ", ".join(record.source_languages)),
        ("Translated into", ", ".join(record.target_languages) or "—"),
        ("Utterances", str(len(record.utterances))),
        ("Engines", f"{record.recognizer or '?'} (recognition), {record.translator or '?'} (translation)"),
        ("Record", state),
    ]
    lines = [f"# Meeting minutes: {record.session_id}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in facts]
    columns = _columns(record, language_code)
    lines += ["", "## Conversation", ""]
    if not record.utterances:
        lines.append("Nothing was said.")
        return "\n".join(lines) + "\n"
    lines.append("| Time | Speaker | " + " | ".join(columns) + " |")
    lines.append("|---|---|" + "---|" * len(columns))
    previous = ""
    for u in record.utterances:
        new_turn = not previous or not languages.same_language(previous, u.language_code)
        previous = u.language_code
        cells = [_in_language(u, code) for code in columns]
        speaker = f"**{u.language_code}**" if new_turn else ""
        lines.append(f"| {clock(u.start_s, digits=0)} | {speaker} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
