"""A caller vouched for by another process of the deployment, on a resume relayed to the session's process.

A resume that lands on another process (``--processes``) or replica than
the session's is relayed there over gRPC (``forwarding.py``). A gRPC caller's
own ``authorization`` goes with it, and the owner checks it as if the caller
had come directly. A WebSocket caller has none to pass on: it proved itself
with a stream ticket, which is single-use and already spent. So the process
that admitted it vouches for it instead: ``x-tongyeok-relayed-caller`` is the
caller (id, kind, scopes, quota, its API key's digest) sealed with
AES-256-GCM under a key derived from the resume secret, which every process
and replica that relays to another already shares; the owner's auth
interceptor opens it and serves the stream as that caller.

What it may not be used for:

- **Forgery**: without the secret nothing opens or seals; a resume token or
  a stream ticket (other keys, other kinds) is not one.
- **Replay**: it names the process or replica it is sent to (as the resume
  token names it: a replica's ``--advertise-address``, a process's socket),
  expires ``TTL_S`` after it is made (it is used at once; the margin is for
  replicas' clocks), and is claimed once where it lands (within a replica,
  across its processes too: ``auth/single_use.py``).
- **Scope**: it is accepted on ``Interpret`` only, the caller's scopes are
  checked as for any caller, an API key revoked since is refused, and the
  stream may only resume the session it was made for
  (``Caller.relayed_for``): no new session, no other session.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from tongyeok_server.auth.authenticator import Refusal
from tongyeok_server.auth.caller import Caller, caller_claims, caller_from_claims
from tongyeok_server.auth.single_use import SingleUse
from tongyeok_server.session.resume_token import InvalidResumeToken, ResumeTokens

RELAYED_CALLER_HEADER = "x-tongyeok-relayed-caller"
#: How long a vouch may take to arrive (it is sent at once; replicas' clocks may differ by a few seconds).
TTL_S = 30.0


def _refusal(message: str) -> Refusal:
    return Refusal(grpc.StatusCode.UNAUTHENTICATED, message, "relayed_caller")


class RelayedCallers:
    """Vouches for callers on relays from this process, and checks the vouches of relays to it."""

    def __init__(self, resume_secret: bytes, here: Sequence[str], runtime_dir: str = "") -> None:
        """``here``: the names relays reach this process by (its replica's advertise address, its socket).

        ``runtime_dir``: the ``--processes`` supervisor's directory, where its
        processes remember the vouches they took (one replica, one claim).
        """
        # A key of its own: a vouch is never a resume token or a ticket, nor the other way round.
        self._seal = ResumeTokens(hashlib.sha256(b"tongyeok relayed caller\0" + resume_secret).digest())
        self._here = frozenset(name for name in here if name)
        directory = Path(runtime_dir) / "relayed" if runtime_dir else None
        self._used = SingleUse("relayed", TTL_S + 30.0, directory)

    def vouch(self, caller: Caller, to: str, session_id: str) -> str:
        """The header's value: ``caller`` may resume ``session_id`` at ``to`` (the address relayed to)."""
        claims = {
            "k": "relayed",
            "id": secrets.token_urlsafe(16),
            **caller_claims(caller),
            "to": to,
            "sid": session_id,
            "exp": time.time() + TTL_S,
        }
        return self._seal.seal(claims)

    def caller(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller | None:
        """The caller a relay's header vouches for (None without the header); raises ``Refusal``."""
        values = [v for k, v in (metadata or ()) if k == RELAYED_CALLER_HEADER]
        if not values:
            return None
        if len(values) > 1:
            raise _refusal(f"the call carries {len(values)} {RELAYED_CALLER_HEADER} headers")
        value = values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
        try:
            claims = self._seal.open(value)
        except InvalidResumeToken:
            raise _refusal(f"{RELAYED_CALLER_HEADER} was not made by this deployment (forged or altered)") from None
        if claims.get("k") != "relayed":
            raise _refusal(f"{RELAYED_CALLER_HEADER} was not made by this deployment (forged or altered)")
        if claims.get("to") not in self._here:
            raise _refusal(f"{RELAYED_CALLER_HEADER} was made for another server of the deployment")
        if time.time() > float(claims.get("exp", 0)):
            raise _refusal(f"{RELAYED_CALLER_HEADER} expired; the caller can resume again")
        if not self._used.claim(str(claims.get("id", ""))):
            raise _refusal(f"{RELAYED_CALLER_HEADER} was already used; the caller can resume again")
        return caller_from_claims(claims, relayed_for=str(claims.get("sid", "")) or "-")
