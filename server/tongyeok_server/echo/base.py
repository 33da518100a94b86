"""The small interface the session uses: clean the caller's audio, judge a final."""

from __future__ import annotations

from typing import Protocol

from tongyeok_server.recognition.base import Transcript


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
