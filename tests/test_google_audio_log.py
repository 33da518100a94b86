"""The Google stream's audio log on its own: positions, trims, the hold after an abandoned call, room."""

from __future__ import annotations

import asyncio

from tongyeok_server.recognition.google_audio_log import AudioLog
from tongyeok_server.recognition.google_call import StreamPolicy


def test_positions_are_absolute_and_a_trim_forgets_only_what_a_final_ended() -> None:
    log = AudioLog(StreamPolicy())
    log.append(b"abcdef")
    log.trim_to(2)  # a final ended after "ab"
    log.append(b"gh")
    assert (log.start, log.end, len(log), log.unfinalised_bytes) == (2, 8, 6, 6)
    assert log.read(4, 3) == b"efg"  # absolute position 4 is "e"
    log.trim_to(1)  # behind the start: nothing to forget
    assert log.read(2, 100) == b"cdefgh"


def test_after_a_hold_only_new_audio_opens_a_call_and_the_resend_starts_at_the_last_final() -> None:
    log = AudioLog(StreamPolicy())
    assert not log.has_audio_to_send()
    log.append(b"1234")
    log.hold()  # the call was abandoned while the caller was away
    assert not log.has_audio_to_send()
    log.append(b"5")
    assert log.has_audio_to_send()
    assert log.read(log.start, 100) == b"12345"  # resent whole, from the last final


def test_a_writer_waits_for_room_until_audio_is_sent_or_the_stream_is_gone() -> None:
    async def scenario() -> None:
        log = AudioLog(StreamPolicy(max_unsent_bytes=4, max_unfinalised_bytes=8))
        sent = 0
        gone = False
        log.append(b"x" * 6)
        assert not log.has_room(sent)  # 6 unsent > 4
        waiter = asyncio.create_task(log.wait_for_room(lambda: sent, lambda: gone))
        await asyncio.sleep(0)
        sent = 2
        log.room_made()
        await asyncio.sleep(0)
        assert waiter.done()
        log.append(b"y" * 3)  # 9 unfinalised > 8, though nothing is unsent
        sent = 9
        assert not log.has_room(sent)
        waiter = asyncio.create_task(log.wait_for_room(lambda: sent, lambda: gone))
        await asyncio.sleep(0)
        log.trim_to(3)  # a final: 6 unfinalised
        await asyncio.sleep(0)
        assert waiter.done()
        log.append(b"z" * 4)
        waiter = asyncio.create_task(log.wait_for_room(lambda: sent, lambda: gone))
        await asyncio.sleep(0)
        gone = True
        log.release_writers()
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())
