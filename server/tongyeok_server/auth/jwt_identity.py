"""Who a JWT names: the exact (``iss``, ``sub``) pair, and the caller id derived from it without collisions.

A caller id goes into logs, limit counters, the meeting record (its owner)
and resume tokens, so it must be short and safe to print, and two
different callers must never get the same one. ``jwt:<issuer>:<subject>``:

- *issuer*: 8 base32 letters of the SHA-256 of ``iss``. The same subject
  from another issuer is another person (an operator who changes identity
  provider gets new users); an issuer is the operator's choice, never a
  client's, so 40 bits keep the few an operator ever has apart.
- *subject*: the exact ``sub``, percent-encoded (UTF-8) except for letters,
  digits and ``. _ - @ +``: ``user-4711`` and ``alice@example.com`` read as
  they are, ``o'brien`` is ``o%27brien`` and can no longer meet ``o_brien``.
  Percent-encoding is reversible, so different subjects give different
  labels. A label longer than 64 characters is cut to its first 40 and
  followed by ``~`` and 130 bits of the SHA-256 of (``iss``, ``sub``):
  ``~`` never appears in an encoded subject, so a cut label cannot equal a
  whole one, and two long subjects that share their beginning differ in the
  hash.

Before issue 24 the id was ``jwt:`` and the ``sub`` with any other character
replaced by ``_``, cut to 64 characters: ``o_brien`` and ``o'brien`` were one
caller. ``legacy_subject`` tells which of those old ids named exactly one
subject, for relabelling the meeting record
(``python -m tongyeok_server.store relabel-jwt-callers``), and
``legacy_id`` gives a caller its old id when that id named only it, so that
a resume token sealed before the upgrade still resumes its session (a
meeting in flight during a rolling upgrade goes on); one that several
subjects shared resumes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import quote

PREFIX = "jwt:"
MAX_SUBJECT_LABEL = 64
_CUT_TO = 40
# A caller id of this form, whatever the issuer (for telling them from the ids made before issue 24).
CURRENT_FORM = re.compile(r"^jwt:[a-z2-7]{8}:")
# The old label kept these characters and replaced any other with "_".
_LEGACY_KEPT = re.compile(r"^[A-Za-z0-9.:@+-]+$")


def _base32(data: bytes, length: int) -> str:
    return base64.b32encode(data).decode().lower()[:length]


def issuer_label(issuer: str) -> str:
    """The issuer part of a caller id: 8 base32 letters of its SHA-256."""
    return _base32(hashlib.sha256(issuer.encode("utf-8", "surrogatepass")).digest(), 8)


def subject_label(issuer: str, subject: str) -> str:
    """The subject part of a caller id (see the module docstring)."""
    # quote() leaves letters, digits and "_.-~" alone; "~" is encoded here too: it marks a cut label.
    encoded = quote(subject, safe="@+", errors="surrogatepass").replace("~", "%7E")
    if len(encoded) <= MAX_SUBJECT_LABEL:
        return encoded
    head = encoded[:_CUT_TO]
    escape = head.rfind("%", len(head) - 2)
    if escape != -1:
        head = head[:escape]  # never half an escape
    pair = json.dumps([issuer, subject], ensure_ascii=True).encode()
    return f"{head}~{_base32(hashlib.sha256(pair).digest(), 26)}"


def caller_id(issuer: str, subject: str) -> str:
    """The caller id of the JWT subject ``subject`` of ``issuer``: different pairs, different ids."""
    return f"{PREFIX}{issuer_label(issuer)}:{subject_label(issuer, subject)}"


def legacy_id(subject: str) -> str:
    """The id ``subject`` had before issue 24 if no other subject had it, else ``""``."""
    candidate = PREFIX + subject
    return candidate if legacy_subject(candidate) == subject else ""


def legacy_subject(caller: str) -> str | None:
    """The exact ``sub`` an id made before issue 24 stood for, or None if it is not one or could stand for several.

    Such an id is ``jwt:`` and the subject with characters outside
    ``A-Za-z0-9._:@+-`` replaced by ``_`` and cut to 64: one with no ``_``
    and shorter than 64 was made from exactly that subject.
    """
    if not caller.startswith(PREFIX) or CURRENT_FORM.match(caller):
        return None
    subject = caller[len(PREFIX) :]
    if len(subject) >= MAX_SUBJECT_LABEL or not _LEGACY_KEPT.match(subject):
        return None
    return subject
