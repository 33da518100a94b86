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
"""

from __future__ import annotations

import logging
import sys

SERVER_LOGGER = "tongyeok_server"
# The least a library logs at, unless the operator asks for DEBUG.
LIBRARY_LEVEL = logging.WARNING


def configure(level: str, process_index: str | None = None) -> None:
    """Log to stderr at ``level`` (a name: DEBUG, INFO, ...); ``process_index`` tags a supervised process's lines."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise SystemExit(f"--log-level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    tag = f"p{process_index} " if process_index else ""
    logging.basicConfig(
        level=numeric if numeric <= logging.DEBUG else max(numeric, LIBRARY_LEVEL),
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(SERVER_LOGGER).setLevel(numeric)
