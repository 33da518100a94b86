"""One Google Speech-to-Text streaming call, as ``google_stream`` drives it: the wire and the policy's numbers.

The request bytes (raw protobuf, no proto-plus round trip per chunk), the
timings of the restart, pause and retry policy, the record of one call
(``Leg``: where it started in the caller's audio, how far it got, how it
ended), and grpc.aio's write race (grpc/grpc#36066).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server.google.status import Failure

_T = TypeVar("_T")

# Google's documented per-request audio limit (the proto comment; the quota page says 25 KB).
MAX_REQUEST_AUDIO_BYTES = 15360

# grpc.aio replaces a call's status with this when a write fails because the
# call has just ended (grpc/grpc#36066): Google's OUT_OF_RANGE or
# PERMISSION_DENIED would look like a retryable INTERNAL. When Google's status
# came first, the call's done callback has kept it (``Leg.record_status``).
# When the failed write came first, Google's status follows only once the
# responses Google sent before it have been read: gRPC Core completes a call's
# status after its last message. ``call.read()`` raises as soon as the call
# looks done and leaves them unread, so the status never came (under load, one
# race in three; the stream told its caller "Google failed (INTERNAL)",
# backed off and counted a retry instead of renewing the stream). Iterating
# the call reads them (their results count) and then raises with Google's
# status; ``status_after_write_race`` covers the few loop turns by which the
# status can trail the last message.
WRITE_RACE = (grpc.StatusCode.INTERNAL, "Internal error from Core")
_PB_REQUEST = cloud_speech.StreamingRecognizeRequest.pb()
# The key of the request's ``audio`` field (length-delimited), from the descriptor: see ``audio_request``.
_AUDIO_KEY = bytes([_PB_REQUEST.DESCRIPTOR.fields_by_name["audio"].number << 3 | 2])

# Opens one Google streaming call (on the stream's loop) and returns the
# grpc.aio call: ``write``/``done_writing``/``read``/``cancel``. It writes
# serialised ``StreamingRecognizeRequest`` bytes as they are and reads raw
# protobuf ``StreamingRecognizeResponse`` messages.
CallOpener = Callable[[], Any]
# Awaited before each call (on the stream's loop): None to go on, or why not (see google/auth.py).
BeforeCall = Callable[[], Awaitable[Failure | None]]


def audio_request(audio: bytes | bytearray) -> bytes:
    """``StreamingRecognizeRequest(audio=audio)``, serialised: the field's key, its length, the bytes.

    Written directly rather than through a message, which copied each chunk
    three times (to bytes, into the message, out of it) once per chunk of
    every stream; this copies it once. The same bytes as the message's
    serialisation (``tests/test_google_sender.py`` checks it).
    """
    size = len(audio)
    length = bytearray()
    while size > 0x7F:  # base-128 varint, low groups first
        length.append(size & 0x7F | 0x80)
        size >>= 7
    length.append(size)
    return b"".join((_AUDIO_KEY, length, audio))


@dataclass(frozen=True)
class StreamPolicy:
    """Timings of the restart, pause and retry policy (seconds of audio or wall time)."""

    soft_limit_s: float = 240.0  # audio per Google stream before restarting at the next final
    hard_limit_s: float = 290.0  # audio per Google stream before half-closing regardless (cap is 305)
    idle_close_s: float = 2.0  # wall time without caller audio before half-closing the Google stream
    max_retries: int = 5  # consecutive failed attempts before giving up
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 4.0
    # Google's quotas are per minute: a quota retry waits longer (1+2+4+8+8 s, within
    # what the buffer below holds, so no word is lost while it waits).
    quota_backoff_initial_s: float = 1.0
    quota_backoff_max_s: float = 8.0
    # write() blocks above these (flow control). Unfinalised audio is what a
    # restart must resend: ~48 s of 16 kHz LINEAR16. If a speaker goes on that
    # long without a final, the writer waits, the idle rule half-closes the
    # Google stream, Google finalises, and the buffer empties.
    max_unfinalised_bytes: int = 1536 * 1024
    max_unsent_bytes: int = 256 * 1024


class Leg:
    """One Google streaming call: where it started in the caller's audio and how far it got."""

    __slots__ = ("abandoned", "base", "half_closed", "opened", "pos", "progress", "status", "stop")

    def __init__(self, base: int) -> None:
        self.base = base  # absolute byte position of this call's offset 0
        self.pos = base  # absolute byte position of the next byte to send
        self.opened = time.monotonic()
        self.half_closed = False  # our sender half-closed: Google will finalise and close
        self.stop = False  # the sender must end now, without half-closing (restart or cancel)
        self.abandoned = False  # cancelled unfinalised because the caller is away (its audio resent later)
        self.progress = False  # Google sent at least one result
        self.status: tuple[grpc.StatusCode, str] | None = None  # how the call ended, as first reported

    def record_status(self, call: Any) -> None:
        """Done callback of the call: keep the status it ended with (see ``WRITE_RACE``)."""
        code = settled(call.code())
        if code is not None:
            self.status = (code, settled(call.details()) or "")


async def status_after_write_race(call: Any) -> tuple[grpc.StatusCode, str]:
    """The server's status of a call whose failed write was noticed first (``WRITE_RACE``)."""
    status = WRITE_RACE
    for _ in range(200):  # the responses are read, so the status is on its way: a few loop turns, 2 s at most
        await asyncio.sleep(0.01)
        status = (await call.code(), await call.details() or "")
        if status != WRITE_RACE:
            break
    return status


def settled(coroutine: Coroutine[Any, Any, _T]) -> _T | None:
    """The value of a coroutine that completes without waiting (a call's status once it is done), else None."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        value: _T = done.value
        return value
    coroutine.close()
    return None
