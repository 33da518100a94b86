"""The counting windows of the per-caller limits: in ``--limits-storage``, or in this process while it is unreachable.

A shared storage (``redis://...``) makes the per-minute and per-day limits
hold across processes and replicas. When it cannot be reached (stopped,
restarting, a network partition), the limits **fail open to this
process**: they are counted in this process's memory, from zero, until the
storage answers again, and the meetings go on. Why not fail closed: every
new meeting refused and every open one cut because a counter is out of
reach is an outage of the whole service for a fault in its accounting;
counted locally, a caller can at most exceed its limit by what each
process lets through during the outage. The operator gets one warning when
it happens and one line when it is over, and every open stream of a
limited caller a ``LIMITS_LOCAL`` notice, then ``LIMITS_SHARED``
(``on_change``).

Every call to the storage is bounded (``TIMEOUT_S`` to connect and to
answer), because the limits are asked on the server's event loop: a frozen
Redis must cost one short wait, not every stream's audio. After a failure
the storage is tried again at most every ``RETRY_S``; meanwhile no call
waits on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from limits import RateLimitItem, WindowStats, storage, strategies
from limits.errors import StorageError

log = logging.getLogger(__name__)

TIMEOUT_S = 0.25
RETRY_S = 5.0
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")

T = TypeVar("T")


def describe(uri: str) -> str:
    """The storage URI for a log: scheme, host and port, never a password."""
    parts = urlsplit(uri)
    where = parts.hostname or parts.path or ""
    return f"{parts.scheme}://{where}" + (f":{parts.port}" if parts.port else "")


class _Limiters:
    def __init__(self, store: storage.Storage) -> None:
        self.fixed = strategies.FixedWindowRateLimiter(store)
        self.moving = strategies.MovingWindowRateLimiter(store)


class LimitWindows:
    """Fixed and moving windows over the shared storage, or this process's memory meanwhile (see the module)."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        """``storage_uri``: a ``limits`` storage URI; raises the ``limits`` package's errors for a bad one."""
        scheme = urlsplit(storage_uri).scheme
        options: dict[str, float | str | bool] = {}
        if scheme in _REDIS_SCHEMES:
            options = {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}
        self.where = describe(storage_uri)
        shared = storage.storage_from_string(storage_uri, wrap_exceptions=True, **options)
        if not isinstance(shared, storage.Storage):
            raise ValueError(
                f"{self.where} is an asyncio storage; use a synchronous one (redis://, not async+redis://)"
            )
        self._shared = _Limiters(shared)
        self._local = None if scheme == "memory" else _Limiters(storage.MemoryStorage())
        self.shared = True  # the shared storage answers (as far as this process knows)
        self._retry_at = 0.0
        self._listeners: list[Callable[[bool], None]] = []

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(shared)`` when the counting moves to this process (False) or back (True)."""
        self._listeners.append(listener)

    def check(self) -> bool:
        """Whether the shared storage answers now; if not, say so and count in this process until it does.

        At start: a storage that is down is a warning, not a refusal to start
        (the same choice as when it goes away later).
        """
        try:
            answers = bool(self._shared.fixed.storage.check())
        except Exception:  # check() is documented to answer False; some storages raise
            answers = False
        if not answers and self._local is not None:
            self._unreachable(time.monotonic() - RETRY_S, StorageError(ConnectionError("no answer to a check")))
        return answers

    def hit_fixed(self, item: RateLimitItem, key: str, cost: int = 1) -> bool:
        """Count ``cost`` in ``key``'s fixed window; False if that goes over ``item``."""
        return self._use(lambda limiters: limiters.fixed.hit(item, key, cost=cost))

    def fixed_stats(self, item: RateLimitItem, key: str) -> WindowStats:
        """``key``'s fixed window: what remains of ``item`` and when it resets."""
        return self._use(lambda limiters: limiters.fixed.get_window_stats(item, key))

    def hit_moving(self, item: RateLimitItem, key: str) -> bool:
        """Count one in ``key``'s moving window; False if that goes over ``item``."""
        return self._use(lambda limiters: limiters.moving.hit(item, key))

    def moving_stats(self, item: RateLimitItem, key: str) -> WindowStats:
        """``key``'s moving window: what remains of ``item`` and when the oldest hit leaves it."""
        return self._use(lambda limiters: limiters.moving.get_window_stats(item, key))

    def _use(self, call: Callable[[_Limiters], T]) -> T:
        if self._local is None:
            return call(self._shared)
        now = time.monotonic()
        if self.shared or now >= self._retry_at:
            try:
                result = call(self._shared)
            except StorageError as error:
                self._unreachable(now, error)
            else:
                if not self.shared:
                    self._reachable()
                return result
        return call(self._local)

    def _unreachable(self, now: float, error: StorageError) -> None:
        self._retry_at = now + RETRY_S
        if not self.shared:
            return
        self.shared = False
        cause = type(error.storage_error).__name__ if error.storage_error is not None else type(error).__name__
        log.warning(
            "--limits-storage %s cannot be reached (%s): per-caller limits are counted in this process until it "
            "answers (tried again every %g s); meetings go on",
            self.where,
            cause,
            RETRY_S,
            extra={"event": "limits_storage_unreachable"},
        )
        self._tell(False)

    def _reachable(self) -> None:
        self.shared = True
        log.info(
            "--limits-storage %s answers again: per-caller limits are shared again",
            self.where,
            extra={"event": "limits_storage_restored"},
        )
        self._tell(True)

    def _tell(self, shared: bool) -> None:
        for listener in self._listeners:
            try:
                listener(shared)
            except Exception:  # a listener's bug must not break the counting
                log.exception("a listener of the limits storage failed")
