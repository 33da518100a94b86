"""``tongyeok sessions list|show|export|delete``: the meeting records the server keeps."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.text import Text

from ..client import InterpreterClient
from ..proto import transcripts_pb2 as tpb
from ..transcripts import EXPORT_FORMATS
from .common import EXIT_OK, UsageError, print_json

_STATES = {
    tpb.RECORD_STATE_OPEN: "open",
    tpb.RECORD_STATE_COMPLETE: "complete",
    tpb.RECORD_STATE_INCOMPLETE: "incomplete",
}


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register ``sessions`` and its four commands."""
    p = sub.add_parser(
        "sessions",
        help="list, show, export or delete meeting records",
        description="The meeting records the server keeps: transcripts and translations of past sessions.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=parents, help="your sessions, newest first")
    ls.add_argument("--since", type=_when, help="only sessions started at or after (ISO 8601; no zone = local time)")
    ls.add_argument("--until", type=_when, help="only sessions started before")
    ls.add_argument("--lang", default="", help="only sessions with this language, e.g. es or en-US")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default %(default)s; 0 = all)")
    ls.set_defaults(run=run_list)
    show = actions.add_parser("show", parents=parents, help="one session: every utterance and its translations")
    show.add_argument("id", help="the session id (SessionStarted.session_id) or sessions/ID")
    show.set_defaults(run=run_show)
    export = actions.add_parser("export", parents=parents, help="subtitles, minutes, text or JSON of a session")
    export.add_argument("id", help="the session id or sessions/ID")
    export.add_argument("--format", required=True, choices=tuple(EXPORT_FORMATS), help="what to write")
    export.add_argument("--lang", default="", help="the translation to include, e.g. es (subtitles: in this language)")
    export.add_argument("--both", action="store_true", help="subtitles: the spoken line and its translation")
    export.add_argument("-o", "--output", type=Path, help="write to this file (default: standard output)")
    export.set_defaults(run=run_export)
    delete = actions.add_parser("delete", parents=parents, help="delete a session's record, audio included")
    delete.add_argument("id", help="the session id or sessions/ID")
    delete.set_defaults(run=run_delete)


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; use e.g. 2026-12-03 or 2026-12-03T14:00"
        ) from None
    return value.astimezone()  # a naive time is local


def _time(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def _seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _length(session: tpb.Session) -> str:
    if session.HasField("end_time"):
        total = round((session.end_time.ToDatetime() - session.start_time.ToDatetime()).total_seconds())
    elif session.HasField("audio_duration"):
        total = round(_seconds(session.audio_duration))
    else:
        return "running"
    m, s = divmod(total, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _languages(session: tpb.Session) -> str:
    targets = ", ".join(session.target_language_codes)
    return "+".join(session.source_language_codes) + (f" → {targets}" if targets else "")


def run_list(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Print the caller's sessions."""
    sessions = client.transcripts.list_sessions(
        started_after=args.since, started_before=args.until, language=args.lang, limit=args.limit or None
    )
    shown = 0
    for session in sessions:
        shown += 1
        if args.json:
            print_json(session)
            continue
        state = _STATES.get(session.record_state, "?")
        console.print(
            Text(
                f"{session.session_id}  {_time(session.start_time)}  {_length(session):>8}  {_languages(session)}  "
                f"{session.utterance_count} utterances  {state}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if not shown and not args.json:
        console.print(Text("no sessions"), highlight=False, soft_wrap=True)
    return EXIT_OK


def run_show(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Print one session whole."""
    session = client.transcripts.get_session(args.id)
    if args.json:
        print_json(session)
        return EXIT_OK
    ended = f", ended {_time(session.end_time)} ({session.outcome})" if session.HasField("end_time") else ", running"
    lines = [
        f"session    {session.session_id}  (caller {session.caller_id})",
        f"time       started {_time(session.start_time)}{ended}, {_length(session)}",
        f"languages  {_languages(session)}",
        f"engines    {session.recognizer.name}, {session.translator.name}",
        f"record     {_STATES.get(session.record_state, '?')}"
        + (f": {session.record_note}" if session.record_note else ""),
    ]
    for line in lines:
        console.print(Text(line), highlight=False, soft_wrap=True)
    for u in session.utterances:
        start = _seconds(u.audio_start_offset)
        head = f"[{int(start // 60):02d}:{start % 60:05.2f}] {u.language_code}  "
        console.print(Text(head + u.text), highlight=False, soft_wrap=True)
        for t in u.translations:
            body = "(translation failed)" if t.failed else t.text
            console.print(
                Text(" " * (len(head) - len(t.language_code) - 2) + f"{t.language_code}  {body}", style="cyan"),
                soft_wrap=True,
            )
    return EXIT_OK


def run_export(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Write a session as subtitles, minutes, text or JSON."""
    if args.both and args.format not in ("srt", "vtt"):
        raise UsageError("--both is for subtitles (--format srt or vtt)")
    exported = client.transcripts.export_session(
        args.id, args.format, language=args.lang, subtitle_text="both" if args.both else None
    )
    if args.output is None:
        sys.stdout.write(exported.content)
        sys.stdout.flush()
        return EXIT_OK
    try:
        args.output.write_text(exported.content, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {args.output}: {e.strerror or e}") from None
    print(f"wrote {args.output} ({exported.media_type})", file=sys.stderr)
    return EXIT_OK


def run_delete(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Delete a session's record."""
    client.transcripts.delete_session(args.id)
    if not args.json:
        console.print(Text(f"deleted {args.id}"), highlight=False, soft_wrap=True)
    return EXIT_OK
