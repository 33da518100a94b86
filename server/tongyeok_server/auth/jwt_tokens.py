"""JWTs for mobile apps, issued by the operator's own backend, verified against a JWKS file.

The operator's backend signs a short-lived token for each app user
(``tools/issue_token.py`` is an example issuer); the app sends it as a
bearer token. The server checks the signature against the public keys in
``--jwt-jwks`` (a JSON Web Key Set file, re-read when it changes, so keys
can be rotated by publishing the new key before signing with it), the
issuer (``--jwt-issuer``), the audience (``--jwt-audience``), expiry and
not-before with ``--jwt-leeway`` seconds of clock skew, a lifetime of at
most ``--jwt-max-lifetime`` (a day by default: a leaked token with an
``exp`` in 2100 would otherwise be good for ever), and requires a
subject (the caller id is ``jwt:<issuer>:<sub>``, see ``jwt_identity``). Scopes are the space-separated
``scope`` claim (RFC 9068; an ``scp`` list is accepted too). Only
asymmetric algorithms are accepted, each key only with its own algorithm,
so a token cannot pick ``none``, an HMAC keyed with a public key, or
another key's algorithm. PyJWT does the cryptography.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from tongyeok_server.auth.caller import Caller, CallerKind, Scope
from tongyeok_server.auth.jwt_identity import caller_id, legacy_id
from tongyeok_server.auth.watched_files import FileConfigError, WatchedFiles

log = logging.getLogger(__name__)

_ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
MAX_TOKEN_BYTES = 8192
HEADER_RULES = (
    "the token's header is not one this server accepts: `alg` and `kid` must be strings, and no `crit` "
    "extension is supported"
)


class JwksFileError(FileConfigError):
    """The JWKS file cannot be used."""


class TokenRejected(Exception):
    """The token is not acceptable; the message says why without quoting the token."""


@dataclass(frozen=True)
class JwtSettings:
    """What a valid token must say."""

    jwks: Path
    issuer: str
    audience: str
    leeway_s: float = 30.0
    #: The longest a token may be valid, from its ``nbf`` or ``iat`` (the earlier) to its ``exp``; 0: no maximum.
    max_lifetime_s: float = 86400.0


def _load_keys(path: Path) -> dict[str, jwt.PyJWK]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise JwksFileError(f"cannot read the JWKS file {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise JwksFileError(f"the JWKS file {path} is not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise JwksFileError(f'the JWKS file {path} must be {{"keys": [...]}} with at least one public key')
    keys: dict[str, jwt.PyJWK] = {}
    for i, jwk in enumerate(data["keys"]):
        where = f"{path} key {i}"
        if not isinstance(jwk, dict):
            raise JwksFileError(f"{where} is not a JSON object")
        if "d" in jwk or jwk.get("kty") == "oct":
            raise JwksFileError(f"{where} is a private or symmetric key; the JWKS file holds public keys only")
        try:
            key = jwt.PyJWK(jwk)
        except jwt.PyJWKError as e:
            raise JwksFileError(f"{where}: {e}") from None
        if key.algorithm_name not in _ASYMMETRIC:
            raise JwksFileError(f"{where}: algorithm {key.algorithm_name} is not accepted (asymmetric only)")
        kid = key.key_id or ""
        if kid in keys:
            raise JwksFileError(f"{where}: key id {kid!r} appears twice")
        keys[kid] = key
    return keys


class JwtVerifier:
    """Verifies bearer JWTs (see the module docstring)."""

    def __init__(self, settings: JwtSettings) -> None:
        """Load the JWKS now; raises ``JwksFileError`` if it cannot be used."""
        if not settings.issuer or not settings.audience:
            raise JwksFileError("--jwt-jwks needs --jwt-issuer and --jwt-audience: a token must name both")
        self.settings = settings
        self._keys = WatchedFiles(
            "JWT keys",
            [settings.jwks],
            lambda: _load_keys(settings.jwks),
            lambda keys: (
                f"{len(keys)} key(s) from {settings.jwks}, issuer {settings.issuer}, audience {settings.audience}"
            ),
        )

    def request_reload(self) -> None:
        """Re-read the JWKS at the next call (SIGHUP)."""
        self._keys.request_reload()

    def verify(self, token: str) -> Caller:
        """The caller a valid token names; raises ``TokenRejected`` (and nothing else, whatever the token holds)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRejected(f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        keys = self._keys.current()
        try:
            return self._verify(token, keys)
        except TokenRejected:
            raise
        except Exception:
            # PyJWT parses what any client sends. Whatever it raises beyond its documented errors (a header
            # or claim of a type it did not expect) is a malformed token, refused like one: counted and
            # throttled at the edge, never a traceback per call.
            log.debug("a JWT could not be checked; refused as malformed", exc_info=True)
            raise TokenRejected("the token is not a well-formed JWT") from None

    def _verify(self, token: str, keys: dict[str, jwt.PyJWK]) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenRejected("the token is not a well-formed JWT") from None
        except jwt.InvalidTokenError:
            # Raised past the syntax: a `kid` that is not a string, a `crit` extension PyJWT does not implement.
            raise TokenRejected(HEADER_RULES) from None
        kid = header.get("kid") or ""
        alg = header.get("alg")
        if not isinstance(kid, str) or not isinstance(alg, str) or "crit" in header:
            raise TokenRejected(HEADER_RULES)
        key = keys.get(kid) if kid or len(keys) != 1 else next(iter(keys.values()))
        if key is None:
            raise TokenRejected(
                f"the token was signed with a key this server does not know (kid {_quoted(kid)}); "
                "the issuer's public key must be in the server's JWKS file"
                if kid
                else "the token names no key (kid) and the server has several"
            )
        if alg != key.algorithm_name:
            raise TokenRejected(f"the token's algorithm {_quoted(alg)} is not its key's ({key.algorithm_name})")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm_name],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected(
                f"the token expired at {_claim_time(token, 'exp')}; get a new one from your backend"
            ) from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected(
                f"the token is not valid before {_claim_time(token, 'nbf')} (check the issuer's clock)"
            ) from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(
                f"the token is for another audience; this server accepts aud {self.settings.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRejected(
                f"the token comes from another issuer; this server accepts iss {self.settings.issuer!r}"
            ) from None
        except jwt.MissingRequiredClaimError as e:
            raise TokenRejected(f"the token has no {e.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("the token's signature does not verify against the server's keys") from None
        except jwt.InvalidTokenError as e:
            raise TokenRejected(f"the token is not valid ({type(e).__name__})") from None
        self._check_lifetime(claims)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("the token's 'sub' claim must be a non-empty string")
        issuer = str(claims["iss"])
        return Caller(caller_id(issuer, subject), CallerKind.JWT, _scopes(claims), legacy_id=legacy_id(subject))

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """Refuse a token valid for longer than ``max_lifetime_s``: from its nbf or iat, or from now if it has neither."""
        limit = self.settings.max_lifetime_s
        if limit <= 0:
            return
        # PyJWT has checked that each of these, when present, is a number.
        starts = [float(claims[c]) for c in ("nbf", "iat") if c in claims]
        start = min(starts) if starts else time.time()
        lifetime = float(claims["exp"]) - start
        if lifetime > limit:
            raise TokenRejected(
                f"the token is valid for {_span(lifetime)}, longer than this server accepts ({_span(limit)}, "
                "--jwt-max-lifetime); have your backend issue shorter-lived tokens"
            )


def _span(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _scopes(claims: dict[str, Any]) -> frozenset[Scope]:
    raw = claims.get("scope", claims.get("scp", ""))
    words = (
        raw.split() if isinstance(raw, str) else [w for w in raw if isinstance(w, str)] if isinstance(raw, list) else []
    )
    known = {s.value: s for s in Scope}
    return frozenset(known[w] for w in words if w in known)


def _quoted(value: str, limit: int = 40) -> str:
    """A value from the token, quoted for a message, cut short (the token's words, never a secret)."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _claim_time(token: str, claim: str) -> str:
    """A time claim of an already-rejected token, for the message (the token's own words, not its secret)."""
    try:
        value: Any = jwt.decode(token, options={"verify_signature": False}).get(claim)
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (jwt.InvalidTokenError, TypeError, ValueError, OverflowError):
        return "an unreadable time"
