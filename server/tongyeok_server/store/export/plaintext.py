"""Plain text: a heading line, then each utterance with its time and language, its translations indented below."""

from __future__ import annotations

from tongyeok_server.store.export.common import clock, one_line, session_duration, utc
from tongyeok_server.store.records import SessionRecord, language_matches


def text(record: SessionRecord, language_code: str = "") -> str:
    """``record`` as plain text (translations into ``language_code`` only, if set)."""
    targets = ", ".join(record.target_languages) or "no translation"
    lines = [
        f"Meeting {record.session_id}: {utc(record.started_at)}, {session_duration(record)}, "
        f"{' + '.join(record.source_languages)} -> {targets}",
    ]
    if record.incomplete_reason:
        lines.append(f"(incomplete record: {record.incomplete_reason})")
    lines.append("")
    for u in record.utterances:
        head = f"[{clock(u.start_s, digits=1)}] {u.language_code}: "
        lines.append(head + one_line(u.text))
        for t in u.translations:
            if language_code and not language_matches(language_code, t.language_code):
                continue
            body = "(translation failed)" if t.failed else one_line(t.text)
            lines.append(" " * (len(head) - len(t.language_code) - 2) + f"{t.language_code}: {body}")
    return "\n".join(lines) + "\n"
