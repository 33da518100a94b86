"""An engine's ``close()`` fails each translation in flight with UNAVAILABLE, wherever its consumer is.

A toy engine stream (waits on a future per token) behind ``RunningTranslations.guard``,
as the OpenAI and Apertium engines hand out theirs; the consumer is a task, as a
session's lane is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tongyeok_server.errors import ServiceError
from tongyeok_server.translation.base import TokenDelta, TranslationChunk, TranslationStream
from tongyeok_server.translation.running import RunningTranslations


class ToyEngine:
    """Yields a token each time the test releases one; records whether its stream was closed."""

    def __init__(self) -> None:
        self.running = RunningTranslations("toy")
        self.release: asyncio.Queue[str | None] = asyncio.Queue()
        self.started = 0
        self.closed = 0

    def translate(self) -> TranslationStream:
        return self.running.guard(self._translate())

    async def _translate(self) -> TranslationStream:
        self.started += 1
        try:
            while (token := await self.release.get()) is not None:
                yield TokenDelta(token)
        finally:
            self.closed += 1


def run(scenario: Callable[[ToyEngine], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        await scenario(ToyEngine())

    asyncio.run(main())


async def consume(stream: TranslationStream, received: list[TranslationChunk], between: asyncio.Event | None) -> str:
    """Iterate as a lane does; with ``between``, wait on it after each chunk (outside the engine)."""
    try:
        async for chunk in stream:
            received.append(chunk)
            if between is not None:
                await between.wait()
    except ServiceError as error:
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        return f"{error.code.name}: {error.message}"
    return "whole"


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0)


def test_close_fails_a_translation_waiting_inside_the_engine() -> None:
    async def scenario(engine: ToyEngine) -> None:
        received: list[TranslationChunk] = []
        task = asyncio.create_task(consume(engine.translate(), received, None))
        engine.release.put_nowait("a")
        await until(lambda: len(received) == 1)  # the consumer now waits for the next token
        assert engine.running.close() == 1
        outcome = await task
        assert outcome == "UNAVAILABLE: toy: the translator is shut down (the server is stopping)"
        assert not task.cancelled() and engine.closed == 1

    run(scenario)


def test_close_fails_a_translation_whose_consumer_is_elsewhere_without_cancelling_it() -> None:
    """The consumer holds a chunk and awaits something else: it is left alone, and its next chunk is the failure."""

    async def scenario(engine: ToyEngine) -> None:
        received: list[TranslationChunk] = []
        elsewhere = asyncio.Event()
        task = asyncio.create_task(consume(engine.translate(), received, elsewhere))
        engine.release.put_nowait("a")
        await until(lambda: len(received) == 1)
        await asyncio.sleep(0)  # the consumer is parked on its own event, outside the engine
        engine.running.close()
        await asyncio.sleep(0.01)
        assert not task.done(), "the consumer's own wait was cancelled"
        engine.release.put_nowait("b")  # a token the engine had: not handed over after close()
        elsewhere.set()
        assert (await task).startswith("UNAVAILABLE")
        assert received == [TokenDelta("a")] and engine.closed == 1

    run(scenario)


def test_someone_else_s_cancel_passes_through_even_together_with_close() -> None:
    async def scenario(engine: ToyEngine) -> None:
        alone = asyncio.create_task(consume(engine.translate(), [], None))
        await until(lambda: engine.started == 1)
        alone.cancel()  # the session ended: its lane is cancelled
        with pytest.raises(asyncio.CancelledError):
            await alone

        both = asyncio.create_task(consume(engine.translate(), [], None))
        await until(lambda: engine.started == 2)
        both.cancel()
        engine.running.close()
        with pytest.raises(asyncio.CancelledError):
            await both
        assert engine.closed == 2

    run(scenario)


def test_a_translation_asked_for_after_close_fails_before_the_engine_starts_it() -> None:
    async def scenario(engine: ToyEngine) -> None:
        engine.running.close()
        outcome = await consume(engine.translate(), [], None)
        assert outcome.startswith("UNAVAILABLE") and engine.started == 0

    run(scenario)


def test_a_translation_that_ended_before_close_stays_whole() -> None:
    async def scenario(engine: ToyEngine) -> None:
        received: list[TranslationChunk] = []
        for token in ("a", "b", None):
            engine.release.put_nowait(token)
        assert await consume(engine.translate(), received, None) == "whole"
        assert engine.running.close() == 0
        assert received == [TokenDelta("a"), TokenDelta("b")]

    run(scenario)
