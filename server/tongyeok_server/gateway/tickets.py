"""Stream tickets: how a browser authenticates a WebSocket it cannot put an ``Authorization`` header on.

The page asks ``POST /v1/tickets`` with the caller's API key or JWT (the
same credential and the same ``interpret`` scope as a gRPC stream) and gets
a ticket: the caller's identity, scopes and quota, the page's origin, an
expiry about a minute away and a random id, sealed with AES-256-GCM under a
key derived from the resume secret (so every process of ``--processes``,
and every replica sharing ``--resume-secret``, opens it, and nobody can read
or forge one). The WebSocket carries it in its URL; the gateway opens it,
checks expiry and origin, and claims its id once: a second use is refused.

Single use is exact within a process, and across the processes of one
``--processes`` supervisor (an exclusive file per claimed id in their
shared runtime directory). Across replicas it is not: a ticket copied from
one browser within its minute could be used once per replica, as the
caller it belongs to and from the origin it was minted for.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from tongyeok_server.auth.caller import Caller, CallerKind, Quota, Scope
from tongyeok_server.errors import ServiceError
from tongyeok_server.session.resume_token import InvalidResumeToken, ResumeTokens

TICKET_TTL_S = 60.0
# Claimed ids are kept a little longer than a ticket lives, then forgotten.
_KEEP_CLAIMS_S = TICKET_TTL_S + 30.0


@dataclass(frozen=True)
class Ticket:
    """A minted ticket and how long it is valid."""

    value: str
    expires_in_s: float


class UsedTickets:
    """The ids of tickets already used (see the module docstring); ``claim`` is True only the first time."""

    def __init__(self, directory: Path | None = None) -> None:
        """``directory`` is shared by the processes of one supervisor; None keeps the claims in this process."""
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._claimed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._last_purge = time.monotonic()

    def claim(self, ticket_id: str) -> bool:
        """Mark ``ticket_id`` used; False if it already was."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_purge > _KEEP_CLAIMS_S:
                self._purge(now)
            if ticket_id in self._claimed:
                return False
            if self._directory is not None and not self._claim_file(ticket_id):
                return False
            self._claimed[ticket_id] = now
            return True

    def _claim_file(self, ticket_id: str) -> bool:
        assert self._directory is not None
        try:
            os.close(os.open(self._directory / ticket_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as e:
            if e.errno == errno.EEXIST:
                return False
            raise
        return True

    def _purge(self, now: float) -> None:
        self._last_purge = now
        self._claimed = {k: t for k, t in self._claimed.items() if now - t < _KEEP_CLAIMS_S}
        if self._directory is not None:
            cutoff = time.time() - _KEEP_CLAIMS_S
            for path in self._directory.iterdir():
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                except OSError:
                    pass  # another process purged it first


def _refused(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message)


class StreamTickets:
    """Mints and redeems stream tickets (see the module docstring)."""

    def __init__(self, resume_key: bytes, used: UsedTickets, ttl_s: float = TICKET_TTL_S) -> None:
        # A key of its own: a ticket is never a resume token, nor the other way round.
        self._seal = ResumeTokens(hashlib.sha256(b"tongyeok stream ticket\0" + resume_key).digest())
        self._used = used
        self.ttl_s = ttl_s

    def mint(self, caller: Caller, origin: str) -> Ticket:
        """A ticket for ``caller`` to open one stream from a page of ``origin`` ("" when the request had none)."""
        q = caller.quota
        claims = {
            "k": "ticket",
            "id": secrets.token_urlsafe(16),
            "caller": caller.id,
            "kind": caller.kind.value,
            "scopes": sorted(s.value for s in caller.scopes),
            "quota": [q.max_streams, q.streams_per_minute, q.audio_hours_per_day],
            "origin": origin,
            "exp": time.time() + self.ttl_s,
        }
        return Ticket(self._seal.seal(claims), self.ttl_s)

    def redeem(self, ticket: str, origin: str) -> Caller:
        """The caller ``ticket`` was minted for, once; raises UNAUTHENTICATED or PERMISSION_DENIED."""
        if not ticket:
            raise _refused(
                "this server requires a stream ticket: POST /v1/tickets with `Authorization: Bearer <API key or "
                "JWT>`, then open the WebSocket with ?ticket=<ticket> within a minute"
            )
        try:
            claims = self._seal.open(ticket)
        except InvalidResumeToken:
            raise _refused("the ticket is not one this service issued (altered or cut short); get a new one") from None
        if claims.get("k") != "ticket":
            raise _refused("the ticket is not one this service issued (altered or cut short); get a new one")
        late = time.time() - float(claims.get("exp", 0))
        if late > 0:
            raise _refused(
                f"the ticket expired {late:.0f} s ago (tickets last {self.ttl_s:.0f} s); get a new one just before "
                "opening the socket"
            )
        minted_for = str(claims.get("origin", ""))
        if minted_for and minted_for != origin:
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the ticket was issued to a page of {minted_for}, and this socket comes from {origin or 'no page'}",
            )
        if not self._used.claim(str(claims.get("id", ""))):
            raise _refused("the ticket was already used (a ticket opens one socket); get a new one")
        max_streams, per_minute, hours = claims.get("quota") or (None, None, None)
        return Caller(
            str(claims["caller"]),
            CallerKind(claims["kind"]),
            frozenset(Scope(s) for s in claims.get("scopes", ())),
            Quota(max_streams, per_minute, hours),
        )
