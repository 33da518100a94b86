"""Resume tokens: opaque, unguessable, tamper-proof, bound to a caller.

A token is the session's claims (its id, the caller it belongs to, where it
lives, and, for a session that moves, everything it needs to continue)
as JSON, compressed, and sealed with AES-256-GCM under the server's resume
secret: a client can neither read nor forge one, and a token from another
deployment (another secret) does not open. Every process and replica that
should resume each other's sessions shares the secret (``--resume-secret``;
``--processes`` shares one of its own making); without it each process has
a random secret and its tokens open only there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import zlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "tyr1."
_AAD = b"tongyeok resume token v1"
SECRET_BYTES = 32
#: A token carrying a moving session's sentences may be large; bound what is opened.
MAX_TOKEN_CHARS = 256 * 1024


class InvalidResumeToken(Exception):
    """The token was not issued by this service (or was altered)."""


def load_secret(path: str) -> bytes:
    """The key made from the secret in ``path`` (32+ bytes, raw or base64). Raises ``ValueError``."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the resume secret {path}: {e.strerror}") from None
    raw = data.strip()  # a text secret's trailing newline is not part of it
    try:
        material = base64.b64decode(raw, validate=True)
    except binascii.Error:
        # Raw random bytes may begin or end with what strip() takes for whitespace (1 file in ~8 made
        # with `head -c 32 /dev/urandom`): such a file is its bytes as they are.
        material = raw if len(raw) >= SECRET_BYTES else data
    if len(material) < SECRET_BYTES:
        raise ValueError(
            f"the resume secret {path} holds {len(material)} bytes; at least {SECRET_BYTES} are needed "
            "(make one with: head -c 32 /dev/urandom | base64 > FILE)"
        )
    # One key of the right size, whatever the file's form, and never the file's bytes themselves.
    return hashlib.sha256(b"tongyeok resume secret\0" + material).digest()


def new_secret() -> bytes:
    """A fresh random secret."""
    return secrets.token_bytes(SECRET_BYTES)


class ResumeTokens:
    """Seals and opens tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"a resume secret has {SECRET_BYTES} bytes")
        self._aead = AESGCM(secret)

    def seal(self, claims: dict[str, Any]) -> str:
        """The token for ``claims`` (JSON-able)."""
        nonce = os.urandom(12)
        body = zlib.compress(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode(), 6)
        sealed = self._aead.encrypt(nonce, body, _AAD)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, token: str) -> dict[str, Any]:
        """The claims of a token this service sealed; raises ``InvalidResumeToken`` otherwise."""
        if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS:
            raise InvalidResumeToken("not a Tongyeok resume token")
        try:
            body64 = token[len(PREFIX) :]
            data = base64.urlsafe_b64decode(body64 + "=" * (-len(body64) % 4))
            body = self._aead.decrypt(data[:12], data[12:], _AAD)
            claims = json.loads(zlib.decompress(body, bufsize=1 << 16))
        except Exception:  # bad base64, a tag that does not verify, garbage inside: all the same to the caller
            raise InvalidResumeToken("not issued by this service, or altered") from None
        if not isinstance(claims, dict):
            raise InvalidResumeToken("not issued by this service, or altered")
        return claims
