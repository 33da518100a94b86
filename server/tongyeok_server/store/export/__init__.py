"""A record rendered for people and tools: subtitles, minutes, text, JSON. Pure functions of a ``SessionRecord``."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tongyeok_server.store.export import minutes, plaintext, structured, subtitles
from tongyeok_server.store.export.subtitles import SubtitleText
from tongyeok_server.store.records import SessionRecord


class ExportFormat(enum.Enum):
    """The formats, by file extension."""

    SRT = "srt"
    WEBVTT = "vtt"
    MARKDOWN = "md"
    TEXT = "txt"
    JSON = "json"


_MEDIA_TYPES = {
    ExportFormat.SRT: "application/x-subrip",
    ExportFormat.WEBVTT: "text/vtt",
    ExportFormat.MARKDOWN: "text/markdown",
    ExportFormat.TEXT: "text/plain",
    ExportFormat.JSON: "application/json",
}


@dataclass(frozen=True)
class Exported:
    """A rendered record and how to save it."""

    content: str
    media_type: str
    file_name: str


def export(
    record: SessionRecord,
    fmt: ExportFormat,
    *,
    language_code: str = "",
    subtitle_text: SubtitleText | None = None,
) -> Exported:
    """Render ``record`` (FULL view) as ``fmt``.

    ``language_code`` picks the translation to include (all of them if empty,
    except for subtitles, see ``subtitles.cue_lines``); ``subtitle_text``
    what a cue says (default: the source without a language, the
    translation with one).
    """
    if fmt in (ExportFormat.SRT, ExportFormat.WEBVTT):
        text = subtitle_text or (SubtitleText.TRANSLATION if language_code else SubtitleText.SOURCE)
        render = subtitles.srt if fmt is ExportFormat.SRT else subtitles.webvtt
        content = render(record, text, language_code)
    elif fmt is ExportFormat.MARKDOWN:
        content = minutes.markdown(record, language_code)
    elif fmt is ExportFormat.TEXT:
        content = plaintext.text(record, language_code)
    else:
        content = structured.json_text(record, language_code)
    suffix = f"-{language_code}" if language_code else ""
    return Exported(content, _MEDIA_TYPES[fmt], f"{record.session_id}{suffix}.{fmt.value}")


__all__ = ["ExportFormat", "Exported", "SubtitleText", "export"]
