"""SerialLane on its own: a session's per-language translations, one after another, on the loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tongyeok_server.session.serial_lane import Job, SerialLane


def test_jobs_run_in_order_one_at_a_time() -> None:
    async def scenario() -> list[str]:
        lane = SerialLane()
        seen: list[str] = []
        running = 0

        def job(name: str, pause: float) -> Job:
            async def work() -> None:
                nonlocal running
                running += 1
                assert running == 1, "two jobs of one lane ran at once"
                seen.append(f"{name} start")
                await asyncio.sleep(pause)
                seen.append(f"{name} end")
                running -= 1

            return work

        for name, pause in (("a", 0.03), ("b", 0.0), ("c", 0.01)):
            lane.submit(job(name, pause))
        assert lane.busy
        while lane.busy:
            await asyncio.sleep(0.005)
        return seen

    assert asyncio.run(scenario()) == ["a start", "a end", "b start", "b end", "c start", "c end"]


def test_lanes_run_in_parallel_and_an_idle_lane_holds_no_task() -> None:
    async def scenario() -> float:
        lanes = [SerialLane() for _ in range(4)]
        loop = asyncio.get_running_loop()
        began = loop.time()
        for lane in lanes:
            lane.submit(lambda: asyncio.sleep(0.1))
        while any(lane.busy for lane in lanes):
            await asyncio.sleep(0.005)
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return loop.time() - began

    assert asyncio.run(scenario()) < 0.3  # four lanes of 0.1 s in parallel, not 0.4 s in a row


def test_a_failing_job_does_not_stall_the_ones_behind_it(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[str]:
        lane = SerialLane()
        seen: list[str] = []

        async def fails() -> None:
            raise RuntimeError("boom")

        async def works() -> None:
            seen.append("ran")

        lane.submit(fails)
        lane.submit(works)
        while lane.busy:
            await asyncio.sleep(0.005)
        return seen

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(scenario()) == ["ran"]
    assert "lane job failed" in caplog.text and "boom" in caplog.text


def test_cancel_drops_the_queue_and_cancels_the_running_job_which_cleans_up() -> None:
    async def scenario() -> tuple[list[str], int]:
        lane = SerialLane()
        seen: list[str] = []
        started = asyncio.Event()

        async def long() -> None:
            try:
                started.set()
                await asyncio.sleep(10)
                seen.append("long finished")
            finally:
                seen.append("long cleaned up")

        async def queued() -> None:
            seen.append("queued ran")

        lane.submit(long)
        lane.submit(queued)
        await started.wait()
        dropped = lane.cancel()
        await asyncio.sleep(0.01)
        assert not lane.busy
        lane.submit(queued)  # a lane goes on after a cancel (a new task)
        while lane.busy:
            await asyncio.sleep(0.005)
        return seen, len(dropped)

    seen, dropped = asyncio.run(scenario())
    assert seen == ["long cleaned up", "queued ran"]
    assert dropped == 1


def test_clear_keeps_the_running_job() -> None:
    async def scenario() -> list[str]:
        lane = SerialLane()
        seen: list[str] = []

        async def first() -> None:
            await asyncio.sleep(0.02)
            seen.append("first")

        async def second() -> None:
            seen.append("second")

        lane.submit(first)
        lane.submit(second)
        await asyncio.sleep(0)
        assert len(lane.clear()) == 1
        while lane.busy:
            await asyncio.sleep(0.005)
        return seen

    assert asyncio.run(scenario()) == ["first"]
