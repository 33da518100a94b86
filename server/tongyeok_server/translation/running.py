"""The translations an engine has running, so that ``close()`` fails each one with UNAVAILABLE, wherever it is.

A translation runs in its consumer's task (the session's lane, the
TranslateText job), not in one of the engine's. The engine hands out its
translations through ``RunningTranslations.guard``, which knows where each
one is when ``close()`` comes:

- **inside the engine** (its consumer's task waits on the connection, the
  next token, a back-off): ``close()`` cancels that task, so the wait ends
  now and the engine's ``async with`` blocks close the backend connection;
  the guard takes its own cancellation back (``Task.uncancel``) and raises
  UNAVAILABLE to the consumer, whose task is not left cancelled;
- **with its consumer** (a chunk was handed over and the consumer awaits
  something else): the consumer is not disturbed; the translation fails
  with UNAVAILABLE when the consumer asks for its next chunk.

Either way the consumer sees a failed translation, never a partial text taken
for a whole one, and never the engine's cancellation. A cancellation from
anyone else passes through untouched, also when it comes together with the
engine's. A translation asked for after ``close()`` fails the same way
before the engine starts it.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from tongyeok_server.errors import ServiceError
from tongyeok_server.translation.base import TranslationStream


def shut_down(engine: str) -> ServiceError:
    """The error of a translation cut by (or asked for after) the engine's ``close()``."""
    return ServiceError(grpc.StatusCode.UNAVAILABLE, f"{engine}: the translator is shut down (the server is stopping)")


class _Translation:
    """One guarded translation: its consumer's task and where it is."""

    __slots__ = ("cancelled", "cut", "inside", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.inside = False  # the consumer's task waits inside the engine's stream
        self.cut = False  # close() came: the translation must fail
        self.cancelled = False  # close() cancelled the task (one cancel of its count is ours)


class RunningTranslations:
    """The translations of one engine in flight; loop only."""

    def __init__(self, engine: str) -> None:
        self._engine = engine
        self._running: set[_Translation] = set()
        self.closed = False

    async def guard(self, chunks: TranslationStream) -> TranslationStream:
        """The engine's ``chunks``, failing with UNAVAILABLE once ``close()`` comes (see the module)."""
        async with contextlib.aclosing(chunks):
            if self.closed:
                raise shut_down(self._engine)
            task = asyncio.current_task()
            if task is None:  # driven by hand, outside a task: nothing to cancel
                async for chunk in chunks:
                    yield chunk
                return
            entry = _Translation(task)
            self._running.add(entry)
            try:
                while True:
                    entry.inside = True
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        if entry.cut:  # ended under close()'s cancel: possibly cut short
                            raise self._cut(entry, None) from None
                        return
                    except BaseException as error:
                        if not entry.cut:
                            raise
                        raise self._cut(entry, error) from None
                    finally:
                        entry.inside = False
                    if entry.cut:  # close()'s cancel was swallowed inside the engine
                        raise self._cut(entry, None)
                    yield chunk
                    if entry.cut:  # close() came while the consumer held the chunk
                        raise self._cut(entry, None)
            finally:
                self._running.discard(entry)

    def _cut(self, entry: _Translation, error: BaseException | None) -> BaseException:
        """What a translation cut by ``close()`` raises: UNAVAILABLE, or someone else's cancellation."""
        if entry.cancelled:
            entry.cancelled = False
            # Take our cancel back; if the count stays above 0, the consumer's owner cancelled it too.
            if entry.task.uncancel() > 0 and isinstance(error, asyncio.CancelledError):
                return error
        return shut_down(self._engine)

    def close(self) -> int:
        """Refuse new translations and fail the running ones (see the module); how many were running."""
        self.closed = True
        for entry in self._running:
            entry.cut = True
            if entry.inside:
                entry.cancelled = True
                entry.task.cancel()
        return len(self._running)
