"""What one Google call carries and when it half-closes, on its own (``google_sender``), against a recording call."""

from __future__ import annotations

import asyncio

from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server.recognition.google_audio_log import AudioLog
from tongyeok_server.recognition.google_call import MAX_REQUEST_AUDIO_BYTES, Leg, StreamPolicy, audio_request
from tongyeok_server.recognition.google_sender import CallerState, CallSender, Wakeup

CONFIG = b"config-request"
BPS = 32000  # 16 kHz LINEAR16 mono
FRAME = 2
_PB = cloud_speech.StreamingRecognizeRequest.pb()


class RecordingCall:
    """The grpc.aio call's writing side: what was written, whether it was half-closed or cancelled."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.half_closed = False
        self.cancelled = False

    async def write(self, request: bytes) -> None:
        self.requests.append(request)

    async def done_writing(self) -> None:
        self.half_closed = True

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def audio(self) -> list[bytes]:
        assert self.requests[0] == CONFIG, "the config request goes first, on every call"
        return [_PB.FromString(r).audio for r in self.requests[1:]]


class Stream:
    """The pieces of a stream that the sender reads, as ``GoogleRecognizerStream`` wires them."""

    def __init__(self, policy: StreamPolicy) -> None:
        self.audio = AudioLog(policy)
        self.caller = CallerState()
        self.wakeup = Wakeup(asyncio.get_running_loop())
        self.sender = CallSender(CONFIG, self.audio, self.caller, self.wakeup, policy, BPS, FRAME, "test")

    def write(self, audio: bytes) -> None:  # what write_async does once there is room
        self.audio.append(audio)
        self.caller.away = False
        self.wakeup.wake()


def test_audio_goes_in_whole_frames_within_google_s_limit_and_a_finish_half_closes_after_it() -> None:
    async def scenario() -> None:
        stream, call = Stream(StreamPolicy()), RecordingCall()
        leg = Leg(0)
        task = asyncio.create_task(stream.sender.send(call, leg))
        stream.write(bytes(range(256)) * 100)  # 25 600 bytes: two requests
        await asyncio.sleep(0.01)
        assert not call.half_closed  # still listening for more audio
        stream.caller.finished = True
        stream.wakeup.wake()
        await asyncio.wait_for(task, 1)
        sent = call.audio()
        assert b"".join(sent) == bytes(range(256)) * 100
        assert all(len(a) <= MAX_REQUEST_AUDIO_BYTES and len(a) % FRAME == 0 for a in sent)
        assert call.half_closed and leg.half_closed and not call.cancelled and leg.pos == 25600

    asyncio.run(scenario())


def test_a_pause_half_closes_and_a_caller_away_cancels_unfinalised() -> None:
    async def scenario(away: bool) -> tuple[RecordingCall, Leg]:
        stream, call = Stream(StreamPolicy(idle_close_s=0.05)), RecordingCall()
        leg = Leg(0)
        stream.write(b"\0\1" * 100)
        stream.caller.away = away
        await asyncio.wait_for(stream.sender.send(call, leg), 1)  # the idle timer wakes it
        return call, leg

    paused, leg = asyncio.run(scenario(away=False))
    assert paused.half_closed and leg.half_closed and not paused.cancelled and not leg.abandoned
    gone, leg = asyncio.run(scenario(away=True))
    assert gone.cancelled and leg.abandoned and not gone.half_closed and not leg.half_closed
    assert b"".join(gone.audio()) == b"\0\1" * 100  # what it had was sent; the next call resends it


def test_the_hard_limit_half_closes_with_audio_still_to_send_and_a_stop_ends_without_half_closing() -> None:
    async def scenario() -> None:
        limit_s = 0.25  # 8000 bytes of audio per call; checked before each request
        stream, call = Stream(StreamPolicy(hard_limit_s=limit_s)), RecordingCall()
        leg = Leg(0)
        task = asyncio.create_task(stream.sender.send(call, leg))
        for _ in range(4):  # 100 ms chunks, as a real-time caller sends them
            stream.write(b"\0\0" * 1600)
            await asyncio.sleep(0.01)
        await asyncio.wait_for(task, 1)
        # The fourth chunk found 9600 bytes sent (past the limit): half-closed with it unsent.
        assert call.half_closed and leg.pos == 9600 and len(b"".join(call.audio())) == 9600

        stream.audio.trim_to(9600)  # Google finalised what the call carried
        stopped, leg = RecordingCall(), Leg(stream.audio.start)
        task = asyncio.create_task(stream.sender.send(stopped, leg))
        await asyncio.sleep(0.01)  # sent everything, parked for more
        leg.stop = True  # a restart or cancel(): the run task ends the call itself
        stream.wakeup.wake()
        await asyncio.wait_for(task, 1)
        assert not stopped.half_closed and not stopped.cancelled and leg.pos == 12800
        stream.wakeup.disarm_idle()

    asyncio.run(scenario())


def test_an_audio_request_is_the_messages_own_serialisation() -> None:
    # Written by hand (one copy per chunk): the bytes must be exactly what the message serialises to,
    # at every length where the varint of the length changes size, from a bytes or a bytearray.
    message = cloud_speech.StreamingRecognizeRequest.pb()
    for size in (0, 1, 127, 128, 3200, MAX_REQUEST_AUDIO_BYTES, 16383, 16384, 2_097_152):
        audio = bytes(range(256)) * (size // 256) + bytes(size % 256)
        expected = message(audio=audio).SerializeToString()
        assert audio_request(audio) == expected, size
        assert audio_request(bytearray(audio)) == expected, size
        assert message.FromString(audio_request(audio)).audio == audio
