"""Test callers with real API keys: a keys file the server reads, and each caller's bearer metadata.

``Callers(path).add("alice", "interpret", "transcripts")`` makes a key for
``key:alice`` with those scopes (limits off, so tests are not throttled);
pass ``api_keys=str(callers.path)`` to the server and
``metadata=callers["alice"]`` to each call.
"""

from __future__ import annotations

from pathlib import Path

from tongyeok_server.auth.api_keys import hash_key, new_key

Metadata = tuple[tuple[str, str], ...]
ALL_BUT_ADMIN = ("interpret", "translate", "transcripts")


class Callers:
    """Named callers and their keys, written to ``path`` as the server's keys file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, str] = {}
        self._lines: list[str] = []

    def add(self, name: str, *scopes: str) -> Metadata:
        """A caller ``key:<name>`` with ``scopes`` (default: all but transcripts:admin); returns its metadata."""
        key = new_key()
        self._keys[name] = key
        self._lines.append(
            f"{name} {hash_key(key)} {','.join(scopes or ALL_BUT_ADMIN)} streams=0 per_minute=0 hours_per_day=0"
        )
        self.path.write_text("\n".join(self._lines) + "\n")
        return self[name]

    def __getitem__(self, name: str) -> Metadata:
        return (("authorization", f"Bearer {self._keys[name]}"),)
