"""The audio log of a Google stream: caller audio from the last final to the newest byte, on the stream's loop.

One buffer is both the send queue and the resend buffer. It holds every byte
from the end of the last final result (``start``, an absolute byte position
in the caller's audio) to the newest byte written (``end``). Each Google call
has a send cursor into it (``Leg.pos``, see ``google_call``); a final result
trims the log up to its end, so a new call (a restart, a retry, the next
audio after the caller was away) resends from ``start``: the sentence in
progress is recognised whole and nothing finalised is heard twice.

The log is bounded (``StreamPolicy.max_unsent_bytes`` not yet sent,
``max_unfinalised_bytes`` not yet finalised): a writer above either waits for
room (``wait_for_room``), which paces a faster-than-real-time caller to
Google's results through gRPC flow control. Room is made by a send
(``room_made``) or a trim.

Everything here runs on the stream's event loop; none of it blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tongyeok_server.recognition.google_call import StreamPolicy


class AudioLog:
    """Caller audio not yet finalised by Google, addressed by absolute byte positions."""

    def __init__(self, policy: StreamPolicy) -> None:
        self._buf = bytearray()
        #: Absolute position of the first byte kept: the end of the last final (or of audio consumed).
        self.start = 0
        #: Absolute position after the newest byte written.
        self.end = 0
        self._hold_until = -1  # after an abandoned call: the next one opens only for audio past this
        self._max_unsent = policy.max_unsent_bytes
        self._max_unfinalised = policy.max_unfinalised_bytes
        self._room = asyncio.Event()  # the log shrank or was sent from: a waiting writer re-checks
        self._room_waiters = 0

    def __len__(self) -> int:
        """Bytes held (``end - start``)."""
        return len(self._buf)

    @property
    def unfinalised_bytes(self) -> int:
        """What a new call would resend: the audio after the last final."""
        return self.end - self.start

    def append(self, audio: bytes) -> None:
        """Add the caller's newest audio."""
        self._buf += audio
        self.end += len(audio)

    def read(self, position: int, most: int) -> bytearray:
        """Up to ``most`` bytes from absolute ``position`` (at or after ``start``)."""
        offset = position - self.start
        return self._buf[offset : offset + most]

    def trim_to(self, position: int) -> None:
        """Forget the audio before ``position``: a final ended there, it never needs resending."""
        if position > self.start:
            del self._buf[: position - self.start]
            self.start = position
            self.room_made()

    # -- when the next call may open

    def hold(self) -> None:
        """The call was abandoned (the caller is away): open the next one only for audio after what is here."""
        self._hold_until = self.end

    def has_audio_to_send(self) -> bool:
        """Whether a new call has something to carry (audio past the last final, and past a hold)."""
        return self.end > max(self.start, self._hold_until)

    # -- flow control

    def has_room(self, sent: int) -> bool:
        """Whether a writer may add audio, given the current call's send cursor ``sent``."""
        return self.end - sent <= self._max_unsent and self.end - self.start <= self._max_unfinalised

    async def wait_for_room(self, sent: Callable[[], int], gone: Callable[[], bool]) -> None:
        """Wait until ``has_room(sent())``, or until ``gone()`` (the stream ended); re-checked at each ``room_made``."""
        self._room_waiters += 1
        try:
            while not (gone() or self.has_room(sent())):
                self._room.clear()
                await self._room.wait()
        finally:
            self._room_waiters -= 1

    def room_made(self) -> None:
        """Audio was sent or trimmed: wake the writers waiting for room (if any) to re-check."""
        if self._room_waiters:
            self._room.set()

    def release_writers(self) -> None:
        """The stream ended or was cancelled: every waiting writer re-checks (and finds it gone)."""
        self._room.set()
