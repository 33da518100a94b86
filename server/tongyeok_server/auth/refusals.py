"""Who hears about refusals at the edge (metrics), without ``auth/`` knowing who that is."""

from __future__ import annotations

from typing import Protocol

from tongyeok_server.auth.caller import Caller


class RefusalObserver(Protocol):
    """Told about every call authentication refuses and every stream a per-caller limit refuses or ends."""

    def auth_refused(self, reason: str, code: str) -> None:
        """A call was refused: ``reason`` is ``Refusal.reason``, ``code`` the gRPC status name."""

    def limit_refused(self, limit: str, caller: Caller) -> None:
        """``caller`` hit ``limit`` (``concurrent``, ``opening``, ``per_minute`` or ``audio_per_day``)."""


class IgnoreRefusals:
    """The observer when nobody is listening (metrics off)."""

    def auth_refused(self, reason: str, code: str) -> None:
        """Nothing."""

    def limit_refused(self, limit: str, caller: Caller) -> None:
        """Nothing."""


IGNORE = IgnoreRefusals()
