"""API keys for backends: a file of key ids and key hashes, re-read when it changes.

One key per line::

    # id         hash                                                                     scopes               limits (optional)
    crm-backend  sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  interpret,translate  streams=50 per_minute=300 hours_per_day=200
    expense-app  sha256:...  expenses  scans_per_minute=20

The file holds the SHA-256 of each key, never the key: a key is 32 random
bytes (``tongyeok-keys new`` makes one), so a fast hash is as safe as a
slow one and costs one microsecond per call. A key is looked up by its
hash, so an unknown key costs the same as a known one. Editing the file
(or SIGHUP) takes effect for new calls within a second, without a restart:
a removed line is a revoked key, and the streams it opened are ended
within a few seconds (``Authenticator.revoked``, asked by the stream
watchdog): their last sentence is finished, then UNAUTHENTICATED. A file that does not parse keeps the keys
in force and says which line and which field is wrong, and why, never what
the field holds: a key pasted into the wrong column would otherwise reach
the log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from tongyeok_server.auth.caller import Caller, CallerKind, Quota, Scope
from tongyeok_server.auth.watched_files import FileConfigError, WatchedFiles

#: Prefix of the keys ``tongyeok-keys new`` makes; lets scanners and people recognise a Tongyeok key.
KEY_PREFIX = "tyk_"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")
_QUOTA_FIELDS = {
    "streams": "max_streams",
    "per_minute": "streams_per_minute",
    "hours_per_day": "audio_hours_per_day",
    "scans_per_minute": "scans_per_minute",
}


class ApiKeyFileError(FileConfigError):
    """The keys file cannot be used; the message names the file and line."""


def hash_key(key: str) -> str:
    """The form of ``key`` that goes into the keys file."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    """One line of the keys file."""

    key_id: str
    scopes: frozenset[Scope]
    quota: Quota
    digest: str = ""  # its line's sha256:...

    def caller(self) -> Caller:
        """The caller this key authenticates."""
        return Caller(f"key:{self.key_id}", CallerKind.API_KEY, self.scopes, self.quota, credential=self.digest)


def _parse_scopes(text: str, where: str) -> frozenset[Scope]:
    scopes = set()
    for n, word in enumerate(text.split(","), 1):
        try:
            scopes.add(Scope(word.strip()))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ApiKeyFileError(
                f"{where}: scope {n} of the third field is not a scope; known scopes: {known}, comma-separated"
            ) from None
    return frozenset(scopes)


def _parse_quota(fields: list[str], where: str) -> Quota:
    values: dict[str, float] = {}
    for n, item in enumerate(fields, 4):
        name, sep, value = item.partition("=")
        if not sep or name not in _QUOTA_FIELDS:
            raise ApiKeyFileError(
                f"{where}: field {n} is not a limit; use {', '.join(k + '=N' for k in _QUOTA_FIELDS)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ApiKeyFileError(f"{where}: field {n} ({name}=) is not a number") from None
        if number < 0 or number != number:
            raise ApiKeyFileError(f"{where}: field {n} ({name}=) is negative; 0 means unlimited")
        values[_QUOTA_FIELDS[name]] = number
    return Quota(
        max_streams=int(values["max_streams"]) if "max_streams" in values else None,
        streams_per_minute=int(values["streams_per_minute"]) if "streams_per_minute" in values else None,
        audio_hours_per_day=values.get("audio_hours_per_day"),
        scans_per_minute=int(values["scans_per_minute"]) if "scans_per_minute" in values else None,
    )


def parse(text: str, source: str = "the keys file") -> dict[str, ApiKey]:
    """Parse a keys file; returns {key hash: key}. Raises ``ApiKeyFileError``."""
    keys: dict[str, ApiKey] = {}
    ids: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {number}"
        fields = line.split()
        if len(fields) < 3:
            raise ApiKeyFileError(f"{where}: expected `ID sha256:HASH SCOPES [LIMITS...]`, got {len(fields)} field(s)")
        key_id, digest, scopes = fields[:3]
        if key_id.startswith(KEY_PREFIX):
            # A key's own shape passes as an id, and the id is in every log line of the caller.
            raise ApiKeyFileError(
                f"{where}: the first field is a key, not a key id (it starts with {KEY_PREFIX}); the file holds "
                "ids and hashes, never keys: see `tongyeok-keys hash`"
            )
        if not _ID.match(key_id):
            raise ApiKeyFileError(
                f"{where}: the first field (the key's id) must be 1-63 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit"
            )
        if key_id in ids:
            raise ApiKeyFileError(f"{where}: the key id is the one of line {ids[key_id]}; each key needs its own")
        match = _HASH.match(digest)
        if match is None:
            hint = (
                " (the file holds the key's hash, not the key: see `tongyeok-keys hash`)"
                if "sha256" not in digest
                else ""
            )
            raise ApiKeyFileError(f"{where}: the second field must be sha256:<64 hex digits>{hint}")
        if digest in keys:
            raise ApiKeyFileError(f"{where}: the hash is the one of line {ids[keys[digest].key_id]}; one line per key")
        ids[key_id] = number
        keys[digest] = ApiKey(key_id, _parse_scopes(scopes, where), _parse_quota(fields[3:], where), digest)
    return keys


class ApiKeyStore:
    """The keys of one file, kept current (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        """Load ``path`` now; raises ``ApiKeyFileError`` if it cannot be used."""
        self.path = path
        self._keys = WatchedFiles("API keys", [path], self._read, lambda keys: f"{len(keys)} key(s) from {path}")

    def _read(self) -> dict[str, ApiKey]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ApiKeyFileError(f"cannot read the keys file {self.path}: {e}") from None
        return parse(text, str(self.path))

    def request_reload(self) -> None:
        """Re-read the file at the next call (SIGHUP)."""
        self._keys.request_reload()

    def lookup(self, key: str) -> ApiKey | None:
        """The key's entry, or None if it is not (or no longer) in the file."""
        return self._keys.current().get(hash_key(key))

    def holds(self, digest: str) -> bool:
        """Whether the key of hash ``digest`` is still in the file (re-read if it changed)."""
        return digest in self._keys.current()
