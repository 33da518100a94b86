"""The small interface the session uses: clean the caller's audio, judge a final, judge an interim."""

from __future__ import annotations

import enum
from typing import Protocol

from tongyeok_server.recognition.base import Transcript


class Verdict(enum.Enum):
    """What the audio behind an interim is, as far as can be told when it comes (``EchoFilter.judge``)."""

    #: A person's speech (or nothing the session spoke could be in it): its translation may be committed.
    SPEECH = "speech"
    #: Not known yet (the session's speech may be in it and its delay is still being looked for, or too
    #: few words to compare): translate it, but commit nothing yet.
    PENDING = "pending"
    #: The session's own speech coming back: not translated at all (the final decides for good).
    ECHO = "echo"


class EchoFilter(Protocol):
    """Keeps one session's own speech out of its recognition (``echo.guard.EchoGuard``)."""

    @property
    def latency_s(self) -> float:
        """How far the audio ``clean`` returns lags the audio it takes (constant for the session)."""

    async def clean(self, audio: bytes) -> bytes:
        """One chunk of the caller's audio (caller's format) -> as long, ``latency_s`` behind, its speech removed."""

    def flush(self) -> bytes:
        """At the end of the caller's audio: the ``latency_s`` of it still held back."""

    def echo_of(self, transcript: Transcript) -> int:
        """The utterance whose spoken translation ``transcript`` (a final) is the echo of, or 0 (any thread)."""

    def judge(self, transcript: Transcript) -> Verdict:
        """Whether the audio behind an interim (its span, its stable text) may be committed yet (on the loop)."""
