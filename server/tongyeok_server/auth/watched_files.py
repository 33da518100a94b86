"""Configuration read from files that operators (or cert-manager) replace while the server runs.

Certificates, API keys and JWKS all follow the same rule: the value in
force is re-read when its files change (checked by ``stat``, at most once
per ``check_interval_s``) or when SIGHUP asks for it; a replacement that
cannot be used (half-written, malformed) leaves the previous value in
force, with one warning per distinct problem, and is tried again later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
Identity = tuple[tuple[int, int, int], ...]

log = logging.getLogger(__name__)


class FileConfigError(Exception):
    """A configuration file cannot be used; the message names the file and says why."""


def identity(paths: Sequence[Path]) -> Identity:
    """What tells a replaced file from the one loaded: inode, size and mtime of each."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as e:
            raise FileConfigError(f"cannot read {path}: {e.strerror}") from None
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class WatchedFiles(Generic[T]):
    """A value loaded from ``paths`` and kept current (see the module docstring)."""

    def __init__(
        self,
        what: str,
        paths: Sequence[Path],
        load: Callable[[], T],
        describe: Callable[[T], str],
        check_interval_s: float = 1.0,
    ) -> None:
        """Load now; raises ``FileConfigError`` (or the loader's own subclass of it) if the files are unusable."""
        self.what = what
        self._paths = tuple(paths)
        self._load = load
        self._describe = describe
        self._interval = check_interval_s
        self._lock = threading.Lock()
        self._identity = identity(self._paths)
        self._value = load()
        self._checked_at = time.monotonic()
        self._force = False
        self._last_problem = ""
        #: How many times a changed value was taken into use.
        self.reloads = 0
        log.info("%s: %s", what, describe(self._value))

    def request_reload(self) -> None:
        """Re-read at the next use even if the files look unchanged (SIGHUP)."""
        self._force = True

    def current(self) -> T:
        """The value in force, re-read first if the files changed."""
        now = time.monotonic()
        if self._force or now - self._checked_at >= self._interval:
            self._refresh(now)
        return self._value

    def _refresh(self, now: float) -> None:
        with self._lock:
            if not self._force and now - self._checked_at < self._interval:
                return  # another thread just did it
            self._checked_at = now
            try:
                ident = identity(self._paths)
                if ident == self._identity and not self._force:
                    return
                value = self._load()
            except FileConfigError as e:
                if str(e) != self._last_problem:
                    self._last_problem = str(e)
                    log.warning("%s changed but cannot be used yet; the previous one stays in force: %s", self.what, e)
                return
            self._force, self._last_problem, self._identity = False, "", ident
            self._value = value
            self.reloads += 1
            log.info("%s reloaded: %s", self.what, self._describe(value))
