"""Ids that may be used once: stream tickets and relayed-caller credentials are claimed here at their use.

Three places can remember a claim, each wider than the last:

- this process's memory (always);
- a directory shared by the processes of one ``--processes`` supervisor
  (an exclusive file per id, ``O_EXCL``: exact between processes);
- the ``--limits-storage`` the replicas already share for the per-caller
  limits (``redis://...``): a fixed window of one use per id, atomic in
  Redis, so a ticket copied within its minute opens one socket across every
  replica, not one per replica.

While that storage cannot be reached, its windows are counted in this
process (``limit_windows``: fail open, a warning for the operator, tried
again every few seconds): a claim then holds within this replica (memory
and directory still count) and a copied ticket could be used once more on
each other replica within its minute. The choice is the limits' own: a
Redis outage must not stop every new meeting and every resume (each needs a
fresh ticket), and what it lets through is bounded by the ticket's minute,
its caller and its origin.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from pathlib import Path

from limits import RateLimitItemPerMinute

from tongyeok_server.auth.limit_windows import LimitWindows

# Ids are ours (random, sealed inside what carries them); anything else never names a file.
_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class SingleUse:
    """Remembers claimed ids for ``keep_s`` (longer than what they name lives); ``claim`` is True only once."""

    def __init__(
        self,
        namespace: str,
        keep_s: float,
        directory: Path | None = None,
        shared: LimitWindows | None = None,
    ) -> None:
        """``directory``: shared by the processes of one supervisor; ``shared``: the replicas' limits storage."""
        self._keep_s = keep_s
        self._directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._shared = shared
        # One use per id in a window that starts at the first use and outlasts the id's validity.
        self._once = RateLimitItemPerMinute(1, max(1, int(keep_s // 60) + 1), namespace=f"tongyeok-{namespace}")
        self._claimed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._last_purge = time.monotonic()

    def claim(self, claim_id: str) -> bool:
        """Mark ``claim_id`` used; False if it already was (here, by a sibling process, or on another replica)."""
        if not _ID.fullmatch(claim_id):
            return False
        now = time.monotonic()
        with self._lock:
            if now - self._last_purge > self._keep_s:
                self._purge(now)
            if claim_id in self._claimed:
                return False
            if self._directory is not None and not self._claim_file(claim_id):
                return False
            self._claimed[claim_id] = now
        # Outside the lock: a call to Redis waits at most limit_windows.TIMEOUT_S.
        return self._shared is None or self._shared.hit_fixed(self._once, claim_id)

    def _claim_file(self, claim_id: str) -> bool:
        assert self._directory is not None
        try:
            os.close(os.open(self._directory / claim_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as e:
            if e.errno == errno.EEXIST:
                return False
            raise
        return True

    def _purge(self, now: float) -> None:
        self._last_purge = now
        self._claimed = {k: t for k, t in self._claimed.items() if now - t < self._keep_s}
        if self._directory is not None:
            cutoff = time.time() - self._keep_s
            for path in self._directory.iterdir():
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                except OSError:
                    pass  # another process purged it first
