"""Stream tickets: how a browser authenticates a WebSocket it cannot put an ``Authorization`` header on.

The page asks ``POST /v1/tickets`` with the caller's API key or JWT (the
same credential and the same ``interpret`` scope as a gRPC stream) and gets
a ticket: the caller's identity, scopes and quota, the page's origin, an
expiry about a minute away and a random id, sealed with AES-256-GCM under a
key derived from the resume secret (so every process of ``--processes``,
and every replica sharing ``--resume-secret``, opens it, and nobody can read
or forge one). The WebSocket carries it in its URL; the gateway opens it,
checks expiry and origin, and claims its id once: a second use is refused.

Single use is exact within a process and across the processes of one
``--processes`` supervisor; with ``--limits-storage redis://...`` (which
replicas already share for the per-caller limits) it is exact across
replicas too. Without a shared storage, or while it cannot be reached, a
ticket copied within its minute could be used once more on each other
replica, as the caller it belongs to and from the origin it was minted for
(``auth/single_use.py`` says why that outage fails open).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import grpc

from tongyeok_server.auth.caller import Caller, caller_claims, caller_from_claims
from tongyeok_server.auth.single_use import SingleUse
from tongyeok_server.errors import ServiceError
from tongyeok_server.session.resume_token import InvalidResumeToken, ResumeTokens

TICKET_TTL_S = 60.0
#: How long a used ticket's id is remembered: a little longer than a ticket lives.
KEEP_USED_S = TICKET_TTL_S + 30.0


@dataclass(frozen=True)
class Ticket:
    """A minted ticket and how long it is valid."""

    value: str
    expires_in_s: float


def _refused(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message)


class StreamTickets:
    """Mints and redeems stream tickets (see the module docstring)."""

    def __init__(self, resume_key: bytes, used: SingleUse, ttl_s: float = TICKET_TTL_S) -> None:
        """``used``: where used tickets are remembered (``SingleUse("ticket", KEEP_USED_S, ...)``)."""
        # A key of its own: a ticket is never a resume token, nor the other way round.
        self._seal = ResumeTokens(hashlib.sha256(b"tongyeok stream ticket\0" + resume_key).digest())
        self._used = used
        self.ttl_s = ttl_s

    def mint(self, caller: Caller, origin: str) -> Ticket:
        """A ticket for ``caller`` to open one stream from a page of ``origin`` ("" when the request had none)."""
        claims = {
            "k": "ticket",
            "id": secrets.token_urlsafe(16),
            **caller_claims(caller),  # with its key's digest, so that revoking the key ends the socket's stream
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
        return caller_from_claims(claims)
