"""A session's simultaneous mode as validated, and the operator's defaults it starts from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tongyeok_server import languages
from tongyeok_server.settings import SimultaneousSettings
from tongyeok_server.simultaneous import pacing
from tongyeok_server.simultaneous.pacing import Latency, Pacing


@dataclass(frozen=True)
class ServerDefaults:
    """What the operator chose (``--simultaneous-latency``, ``--simultaneous-holdback``, ``--simultaneous-request-rate``)."""

    latency: Latency = Latency.BALANCED
    #: Balanced holdback per (source, target or "") subtags, from ``pacing.parse_holdback``.
    holdback: tuple[tuple[tuple[str, str], int], ...] = ()
    #: Requests per second of speech for engines paid per request.
    request_rate: float = pacing.DEFAULT_REQUESTS_PER_SPEECH_S

    @classmethod
    def from_settings(cls, settings: SimultaneousSettings) -> ServerDefaults:
        """The operator's choices (validated by the settings already)."""
        return cls.parse(
            settings.simultaneous_latency, settings.simultaneous_holdback, settings.simultaneous_request_rate
        )

    @classmethod
    def parse(cls, latency: str, holdback: str, request_rate: float) -> ServerDefaults:
        """From the settings' text; ``ValueError`` saying what is wrong."""
        try:
            level = Latency(latency.strip().lower())
        except ValueError:
            raise ValueError(
                f"--simultaneous-latency {latency!r}: one of {', '.join(x.value for x in Latency)}"
            ) from None
        try:
            overrides = pacing.parse_holdback(holdback)
        except ValueError as error:
            raise ValueError(f"--simultaneous-holdback: {error}") from None
        if request_rate <= 0:
            raise ValueError(f"--simultaneous-request-rate {request_rate}: must be more than 0 requests per second")
        return cls(level, tuple(sorted(overrides.items())), request_rate)


@dataclass(frozen=True)
class Direction:
    """One direction of a session (the source as the recogniser names it, the target as the caller asked)."""

    source: str
    target: str
    pacing: Pacing


@dataclass(frozen=True)
class SimultaneousConfig:
    """A session in simultaneous mode: its level, whether it wants tentative text, each direction's pacing."""

    latency: Latency
    tentative: bool
    directions: tuple[Direction, ...]

    def pacing(self, source: str, target: str) -> Pacing:
        """The pacing of ``source`` -> ``target`` (a language the recogniser reported, a target of the session)."""
        for direction in self.directions:
            if languages.same_language(direction.source, source) and languages.same_language(direction.target, target):
                return direction.pacing
        return self.directions[0].pacing if self.directions else pacing.pacing(source, target, self.latency)

    @classmethod
    def build(
        cls,
        latency: Latency | None,
        tentative: bool,
        pairs: Iterable[tuple[str, str]],
        defaults: ServerDefaults,
        *,
        paid_per_request: bool,
    ) -> SimultaneousConfig:
        """The pacing of every (source, target) pair at the caller's level, or the server's default one."""
        level = latency or defaults.latency
        overrides = dict(defaults.holdback)
        rate = defaults.request_rate if paid_per_request else 0.0
        directions = tuple(
            Direction(s, t, pacing.pacing(s, t, level, overrides=overrides, max_requests_per_speech_s=rate))
            for s, t in pairs
        )
        return cls(level, tentative, directions)
