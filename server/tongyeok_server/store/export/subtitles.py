"""SubRip (.srt) and WebVTT (.vtt) subtitles: one cue per utterance, timed by its audio offsets."""

from __future__ import annotations

import enum

from tongyeok_server.store.export.common import clock, one_line
from tongyeok_server.store.records import SessionRecord, UtteranceRecord

# A cue must last long enough to be read; an engine that gives an utterance no length gets this much.
MIN_CUE_S = 1.0


class SubtitleText(enum.Enum):
    """What a cue says (mirrors ``tongyeok.v1.SubtitleText``)."""

    SOURCE = 1
    TRANSLATION = 2
    BOTH = 3


def cue_lines(u: UtteranceRecord, text: SubtitleText, language_code: str = "") -> list[str]:
    """The lines of ``u``'s cue.

    TRANSLATION: the utterance in ``language_code`` (its own text if spoken
    in it); with no language, its first translation. Where there is no
    translation (failed, or still missing), the spoken text stands in, so
    that no cue is empty. BOTH: the spoken text, then the translation
    (one line when they are the same).
    """
    spoken = one_line(u.text)
    if text is SubtitleText.SOURCE:
        return [spoken]
    translated = u.text_in(language_code)
    translated = one_line(translated) if translated else None
    if text is SubtitleText.TRANSLATION:
        return [translated or spoken]
    return [spoken] if translated in (None, spoken) else [spoken, translated]


def _times(u: UtteranceRecord) -> tuple[float, float]:
    end = u.end_s if u.end_s > u.start_s else u.start_s + MIN_CUE_S
    return u.start_s, end


def srt(record: SessionRecord, text: SubtitleText, language_code: str = "") -> str:
    """The record as SubRip: numbered cues, ``HH:MM:SS,mmm`` times, a blank line after each."""
    blocks = []
    for n, u in enumerate(record.utterances, start=1):
        start, end = _times(u)
        lines = "\n".join(cue_lines(u, text, language_code))
        blocks.append(f"{n}\n{clock(start, ',')} --> {clock(end, ',')}\n{lines}\n")
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    # Cue text is HTML-like: a bare & or < would start an entity or a tag (and "-->" would end the timing line).
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(record: SessionRecord, text: SubtitleText, language_code: str = "") -> str:
    """The record as WebVTT: the header, then cues identified by their utterance ids."""
    blocks = [f"WEBVTT - {record.session_id}\n"]
    for u in record.utterances:
        start, end = _times(u)
        lines = "\n".join(_vtt_escape(line) for line in cue_lines(u, text, language_code))
        blocks.append(f"{u.utterance_id}\n{clock(start)} --> {clock(end)}\n{lines}\n")
    return "\n".join(blocks)
