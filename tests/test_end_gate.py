"""EndGate on its own: a session ends once recognition is over, no translation is pending and no hold is left."""

from __future__ import annotations

import asyncio
import threading

from tongyeok_server.session.end_gate import EndGate


def test_it_opens_only_when_recognition_translations_and_holds_are_all_done() -> None:
    async def scenario() -> list[str]:
        opened: list[str] = []
        gate = EndGate(asyncio.get_running_loop(), lambda: opened.append("open"))
        release = gate.hold()
        gate.expect_translations(2)
        gate.recognition_finished()
        assert not opened, "two translations and a hold still pending"
        gate.translation_done()
        gate.translation_done()
        assert not opened, "the hold is still there"
        release()
        assert opened == ["open"]
        release()  # a hold releases once, however often its function is called
        assert opened == ["open"]
        return opened

    asyncio.run(scenario())


def test_translations_expected_before_their_final_keep_it_shut_until_they_end() -> None:
    async def scenario() -> None:
        opened: list[str] = []
        gate = EndGate(asyncio.get_running_loop(), lambda: opened.append("open"))
        gate.expect_translations(1)  # expected before the final is emitted: no check between them opens it
        gate.recognition_finished()
        assert not opened
        gate.translation_done()
        assert opened == ["open"]

    asyncio.run(scenario())


def test_a_thread_s_events_before_its_release_are_handled_before_the_gate_opens() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        loop = asyncio.get_running_loop()
        gate = EndGate(loop, lambda: order.append("open"))
        release = gate.hold()
        gate.recognition_finished()

        def worker() -> None:
            for i in range(100):
                loop.call_soon_threadsafe(order.append, f"event {i}")  # what the thread emitted first
            release()  # counted on the loop, after those

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        while "open" not in order:
            await asyncio.sleep(0)
        return order

    order = asyncio.run(scenario())
    assert order == [*(f"event {i}" for i in range(100)), "open"]


def test_work_handed_to_a_closed_loop_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    gate = EndGate(loop, lambda: None)
    release = gate.hold()
    loop.close()
    thread = threading.Thread(target=release)  # not the loop's thread: it would queue, but the loop is gone
    thread.start()
    thread.join()
