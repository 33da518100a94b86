"""A session's id and the figures of its end line."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass


def new_session_id() -> str:
    """A session id unique across processes, replicas and restarts (the meeting record is keyed by it).

    The start time (UTC, to the second) keeps ids readable and sortable; 40
    random bits make two sessions started in the same second differ.
    """
    return time.strftime("s%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(5)


@dataclass
class SessionStats:
    """Figures for the session's log line."""

    audio_bytes: int = 0
    chunks: int = 0
    interims: int = 0
    finals: int = 0
    translations: int = 0
    translation_failures: int = 0
    echo_finals: int = 0  # finals that were the session's own speech coming back (not translated)
    first_final_latency_s: float | None = None
