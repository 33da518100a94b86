"""The session's event log, directly: numbering, reading after a number, waiting, and what is no longer kept.

A reader that turns without awaiting holds the event loop (and every RPC on
it), so each scenario runs on an event loop of its own in a thread, and a
scenario that has not returned in a few seconds fails instead of hanging
the test run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tongyeok_server.session import event_log
from tongyeok_server.session import events as ev
from tongyeok_server.session.event_log import EventLog, EventsNoLongerKept


def notice(text: str = "x") -> ev.Notice:
    return ev.Notice(ev.NoticeCode.TRANSLATION_FAILED, text)


def bounded(scenario: Callable[[], Awaitable[Any]], timeout_s: float = 5.0) -> Any:
    """Run ``scenario`` on an event loop of its own; fail if that loop never gets control back."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(scenario(), timeout_s / 2))
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="event-log-scenario", daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "the scenario's event loop never got control back: a loop turned without awaiting"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def read_now(log: EventLog, after: int) -> list[int]:
    """The numbers a reader after ``after`` gets before it would have to wait."""
    numbers: list[int] = []
    reader = log.read(after)
    while True:
        step = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0.01)
        if not step.done():
            step.cancel()
            return numbers
        try:
            numbers.append(step.result().sequence_number)
        except StopAsyncIteration:
            return numbers


def test_a_resume_from_0_before_any_event_waits_instead_of_spinning() -> None:
    # The bug of issue 24: session_started reserved number 1 and nothing newer was kept; a reader after 0
    # turned forever without awaiting, which held the server's whole event loop.
    async def scenario() -> list[int]:
        log = EventLog()
        assert log.reserve() == 1
        reader = log.read(0)
        first = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0.05)  # the reader must be waiting, and this loop must be ours again
        assert not first.done()
        log.append(notice())
        entry = await asyncio.wait_for(first, 1)
        return [entry.sequence_number]

    assert bounded(scenario) == [2]


def test_0_and_1_read_the_same_events_of_a_new_session() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        log = EventLog()
        log.reserve()
        for _ in range(3):
            log.append(notice())
        return await read_now(log, 0), await read_now(log, 1)

    assert bounded(scenario) == ([2, 3, 4], [2, 3, 4])


def test_a_restored_log_refuses_numbers_before_its_first_and_waits_at_its_first() -> None:
    # A session moved here starts its log at K (here 7); numbers below it were another server's.
    async def scenario() -> list[int]:
        log = EventLog(next_sequence_number=7)
        for after in (0, 1, 5):
            with pytest.raises(EventsNoLongerKept) as gone:
                log.check_readable(after)
            assert gone.value.oldest == 7
            with pytest.raises(EventsNoLongerKept):
                await anext(log.read(after))
        assert await read_now(log, 6) == []  # exactly its token's number: waits for the first new event
        log.append(notice())
        return await read_now(log, 6)

    assert bounded(scenario) == [7]


def test_every_number_from_0_to_past_the_newest_returns_or_waits() -> None:
    # The fuzz of the read loop itself: whatever the number, the reader yields, waits, or refuses at once.
    async def scenario() -> dict[int, list[int] | str]:
        results: dict[int, list[int] | str] = {}
        for log in (EventLog(), EventLog(next_sequence_number=5)):
            if log.next_sequence_number == 1:
                log.reserve()
            log.append(notice())
            log.append(notice())
            for after in range(0, log.last_sequence_number + 4):
                try:
                    results[after * 100 + log.oldest_kept] = await read_now(log, after)
                except EventsNoLongerKept:
                    results[after * 100 + log.oldest_kept] = "gone"
        return results

    results = bounded(scenario)
    # New session (1 reserved, events 2 and 3): 0 and 1 read both, 2 the second, 3 and past wait.
    assert [results[a * 100 + 2] for a in range(0, 7)] == [[2, 3], [2, 3], [3], [], [], [], []]
    # Moved session (events 5 and 6): before 4 is gone, 4 reads both.
    assert [results[a * 100 + 5] for a in range(0, 10)] == ["gone"] * 4 + [[5, 6], [6], [], [], [], []]


def test_end_ends_the_reading_and_new_events_reach_a_waiting_reader() -> None:
    async def scenario() -> list[int]:
        log = EventLog()
        log.reserve()
        got: list[int] = []

        async def read() -> None:
            async for entry in log.read(1):
                got.append(entry.sequence_number)

        task = asyncio.create_task(read())
        for _ in range(3):
            await asyncio.sleep(0.01)
            log.append(notice())
        log.append(ev.End())
        await asyncio.wait_for(task, 1)
        with pytest.raises(RuntimeError):
            log.append(notice())
        assert await read_now(log, 5) == []  # after End: nothing, and no waiting either
        return got

    assert bounded(scenario) == [2, 3, 4, 5]


def test_stop_ends_a_waiting_reader() -> None:
    async def scenario() -> bool:
        log = EventLog()
        log.reserve()
        stop = asyncio.Event()

        async def read() -> None:
            async for _ in log.read(1, stop):
                pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.02)
        stop.set()
        log.wake()
        await asyncio.wait_for(task, 1)
        return True

    assert bounded(scenario)


def test_a_reader_fallen_behind_the_bounds_is_told_what_is_gone(monkeypatch) -> None:
    monkeypatch.setattr(event_log, "MAX_EVENTS", 3)

    async def scenario() -> int:
        log = EventLog(max_age_s=0.0)
        log.reserve()
        log.append(notice())  # 2
        reader = log.read(1)
        assert (await anext(reader)).sequence_number == 2
        for _ in range(5):
            log.append(notice())  # 3..7; only 5, 6 and 7 are kept
        assert log.oldest_kept == 5
        with pytest.raises(EventsNoLongerKept) as gone:
            await anext(reader)
        with pytest.raises(EventsNoLongerKept):
            log.check_readable(1)
        assert log.check_readable(4) == 4
        return gone.value.oldest

    assert bounded(scenario) == 5


def test_a_number_is_reserved_only_before_the_first_event() -> None:
    async def scenario() -> None:
        log = EventLog()
        log.append(notice())
        with pytest.raises(RuntimeError):
            log.reserve()

    bounded(scenario)
