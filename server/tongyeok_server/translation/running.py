"""The translations an engine has running, so that ``close()`` can fail them wherever they wait.

A translation runs in its consumer's task (the session's lane, the
TranslateText job), not in one of the engine's. At shutdown the engine
cancels those tasks and turns its own cancellation into UNAVAILABLE inside
the translation, so the consumer sees a failed translation (never a partial
text taken for a whole one) and the cancellation does not leak into the
consumer's task. A cancellation from anyone else passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc

from tongyeok_server.errors import ServiceError


def shut_down(engine: str) -> ServiceError:
    """The error of a translation cut by (or asked for after) the engine's ``close()``."""
    return ServiceError(grpc.StatusCode.UNAVAILABLE, f"{engine}: the translator is shut down (the server is stopping)")


class RunningTranslations:
    """Tasks inside one of the engine's translations; loop only."""

    def __init__(self, engine: str) -> None:
        self._engine = engine
        self._tasks: set[asyncio.Task[object]] = set()
        self._cut: set[asyncio.Task[object]] = set()  # cancelled by close()
        self.closed = False

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Around a translation's body (in its async generator): raises the shut-down error once closed."""
        if self.closed:
            raise shut_down(self._engine)
        task = asyncio.current_task()
        if task is None:
            yield  # run outside a task (a bare coroutine driven by hand): nothing to cancel
            return
        self._tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if task not in self._cut:
                raise
            task.uncancel()  # ours, not the consumer's: it gets the failure instead
            raise shut_down(self._engine) from None
        finally:
            self._tasks.discard(task)
            self._cut.discard(task)

    def close(self) -> int:
        """Refuse new translations and cancel the running ones; how many were running."""
        self.closed = True
        for task in self._tasks:
            self._cut.add(task)
            task.cancel()
        return len(self._tasks)
