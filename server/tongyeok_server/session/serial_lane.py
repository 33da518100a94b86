"""Jobs that must run one after another, as one task on the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Coroutine[Any, Any, None]]


class SerialLane:
    """Runs submitted coroutine jobs in order, one at a time, on the running event loop.

    A session has one lane per target language: sentence N's translation
    into Spanish finishes before sentence N+1's starts (so N is context for
    N+1 and tokens never interleave within a language), while different
    languages and different sessions run in parallel. An idle lane holds
    nothing: its task exists only while it has jobs. Loop only (no locks).
    """

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a job runs or waits."""
        return self._task is not None

    def submit(self, job: Job) -> None:
        """Queue ``job``; it runs after every job submitted before it."""
        self._jobs.append(job)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def clear(self) -> list[Job]:
        """Drop the jobs not yet started and return them (the running one goes on)."""
        dropped = list(self._jobs)
        self._jobs.clear()
        return dropped

    def cancel(self) -> list[Job]:
        """Drop the queued jobs and cancel the running one (its ``finally`` blocks run); returns the dropped."""
        dropped = self.clear()
        if self._task is not None:
            self._task.cancel()
        return dropped

    async def _drain(self) -> None:
        try:
            while self._jobs:
                job = self._jobs.popleft()
                try:
                    await job()
                except Exception:  # a job's failure must not stall the jobs behind it
                    log.exception("lane job failed")
        finally:
            # No await between the empty check and this: a submit() after it starts a new task.
            self._task = None
