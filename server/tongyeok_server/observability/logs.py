"""The server's log set-up: its own lines at ``--log-level``, the libraries' chatter only at DEBUG.

At INFO the log is one line per session start and end plus real events
(restarts, retries, failures). The libraries under the engines log
routine work at INFO too: the HTTP client writes a line per request
(``httpx``/``httpx2``: one per translation), and google-auth, grpc, openai
and asyncio have their own. So the root logger, which every library's
logger inherits its level from, stays at WARNING unless ``--log-level`` is
DEBUG, and only ``tongyeok_server``'s loggers follow ``--log-level``. One
rule in one place, for every library, present and future, without a list
of their names. Their warnings and errors still show.

``--log-format json`` writes one JSON object per line (python-json-logger:
a maintained formatter, rather than our own escaping of every field):
``time``, ``level``, ``logger``, ``message``, the process index under
``--processes``, and the fields a line passes as ``extra``. The session
start and end lines carry their figures that way (``session_start_fields``,
``session_end_fields``), so a log pipeline needs no regular expression. The
text format stays the default: it is for a person at a terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from tongyeok_server.errors import StartError

if TYPE_CHECKING:
    from tongyeok_server.session.session import Session

SERVER_LOGGER = "tongyeok_server"
# The least a library logs at, unless the operator asks for DEBUG.
LIBRARY_LEVEL = logging.WARNING


FORMATS = ("text", "json")


def configure(level: str, process_index: str | None = None, log_format: str = "text") -> None:
    """Log to stderr at ``level`` (a name: DEBUG, INFO, ...) as ``text`` or ``json``.

    ``process_index`` tags a supervised process's lines.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise StartError(f"--log-level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    if log_format not in FORMATS:
        raise StartError(f"--log-format {log_format!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter(process_index) if log_format == "json" else text_formatter(process_index))
    logging.basicConfig(level=numeric if numeric <= logging.DEBUG else max(numeric, LIBRARY_LEVEL), handlers=[handler])
    logging.getLogger(SERVER_LOGGER).setLevel(numeric)


def text_formatter(process_index: str | None = None) -> logging.Formatter:
    """One line for a person: time, level, process, logger, message."""
    tag = f"p{process_index} " if process_index else ""
    return logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")


def json_formatter(process_index: str | None = None) -> logging.Formatter:
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, and the line's ``extra`` fields."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"process_index": int(process_index)} if process_index else None,
        timestamp="time",
        json_ensure_ascii=False,  # Korean text in a message stays readable
    )


def session_start_fields(session: Session, recognizer: str, translator: str, *, moved: bool = False) -> dict[str, Any]:
    """The ``extra`` of a session's start line: who, what languages and audio, which engines.

    ``moved``: the session continues here from a server that shut down.
    """
    config = session.config
    return {
        "event": "session_start",
        "moved": moved,
        "session_id": session.id,
        "caller_id": session.caller.id,
        "source_languages": list(config.source_languages),
        "target_languages": list(config.target_languages),
        "encoding": config.audio.encoding.value,
        "sample_rate_hz": config.audio.sample_rate_hz,
        "channels": config.audio.channels,
        "recognizer": recognizer,
        "translator": translator,
    }


def session_end_fields(session: Session, duration_s: float, audio_s: float, *, resumes: int = 0) -> dict[str, Any]:
    """The ``extra`` of a session's end line: how it ended and its figures."""
    s = session.stats
    return {
        "event": "session_end",
        "session_id": session.id,
        "caller_id": session.caller.id,
        "outcome": session.outcome,
        "duration_s": round(duration_s, 3),
        "audio_s": round(audio_s, 3),
        "chunks": s.chunks,
        "interims": s.interims,
        "finals": s.finals,
        "translations": s.translations,
        "translation_failures": s.translation_failures,
        "echo_finals": s.echo_finals,
        "resumes": resumes,
    }
