"""EventChannel on its own: items from the loop and from other threads reach one reader on the loop, in order."""

from __future__ import annotations

import asyncio
import threading

from tongyeok_server.session.event_channel import EventChannel


def test_items_from_the_loop_and_from_threads_arrive_each_writers_in_order() -> None:
    async def scenario() -> list[tuple[str, int]]:
        seen: list[tuple[str, int]] = []
        channel: EventChannel[tuple[str, int]] = EventChannel(asyncio.get_running_loop(), seen.append)

        def writer(name: str) -> None:
            for i in range(500):
                channel.put((name, i))

        threads = [threading.Thread(target=writer, args=(f"t{k}",)) for k in range(3)]
        for thread in threads:
            thread.start()
        for i in range(500):
            channel.put(("loop", i))  # on the loop: at once, no hop
        got = [await channel.get() for _ in range(2000)]
        for thread in threads:
            thread.join()
        assert got == seen  # on_item saw each item as it was queued, in queue order
        return got

    got = asyncio.run(scenario())
    for name in ("loop", "t0", "t1", "t2"):
        assert [i for n, i in got if n == name] == list(range(500)), name


def test_an_item_put_on_the_loop_is_queued_before_put_returns() -> None:
    async def scenario() -> None:
        order: list[str] = []
        channel: EventChannel[str] = EventChannel(asyncio.get_running_loop(), order.append)
        channel.put("first")
        assert order == ["first"]  # on the loop: synchronous, so an observer's own emit comes after it

    asyncio.run(scenario())


def test_without_a_queue_on_item_is_the_only_reader_and_a_closed_loop_drops_quietly() -> None:
    loop = asyncio.new_event_loop()
    seen: list[int] = []

    async def make() -> EventChannel[int]:
        return EventChannel(asyncio.get_running_loop(), seen.append, queue=False)

    channel = loop.run_until_complete(make())
    writer = threading.Thread(target=channel.put, args=(1,))
    writer.start()
    writer.join(2)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert seen == [1]
    loop.close()
    threading.Thread(target=channel.put, args=(2,)).start()  # the server stopped: dropped, no exception
    assert seen == [1]
