"""From a call's ``authorization`` metadata to a ``Caller``, or the reason it is refused.

A call carries ``authorization: Bearer <token>``. A token with three
dot-separated parts is a JWT (checked by ``JwtVerifier``); anything else is
an API key (looked up in ``ApiKeyStore``). Refusals say what to send and
never quote the token: a message may end up in a client's log, and a
token in a log is a leaked token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from tongyeok_server.auth.api_keys import ApiKeyStore
from tongyeok_server.auth.caller import Caller
from tongyeok_server.auth.jwt_tokens import JwtVerifier, TokenRejected
from tongyeok_server.errors import ServiceError

_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_WHAT_TO_SEND = "send the metadata `authorization: Bearer <API key or JWT>`"


@dataclass(frozen=True)
class Refusal(Exception):
    """The call is refused: ``code`` (UNAUTHENTICATED or PERMISSION_DENIED) and a message for a person."""

    code: grpc.StatusCode
    message: str
    reason: str  # short, for logs and metrics: "missing", "malformed", "unknown_key", "invalid_jwt", "scope"


class Authenticator:
    """Checks bearer tokens against the configured API keys and/or JWT issuer."""

    def __init__(self, api_keys: ApiKeyStore | None, jwt_verifier: JwtVerifier | None) -> None:
        """At least one of the two must be given."""
        if api_keys is None and jwt_verifier is None:
            raise ValueError("an Authenticator needs API keys, a JWT verifier, or both")
        self.api_keys = api_keys
        self.jwt = jwt_verifier
        kinds = [k for k, on in (("an API key", api_keys), ("a JWT", jwt_verifier)) if on is not None]
        self._accepts = " or ".join(kinds)

    def request_reload(self) -> None:
        """Re-read keys files at the next call (SIGHUP)."""
        if self.api_keys is not None:
            self.api_keys.request_reload()
        if self.jwt is not None:
            self.jwt.request_reload()

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
        """The caller the call's metadata proves; raises ``Refusal``."""
        values = [v for k, v in (metadata or ()) if k == "authorization"]
        if not values:
            raise self._unauthenticated("missing", f"this server requires a token: {_WHAT_TO_SEND}")
        if len(values) > 1:
            raise self._unauthenticated("malformed", f"the call carries {len(values)} authorization headers; send one")
        value = values[0]
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._unauthenticated(
                "malformed", f"the authorization metadata must be `Bearer <token>` ({_WHAT_TO_SEND})"
            )
        if _JWT_SHAPE.match(token):
            if self.jwt is None:
                raise self._unauthenticated(
                    "invalid_jwt", f"this server does not accept JWTs; send {self._accepts} as the bearer token"
                )
            try:
                return self.jwt.verify(token)
            except TokenRejected as e:
                raise self._unauthenticated("invalid_jwt", f"the bearer JWT is refused: {e}") from None
        if self.api_keys is None:
            raise self._unauthenticated(
                "unknown_key", "this server accepts only JWTs as bearer tokens; the token sent is not a JWT"
            )
        key = self.api_keys.lookup(token)
        if key is None:
            raise self._unauthenticated(
                "unknown_key", "the API key is not known to this server (revoked, mistyped, or for another server)"
            )
        return key.caller()

    def revoked(self, caller: Caller) -> ServiceError | None:
        """The error that ends the open streams of ``caller`` if its API key was revoked since (None if it holds).

        Why end them: a key is revoked because it leaked or its holder must
        stop, and a stream may otherwise run for --max-stream-duration. A
        JWT is checked when a call starts only: tokens are short-lived and
        their expiry mid-meeting is no revocation.
        """
        if not caller.credential or self.api_keys is None or self.api_keys.holds(caller.credential):
            return None
        return ServiceError(
            grpc.StatusCode.UNAUTHENTICATED,
            f"the API key of {caller.id} was revoked while this stream was open; the last sentence was finished. "
            "Open a new stream with a valid key",
        )

    @staticmethod
    def _unauthenticated(reason: str, message: str) -> Refusal:
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, message, reason)
