"""What one Google call carries, and when it half-closes: the sender task of a ``GoogleRecognizerStream``.

``google_stream`` starts one sender per Google call, beside the call, and
cancels it when the call ends. The sender writes the config request, then the
audio log (``google_audio_log``) from the call's send cursor (``Leg.pos``) in
requests of whole frames up to Google's per-request limit, and ends its side
of the call in one of four ways:

- **hard limit**: ``hard_limit_s`` of audio in this call and still no final
  (the run task restarts at a final after ``soft_limit_s``): half-close, so
  Google finalises what it has before its own stream limit;
- **finish**: the caller sent its last audio and all of it is written:
  half-close;
- **pause**: no caller audio for ``idle_close_s``: half-close (Google
  finalises what it heard) rather than keep the call alive with invented
  silence, which Google would bill and which would skew offsets;
- **caller away** (``CallerState.away``): the same silence while the caller's
  connection is broken: cancel the call unfinalised (``Leg.abandoned``), so
  the next call resends from the last final and the sentence is recognised
  whole.

It is a task of its own because one task cannot wait on the call's responses
and for new audio at once. Between writes it parks on the stream's
``Wakeup``, which audio, finish, cancel and the idle timer resolve: a chunk
costs one task wake-up and one ``call.write``, and the idle rule costs one
timer per stream, re-armed only when it fires (at most once per
``idle_close_s``), not per chunk.

Everything here runs on the stream's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
import grpc.aio

from tongyeok_server.recognition.google_audio_log import AudioLog
from tongyeok_server.recognition.google_call import MAX_REQUEST_AUDIO_BYTES, Leg, StreamPolicy, audio_request

log = logging.getLogger(__name__)


class CallerState:
    """What the caller has done, as the sender and the run task read it.

    Plain attributes: ``finish`` and ``caller_away`` set them from any thread.
    """

    __slots__ = ("away", "finished", "last_write")

    def __init__(self) -> None:
        self.finished = False  # no more audio will come
        self.away = False  # the caller's connection broke; its audio will go on after a resume
        self.last_write = time.monotonic()  # when its newest audio came (the idle rule counts from here)


class Wakeup:
    """The one parked task of a stream (its sender, or its run task between calls) and the idle timer.

    Audio, finish, cancel and the idle timer call ``wake``; the parked task
    re-checks its state. At most one task is parked at a time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # A bare future, not an asyncio.Event: ~1.2 µs per hand-off against ~1.9.
        self._waiter: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        """Wake the parked task, if any, to re-check its state."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # cancelled with its task
                waiter.set_result(None)

    async def park(self) -> None:
        """Wait for ``wake``. Callers check their state first: a wake before this is not remembered."""
        waiter = self._waiter = self._loop.create_future()
        await waiter

    def arm_idle(self, delay_s: float) -> None:
        """Wake the parked task after ``delay_s``, unless the timer is already armed."""
        if self._idle_timer is None:
            # Re-armed only when it fires, so writes cost no timer.
            self._idle_timer = self._loop.call_later(delay_s, self._idle_fired)

    def disarm_idle(self) -> None:
        """Drop the idle timer (the call it was for has ended)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_fired(self) -> None:
        self._idle_timer = None
        self.wake()


class CallSender:
    """Writes what each Google call of one stream carries; ``send`` is the task of one call."""

    def __init__(
        self,
        first_request: bytes,
        audio: AudioLog,
        caller: CallerState,
        wakeup: Wakeup,
        policy: StreamPolicy,
        bytes_per_second: int,
        frame_bytes: int,
        who: str,
    ) -> None:
        self._first_request = first_request  # serialised once per stream, sent on every call
        self._audio = audio
        self._caller = caller
        self._wakeup = wakeup
        self._policy = policy
        self._bps = bytes_per_second
        self._chunk = MAX_REQUEST_AUDIO_BYTES // frame_bytes * frame_bytes  # whole frames only
        self._who = who

    async def send(self, call: Any, leg: Leg) -> None:
        """Write the config, then audio from ``leg.pos``, until the call's side ends (see the module)."""
        policy = self._policy
        caller = self._caller
        hard_end = leg.base + int(policy.hard_limit_s * self._bps)
        most = self._chunk
        try:
            await call.write(self._first_request)
            while not leg.stop:
                pos = leg.pos
                if pos < self._audio.end:
                    if pos >= hard_end:
                        log.info("%s: %.0f s of audio without a final; half-closing", self._who, policy.hard_limit_s)
                        leg.half_closed = True
                        await call.done_writing()
                        return
                    audio = self._audio.read(pos, most)
                    leg.pos = pos + len(audio)
                    self._audio.room_made()
                    await call.write(audio_request(audio))
                    continue
                if caller.finished:
                    log.debug("google stream: caller finished; half-closing")
                    leg.half_closed = True
                    await call.done_writing()
                    return
                idle = time.monotonic() - max(caller.last_write, leg.opened)
                if idle >= policy.idle_close_s and caller.away:
                    # Not a pause: the caller is gone for now and its audio will go on where it stopped.
                    log.debug("google stream: the caller is away; closing the call unfinalised")
                    leg.abandoned = True
                    call.cancel()
                    return
                if idle >= policy.idle_close_s:
                    # The caller paused: let Google finalise and close rather than time out.
                    log.debug("google stream: no audio for %.1f s; half-closing", idle)
                    leg.half_closed = True
                    await call.done_writing()
                    return
                self._wakeup.arm_idle(policy.idle_close_s - idle)
                await self._wakeup.park()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended under us; the run task reads its status
        except Exception:
            log.exception("%s: sending to Google failed unexpectedly", self._who)
            call.cancel()  # the run task sees the call end
