"""Where a session goes on when it moves to another server (the shutdown of the one it was on)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Continuation:
    """What the new server needs to go on as if nothing happened.

    ``audio_bytes`` is where the new server's audio starts: the end of the
    last final, so that the sentence that was in progress is recognised
    again there, whole, and nothing finished is repeated.
    """

    next_utterance_id: int
    next_sequence_number: int
    audio_bytes: int
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Simultaneous mode: the translation already given of the sentence in progress, per target language.
    committed: dict[str, str] = field(default_factory=dict)
