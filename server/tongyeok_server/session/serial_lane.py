"""Jobs that must run one after another, on threads shared with other lanes."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

log = logging.getLogger(__name__)


class SerialLane:
    """Runs submitted jobs in order, one at a time, on a shared executor.

    A session has one lane per target language: sentence N's translation
    into Spanish finishes before sentence N+1's starts (so N is context for
    N+1 and tokens never interleave within a language), while different
    languages and different sessions run in parallel. No thread is held
    while a lane is idle.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._jobs: deque[Callable[[], None]] = deque()
        self._running = False
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; it runs after every job submitted before it."""
        with self._lock:
            self._jobs.append(job)
            if self._running:
                return
            self._running = True
        self._executor.submit(self._drain)

    def clear(self) -> list[Callable[[], None]]:
        """Drop the jobs not yet started and return them."""
        with self._lock:
            dropped = list(self._jobs)
            self._jobs.clear()
        return dropped

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # a job's failure must not stall the jobs behind it
                log.exception("translation job failed")
