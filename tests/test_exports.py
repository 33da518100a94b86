"""Exports as pure functions of a record: subtitles parsed back with subtitle libraries, minutes, text, JSON."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import srt
import webvtt
from google.protobuf import json_format

from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_server.store.export import ExportFormat, SubtitleText, export
from tongyeok_server.store.messages import session_message
from tongyeok_server.store.records import SessionRecord, TranslationRecord, UtteranceRecord

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def utterance(uid: int, text: str, lang: str, start: float, end: float, *translations: TranslationRecord):
    return UtteranceRecord(uid, text, lang, 0.9, start, end, T0 + timedelta(seconds=end), translations)


# A two-way meeting: English and Korean in turn, one failed translation, text that needs escaping.
TWO_WAY = SessionRecord(
    session_id="s20261102-090000-0123456789",
    caller_id="key:acme",
    started_at=T0,
    ended_at=T0 + timedelta(minutes=62, seconds=5),
    outcome="ok",
    config_json='{"source_language_codes": ["en-US", "ko-KR"]}',
    source_languages=("en-US", "ko-KR"),
    target_languages=("ko-KR", "en-US"),
    recognizer="google (long)",
    translator="openai (gpt-4o-mini)",
    incomplete_reason="",
    audio_duration_s=3725.0,
    audio_stored=False,
    utterance_count=4,
    utterances=(
        utterance(1, "Good morning.", "en-US", 1.0, 2.2, TranslationRecord("ko-KR", "좋은 아침입니다.")),
        utterance(
            2, "We agree on price | terms <final> & more", "en-US", 3.0, 6.5, TranslationRecord("ko-KR", "동의합니다.")
        ),
        utterance(3, "감사합니다.", "ko-KR", 3600.25, 3602.0, TranslationRecord("en-US", "Thank you.")),
        utterance(
            4, "다음 주에 뵙겠습니다.", "ko-KR", 3603.0, 3603.0, TranslationRecord("en-US", "", True, "engine timeout")
        ),
    ),
)


def test_srt_cues_have_the_utterances_times_and_texts() -> None:
    out = export(TWO_WAY, ExportFormat.SRT)
    assert out.media_type == "application/x-subrip" and out.file_name == f"{TWO_WAY.session_id}.srt"
    cues = list(srt.parse(out.content))
    assert [c.index for c in cues] == [1, 2, 3, 4]
    assert [c.content for c in cues] == [u.text for u in TWO_WAY.utterances]
    assert cues[2].start == timedelta(hours=1, seconds=0.25) and cues[2].end == timedelta(hours=1, seconds=2)
    # An utterance without length still gets a readable cue.
    assert cues[3].end - cues[3].start == timedelta(seconds=1)


def test_srt_in_one_language_and_in_both() -> None:
    korean = list(srt.parse(export(TWO_WAY, ExportFormat.SRT, language_code="ko").content))
    # Every cue in Korean: the translation of what was said in English, the Korean as said.
    assert [c.content for c in korean] == ["좋은 아침입니다.", "동의합니다.", "감사합니다.", "다음 주에 뵙겠습니다."]
    both = list(srt.parse(export(TWO_WAY, ExportFormat.SRT, subtitle_text=SubtitleText.BOTH).content))
    assert [c.content.split("\n") for c in both] == [
        ["Good morning.", "좋은 아침입니다."],
        ["We agree on price | terms <final> & more", "동의합니다."],
        ["감사합니다.", "Thank you."],
        ["다음 주에 뵙겠습니다."],  # its translation failed: the spoken line alone
    ]


def test_webvtt_parses_with_escaped_text_and_utterance_ids() -> None:
    out = export(TWO_WAY, ExportFormat.WEBVTT, subtitle_text=SubtitleText.BOTH, language_code="ko-KR")
    assert out.media_type == "text/vtt" and out.file_name.endswith("-ko-KR.vtt")
    assert out.content.startswith("WEBVTT")
    captions = webvtt.from_buffer(io.StringIO(out.content)).captions
    assert [c.identifier for c in captions] == ["1", "2", "3", "4"]
    assert [(c.start, c.end) for c in captions][:3] == [
        ("00:00:01.000", "00:00:02.200"),
        ("00:00:03.000", "00:00:06.500"),
        ("01:00:00.250", "01:00:02.000"),
    ]
    assert captions[1].lines == ["We agree on price | terms &lt;final&gt; &amp; more", "동의합니다."]
    assert captions[2].lines == ["감사합니다."]  # spoken in the subtitles' language: one line


def test_markdown_minutes_show_turns_side_by_side_with_times_languages_and_duration() -> None:
    md = export(TWO_WAY, ExportFormat.MARKDOWN).content
    assert "| Duration | 1 h 2 min 5 s |" in md
    assert "| Spoken | en-US, ko-KR |" in md
    assert "| Time | Speaker | en-US | ko-KR |" in md
    rows = [line for line in md.splitlines() if line.startswith("| 0")]
    assert rows == [
        "| 00:00:01 | **en-US** | Good morning. | 좋은 아침입니다. |",
        "| 00:00:03 |  | We agree on price \\| terms &lt;final&gt; &amp; more | 동의합니다. |",
        "| 01:00:00 | **ko-KR** | Thank you. | 감사합니다. |",
        "| 01:00:03 |  | _(translation failed)_ | 다음 주에 뵙겠습니다. |",
    ]


# What a hostile speaker, translator or glossary entry could put into a record, meant to run or load when
# the minutes are rendered (issue 24: a glossary entry's <script> and <img onerror> rendered live).
HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "![pixel](https://tracker.example/p.png)",
    "[click](javascript:alert(3))",
    "<https://phish.example/login>",
    "*not bold* _not em_ `not code` ~~not struck~~ \\| not a cell",
    "&lt;already an entity&gt; &amp;",
]


def test_markdown_minutes_show_what_was_said_as_text_never_as_markup() -> None:
    from dataclasses import replace
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    class Rendered(HTMLParser):
        """The tags of rendered HTML, and the text of each table row's cells."""

        def __init__(self) -> None:
            super().__init__()
            self.tags: set[str] = set()
            self.rows: list[list[str]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.add(tag)
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.rows[-1].append("")

        def handle_data(self, data: str) -> None:
            if self.rows and self.rows[-1]:
                self.rows[-1][-1] += data

    said = tuple(
        utterance(i + 1, text, "en-US", 2.0 * i, 2.0 * i + 1, TranslationRecord("ko-KR", f"번역 {text}"))
        for i, text in enumerate(HOSTILE)
    )
    record = replace(TWO_WAY, utterances=said, utterance_count=len(said), source_languages=("en-US",))
    md = export(record, ExportFormat.MARKDOWN).content
    # Rendered the way a wiki or a mail client would: CommonMark, tables, raw HTML let through.
    page = Rendered()
    page.feed(MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md))
    assert page.tags <= {"h1", "h2", "p", "table", "thead", "tbody", "tr", "th", "td", "strong"}, page.tags
    conversation = page.rows[-len(HOSTILE) :]
    assert [[cell.strip() for cell in row[2:]] for row in conversation] == [[t, f"번역 {t}"] for t in HOSTILE]


def test_text_lists_each_utterance_then_its_translations() -> None:
    txt = export(TWO_WAY, ExportFormat.TEXT).content.splitlines()
    assert txt[0].startswith(f"Meeting {TWO_WAY.session_id}: 2026-11-02 09:00:00 UTC, 1 h 2 min 5 s")
    assert "[00:00:01.0] en-US: Good morning." in txt
    i = txt.index("[01:00:00.2] ko-KR: 감사합니다.")
    assert txt[i + 1].strip() == "en-US: Thank you."
    assert txt[-1].strip() == "en-US: (translation failed)"


def test_json_parses_back_into_the_session_message() -> None:
    out = export(TWO_WAY, ExportFormat.JSON)
    assert out.media_type == "application/json"
    parsed = json_format.Parse(out.content, tpb.Session())
    assert parsed == session_message(TWO_WAY)
    assert parsed.utterances[3].translations[0].failed
    assert parsed.audio_duration.seconds == 3725
    only_english = json_format.Parse(export(TWO_WAY, ExportFormat.JSON, language_code="en").content, tpb.Session())
    assert [len(u.translations) for u in only_english.utterances] == [0, 0, 1, 1]


def test_an_empty_running_session_exports_cleanly() -> None:
    from dataclasses import replace

    empty = replace(TWO_WAY, ended_at=None, utterances=(), utterance_count=0, audio_duration_s=None)
    assert export(empty, ExportFormat.SRT).content == ""
    assert webvtt.from_buffer(io.StringIO(export(empty, ExportFormat.WEBVTT).content)).captions == []
    md = export(empty, ExportFormat.MARKDOWN).content
    assert "Nothing was said." in md and "| Duration | still running |" in md and "| Record | open" in md
