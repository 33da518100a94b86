"""AIP-158 page tokens for ListSessions: opaque to callers, signed so that a changed one is refused.

A token carries where the previous page ended (start time and id of its
last session, the keyset of the newest-first order) and a digest of what
the listing was for (the caller it was made for and the filter), signed
with HMAC-SHA256 under a key kept in the store (so every replica accepts
every other's tokens). A token used with another filter, by another caller,
or altered in any bit is INVALID_ARGUMENT, never a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from tongyeok_server.store.queries import PagePosition

_MAC_BYTES = 16


class PageTokenError(ValueError):
    """The token was not made by this store for this listing."""


def binding(*parts: object) -> str:
    """A digest of what a listing is for (owner and filter fields), stored in its tokens."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def encode(key: bytes, position: PagePosition, bound_to: str) -> str:
    """A token for the page after ``position``."""
    return encode_fields(key, {"t": position.started_at.isoformat(), "i": position.session_id}, bound_to)


def encode_fields(key: bytes, fields: dict[str, str | None], bound_to: str) -> str:
    """A token carrying ``fields`` (where a keyset page ended) for the listing ``bound_to`` names."""
    payload = json.dumps({**fields, "b": bound_to}, separators=(",", ":")).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()


def decode(key: bytes, token: str, bound_to: str) -> PagePosition:
    """The position ``token`` carries.

    Raises:
        PageTokenError: a token that is malformed, altered, or from a listing with other filters.

    """
    fields = decode_fields(key, token, bound_to)
    return PagePosition(datetime.fromisoformat(str(fields["t"])), str(fields["i"]))


def decode_fields(key: bytes, token: str, bound_to: str) -> dict[str, str | None]:
    """The fields ``token`` carries (see ``decode``)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise PageTokenError("page_token is not a token this server made; pass next_page_token as it came") from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
        raise PageTokenError("page_token is not a token this server made; pass next_page_token as it came")
    fields = json.loads(payload)
    if fields["b"] != bound_to:
        raise PageTokenError(
            "page_token belongs to a listing with other filters (or another caller): "
            "repeat the filter fields of the first page, or start again without page_token"
        )
    return {k: v for k, v in fields.items() if k != "b"}
