"""The embedded engines' worker pool on its own: what the loop posts reaches a worker in order, without blocking."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import counting_worker
from tongyeok_server.recognition.base import RecognitionEnded, RecognitionEvent, Transcript
from tongyeok_server.recognition.worker_pool import WorkerPool

BIG = 4 * 1024 * 1024  # more than a pipe holds: its write waits for the worker


@pytest.fixture(scope="module")
def gated_pool() -> Iterator[tuple[WorkerPool, Any]]:
    gate = multiprocessing.get_context("spawn").Event()
    gate.set()
    pool = WorkerPool("counting", counting_worker.run, (gate,), workers=1, streams_per_worker=4, capacity_hint="-")
    try:
        yield pool, gate
    finally:
        gate.set()
        pool.close()


class Events:
    def __init__(self) -> None:
        self.seen: list[RecognitionEvent] = []
        self.ended = asyncio.get_running_loop().create_future()

    def __call__(self, event: RecognitionEvent) -> None:
        self.seen.append(event)
        if isinstance(event, RecognitionEnded) and not self.ended.done():
            self.ended.set_result(event)

    def finals(self) -> list[str]:
        return [e.text for e in self.seen if isinstance(e, Transcript) and e.is_final]


def test_a_finish_after_audio_keeps_its_words_and_never_waits_for_a_full_pipe(
    gated_pool: tuple[WorkerPool, Any],
) -> None:
    pool, gate = gated_pool
    # Whatever this test does wrong, the worker reads again in the end (an old pool blocked its loop here).
    safety = threading.Timer(20, gate.set)

    async def scenario() -> None:
        events, other = Events(), Events()
        stream, other_stream = pool.open(events), pool.open(other)
        gate.clear()  # the worker stops at the next audio: its pipe fills
        await stream.write_async(b"\x01" * 320)  # written; the worker holds it
        big = asyncio.create_task(stream.write_async(b"\x02" * BIG))
        await asyncio.sleep(0.2)
        assert not big.done()  # flow control: the write waits for the worker
        stream.finish()  # on the loop, behind the big write: must not wait for the pipe
        other_stream.cancel()
        assert not gate.is_set()  # finish() and cancel() returned while the pipe was full
        gate.set()
        await big
        ended = await asyncio.wait_for(events.ended, 10)
        assert ended.error is None
        # Everything written before the finish was counted: the finish went after the audio.
        assert events.finals() == [f"{320 + BIG} bytes"]
        assert other.seen == []  # cancelled: nothing after its cancel

    safety.start()
    try:
        asyncio.run(scenario())
    finally:
        safety.cancel()


def test_a_finish_right_after_a_write_that_was_not_awaited_keeps_its_audio(
    gated_pool: tuple[WorkerPool, Any],
) -> None:
    """The session's feeder may be inside ``write_async`` when the caller's end comes: the audio goes first."""
    pool, _ = gated_pool

    async def scenario() -> None:
        events = Events()
        stream = pool.open(events)
        writes = []
        for _ in range(5):
            writes.append(asyncio.create_task(stream.write_async(b"\x03" * 640)))
            await asyncio.sleep(0)  # started: its audio is posted
        stream.finish()
        await asyncio.gather(*writes)
        await asyncio.wait_for(events.ended, 10)
        assert events.finals() == [f"{5 * 640} bytes"]

    asyncio.run(scenario())


def test_write_from_a_thread_returns_once_written(gated_pool: tuple[WorkerPool, Any]) -> None:
    pool, _ = gated_pool

    async def scenario() -> None:
        events = Events()
        stream = pool.open(events)
        await asyncio.to_thread(stream.write, b"\x04" * 1000)
        stream.finish()
        await asyncio.wait_for(events.ended, 10)
        assert events.finals() == ["1000 bytes"]

    asyncio.run(scenario())
