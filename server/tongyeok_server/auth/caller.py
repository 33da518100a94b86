"""The identity a request is served for, available to everything the request starts.

The gRPC edge authenticates each call and sets the caller for the call's
task (a ``ContextVar``); sessions, the meeting record and the logs take it
from there. Without authentication every call is the anonymous caller,
which may do everything (local use).
"""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass
from typing import Any


class Scope(enum.StrEnum):
    """What a credential allows (the values are the words in a JWT's ``scope`` claim)."""

    INTERPRET = "interpret"
    TRANSLATE = "translate"
    TRANSCRIPTS = "transcripts"
    TRANSCRIPTS_ADMIN = "transcripts:admin"
    EXPENSES = "expenses"


class CallerKind(enum.StrEnum):
    """How the caller proved who it is."""

    ANONYMOUS = "anonymous"
    API_KEY = "api_key"
    JWT = "jwt"


@dataclass(frozen=True)
class Quota:
    """Per-caller limits that override the server's defaults; None means the default, 0 unlimited."""

    max_streams: int | None = None
    streams_per_minute: int | None = None
    audio_hours_per_day: float | None = None
    scans_per_minute: int | None = None


@dataclass(frozen=True)
class Caller:
    """An authenticated caller.

    ``id`` is what logs, limits and the meeting record name the caller by:
    ``key:<key id>`` for an API key, ``jwt:<issuer>:<subject>`` for a JWT
    (``auth.jwt_identity``: one id per issuer and exact subject, safe to
    print), ``anonymous`` without authentication. It is never the credential.
    """

    id: str
    kind: CallerKind
    scopes: frozenset[Scope]
    quota: Quota = Quota()
    #: What tells whether the credential still holds (an API key's hash; never the credential itself), so that
    #: the streams of a revoked key can be ended. Empty for JWTs, which are checked when a call starts only.
    credential: str = ""
    #: The id this caller had before issue 24, when that id named no one else (``jwt_identity.legacy_id``):
    #: resume tokens sealed before the upgrade carry it. Empty for everyone else.
    legacy_id: str = ""
    #: Set on a caller another process of the deployment vouched for to resume one session (its id), when the
    #: caller proved itself there without a credential that can be passed on (a WebSocket's single-use ticket):
    #: such a stream may resume that session and nothing else (``api/relayed_callers.py``).
    relayed_for: str = ""

    def allows(self, scope: Scope) -> bool:
        """Whether this caller's credential grants ``scope``."""
        return scope in self.scopes


def caller_claims(caller: Caller) -> dict[str, Any]:
    """``caller`` as JSON-able claims, for a sealed credential (a stream ticket, a relayed caller)."""
    q = caller.quota
    return {
        "caller": caller.id,
        "kind": caller.kind.value,
        "scopes": sorted(s.value for s in caller.scopes),
        "quota": [q.max_streams, q.streams_per_minute, q.audio_hours_per_day, q.scans_per_minute],
        "cred": caller.credential,
        "legacy": caller.legacy_id,
    }


def caller_from_claims(claims: dict[str, Any], relayed_for: str = "") -> Caller:
    """The caller ``caller_claims`` wrote (``claims`` come from a seal this service made)."""
    quota = [*(claims.get("quota") or ()), None, None, None, None][:4]
    return Caller(
        str(claims["caller"]),
        CallerKind(claims["kind"]),
        frozenset(Scope(s) for s in claims.get("scopes", ())),
        Quota(*quota),
        credential=str(claims.get("cred", "")),
        legacy_id=str(claims.get("legacy", "")),
        relayed_for=relayed_for,
    )


ANONYMOUS = Caller("anonymous", CallerKind.ANONYMOUS, frozenset(Scope))

_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("tongyeok_caller", default=ANONYMOUS)


def current_caller() -> Caller:
    """The caller of the RPC being served (``ANONYMOUS`` when authentication is off)."""
    return _current.get()


def set_current_caller(caller: Caller) -> contextvars.Token[Caller]:
    """Make ``caller`` the current caller of this task (the auth interceptor does this)."""
    return _current.set(caller)
