"""One Interpret stream proxied into Google Speech-to-Text v2 streaming recognition.

A ``GoogleRecognizerStream`` hides Google's limits from the session:

- **Audio log** (``google_audio_log``): one buffer, both the send queue and
  the resend buffer, from the end of the last final result to the newest
  byte (absolute positions in the caller's audio). Each Google call has a
  send cursor into it; a final trims it up to its ``result_end_offset``.
- **Restarts.** A Google stream lives about five minutes. After
  ``soft_limit_s`` of audio in one Google stream, the next final result
  cancels it and a new stream resends from that final's end (a final ends in
  silence, so no word is cut). If no final comes by ``hard_limit_s`` the
  stream is half-closed instead, and Google finalises what it has. When
  Google ends a stream with OUT_OF_RANGE anyway, the audio after the last
  final is resent. Offsets from every Google stream are shifted by where that
  stream started, so callers see offsets from the start of their own audio.
- **Pauses.** When the caller sends nothing for ``idle_close_s`` the Google
  stream is half-closed (Google finalises what it heard); the next audio
  opens a new stream. While the caller is away (``caller_away``: its
  connection broke, the audio will go on after a resume, possibly mid-word;
  until that audio comes, a resumed caller is still away) the call is
  cancelled unfinalised instead, and the next one resends from the last
  final.
- **Errors.** ``google/status.py`` says what each status means;
  ``google_retries`` decides what follows (renew at once, back off and
  retry, or end the stream with a ``ServiceError``) and tells the caller.
  Before each call the engine's ``before_call`` (the credential check,
  ``google/auth.py``) may refuse or ask for a retry the same way.

Threads: none of its own. A stream lives on one asyncio event loop (the
server's; see ``google_engine``) as two tasks over a ``grpc.aio`` call: the
**run task** (one per stream, here) opens each Google call in turn, reads
its responses and applies the policy above, waits for audio between calls
and sleeps out back-offs; the **sender task** (one per Google call,
``google_sender``) writes what the call carries and half-closes it.
``write``, ``finish`` and ``cancel`` may be called from other threads and
hop onto the loop.

On the wire: the call takes requests already serialised (the config request
once per stream, each audio request by ``audio_request``) and gives
responses as raw protobuf messages, not proto-plus ones (the engine builds
the call that way, see ``google_engine``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server.errors import ServiceError
from tongyeok_server.google import status as google_status
from tongyeok_server.google.status import Failure
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    RecognitionListener,
    RecognizerStream,
)
from tongyeok_server.recognition.google_audio_log import AudioLog
from tongyeok_server.recognition.google_call import (
    WRITE_RACE,
    BeforeCall,
    CallOpener,
    Leg,
    StreamPolicy,
    status_after_write_race,
)
from tongyeok_server.recognition.google_results import GoogleResults
from tongyeok_server.recognition.google_retries import RetryBudget
from tongyeok_server.recognition.google_sender import CallerState, CallSender, Wakeup

log = logging.getLogger(__name__)


DEFAULT_POLICY = StreamPolicy()


class GoogleRecognizerStream(RecognizerStream):
    """A ``RecognizerStream`` over one or more successive Google streaming calls, on one event loop."""

    def __init__(
        self,
        config: RecognitionConfig,
        listener: RecognitionListener,
        open_call: CallOpener,
        first_request: cloud_speech.StreamingRecognizeRequest,
        loop: asyncio.AbstractEventLoop,
        policy: StreamPolicy = DEFAULT_POLICY,
        on_close: Callable[[], None] | None = None,
        name: str = "google-stt",
        before_call: BeforeCall | None = None,
    ) -> None:
        self._config = config
        self._listener = listener
        self._open_call = open_call
        self._loop = loop
        self._policy = policy
        self._on_close = on_close
        self._name = f"{name}-{config.session_id}" if config.session_id else name
        self._before_call = before_call
        self._who = f"session {config.session_id}" if config.session_id else "google stream"  # for log lines
        self._bps = config.audio.bytes_per_second

        # Touched only on the loop, except the caller's flags and _cancelled,
        # which other threads set (finish, cancel) and read (write) as plain attributes.
        self._audio = AudioLog(policy)  # from the last final to the newest byte: what is sent and resent
        self._caller = CallerState()
        self._cancelled = False
        self._ended = False
        self._wakeup = Wakeup(loop)  # audio, finish, cancel or the idle timer wake the parked task
        self._sender = CallSender(
            cloud_speech.StreamingRecognizeRequest.serialize(first_request),  # sent on every call
            self._audio,
            self._caller,
            self._wakeup,
            policy,
            self._bps,
            config.audio.frame_bytes,
            self._who,
        )
        self._leg: Leg | None = None
        self._call: Any = None
        self._sending: asyncio.Task[None] | None = None  # the sender task of the call in progress
        self._task: asyncio.Task[ServiceError | None] | None = None
        self._done = threading.Event()  # the run task has ended (for join)
        self._results = GoogleResults(config)  # what the responses mean (transcripts, offsets, stable text)
        self._budget = RetryBudget(policy, self._who, self._emit)

        # Events are delivered under this lock so that none arrives after cancel() returns.
        self._emit_lock = threading.RLock()
        if self._on_loop():
            self._start()
        else:
            loop.call_soon_threadsafe(self._start)

    # ------------------------------------------------------------------ caller side (any thread)

    def write(self, audio: bytes) -> None:
        """Queue caller audio from a thread other than the loop's; blocks while the buffer is full.

        On the loop use ``write_async`` (blocking there would stop the loop
        that empties the buffer).
        """
        if not audio or self._cancelled or self._ended or self._caller.finished:
            return
        if self._on_loop():
            raise RuntimeError("GoogleRecognizerStream.write() called on its event loop; await write_async()")
        if self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.write_async(audio), self._loop)
        while True:
            try:
                future.result(timeout=1.0)
                return
            except concurrent.futures.CancelledError:
                return  # the loop was shut down under the writer
            except concurrent.futures.TimeoutError:
                if self._loop.is_closed():  # closed before it ran the write
                    return

    async def write_async(self, audio: bytes) -> None:
        """Queue caller audio; awaits only while the buffer is full.

        The buffer is full above ``max_unsent_bytes`` not yet sent, or above
        ``max_unfinalised_bytes`` not yet finalised. Real-time callers never
        wait; faster ones are paced by Google's results.
        """
        if not audio or self._cancelled or self._ended or self._caller.finished:
            return
        if asyncio.get_running_loop() is not self._loop:  # the caller's loop is not the engine's
            if not self._loop.is_closed():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.write_async(audio), self._loop))
            return
        if not self._audio.has_room(self._sent()):
            await self._audio.wait_for_room(self._sent, self._gone)
            if self._cancelled or self._ended or self._caller.finished:
                return
        self._audio.append(audio)
        self._caller.last_write = time.monotonic()
        self._caller.away = False  # the audio goes on: from now on a silence is a pause
        self._wakeup.wake()

    def finish(self) -> None:
        """No more audio: half-close after sending it all, deliver the finals, then ``RecognitionEnded``."""
        if self._caller.finished:
            return
        self._caller.finished = True
        self._call_on_loop(self._wakeup.wake)

    def caller_away(self, away: bool) -> None:
        """See ``RecognizerStream.caller_away``; any thread.

        Back from a break (``False``), the caller still counts as away until its
        audio goes on (``write_async``): it resends from where the server stopped
        hearing it, often mid-sentence, and the wait for that audio (the resume's
        round trip, a relay from another process, a busy machine) is no pause. The
        idle rule would otherwise finalise half a sentence, counting from the
        last write before the break.
        """
        if away:
            self._caller.away = True

    def cancel(self) -> None:
        """Close the Google call now; no event is delivered after this returns. Any thread; does not block."""
        with self._emit_lock:
            if self._cancelled:
                return
            self._cancelled = True
        self._call_on_loop(self._cancel_on_loop)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (from another thread than the loop's) for the stream to end (tests); True if it did."""
        if self._on_loop():
            raise RuntimeError("GoogleRecognizerStream.join() would block its own event loop")
        return self._done.wait(timeout)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _call_on_loop(self, callback: Callable[[], None]) -> None:
        if self._on_loop():
            callback()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing of this stream runs any more
            self._loop.call_soon_threadsafe(callback)

    def _cancel_on_loop(self) -> None:
        # Cancel the call before waking the sender: a sender that ends first
        # would half-close, and Google would go on finalising.
        if self._call is not None:
            self._call.cancel()
        if self._leg is not None:
            self._leg.stop = True
        if self._sending is not None:
            self._sending.cancel()
        if self._task is not None:
            self._task.cancel()
        self._wakeup.wake()
        self._audio.release_writers()

    def _sent(self) -> int:
        """The send cursor of the call in progress (the log's start between calls), for the log's room."""
        leg = self._leg
        return leg.pos if leg is not None else self._audio.start

    def _gone(self) -> bool:
        return self._cancelled or self._ended

    @property
    def restarts(self) -> int:
        """Google streams renewed so far (for tests and logs)."""
        return self._budget.restarts

    @property
    def retries(self) -> int:
        """Back-offs waited so far (for tests and logs)."""
        return self._budget.retries

    # ------------------------------------------------------------------ lifecycle (loop)

    def _start(self) -> None:
        if self._cancelled:
            self._after_run(None)
            return
        task = self._loop.create_task(self._run(), name=self._name)
        self._task = task
        task.add_done_callback(self._after_run)

    def _after_run(self, task: asyncio.Task[ServiceError | None] | None) -> None:
        error: ServiceError | None = None
        if task is None or task.cancelled():
            if not self._cancelled:  # the loop is being shut down under us
                error = ServiceError(grpc.StatusCode.UNAVAILABLE, "speech recognition was shut down")
        elif (exc := task.exception()) is not None:
            log.error("%s: speech recognition failed unexpectedly", self._who, exc_info=exc)
            error = ServiceError(grpc.StatusCode.INTERNAL, "speech recognition failed unexpectedly")
        else:
            error = task.result()
        self._call = None
        self._leg = None
        if self._sending is not None:
            self._sending.cancel()
            self._sending = None
        self._wakeup.disarm_idle()
        try:
            if self._on_close is not None:
                self._on_close()
        finally:
            try:
                self._end(error)
            finally:
                self._done.set()

    # ------------------------------------------------------------------ run task (one per stream)

    async def _run(self) -> ServiceError | None:
        while True:
            while not (self._audio.has_audio_to_send() or self._caller.finished):
                await self._wakeup.park()
            if not self._audio.unfinalised_bytes:  # finished, everything finalised
                return None
            failure = await self._before_call() if self._before_call is not None else None
            progress = False
            if failure is None:
                leg = Leg(self._audio.start)
                failure = await self._attempt(leg)
                if failure is None:
                    self._budget.succeeded()
                    continue
                progress = leg.progress
            # cancel() cancels this task, and with it a back-off's sleep.
            ending = await self._budget.recover(failure, progress, self._audio.unfinalised_bytes / self._bps)
            if ending is not None:
                return ending

    async def _attempt(self, leg: Leg) -> Failure | None:
        """One Google call from ``leg``'s start; None if it ended as planned, else what went wrong."""
        self._leg = leg
        call = self._open_call()
        call.add_done_callback(leg.record_status)
        self._call = call
        self._sending = self._loop.create_task(self._sender.send(call, leg), name=f"{self._name}-send")
        try:
            code, details, planned = await self._read(call, leg)
        finally:
            self._call = None
            leg.stop = True
            if self._sending is not None:
                self._sending.cancel()  # a no-op once it has half-closed
                self._sending = None
            self._wakeup.disarm_idle()
            self._leg = None
        if leg.abandoned:
            self._audio.hold()  # the next call starts with the next audio, from the last final
            return None
        if code is grpc.StatusCode.OK and leg.half_closed:
            self._audio.trim_to(leg.pos)  # Google finalised everything this call carried
            return None
        if planned:
            self._budget.restarted(
                f"after {(leg.pos - leg.base) / self._bps:.0f} s of audio",
                "at a final, as planned",
                self._audio.unfinalised_bytes / self._bps,
            )
            return None
        return google_status.from_status(code, details, self._config.language_codes)

    async def _read(self, call: Any, leg: Leg) -> tuple[grpc.StatusCode, str, bool]:
        """Deliver the call's responses; (final status, details, ended by a planned restart)."""
        soft_bytes = self._policy.soft_limit_s * self._bps
        try:
            # Iterated, not ``call.read()``, so that Google's status survives a write race (see WRITE_RACE).
            async for response in call:
                final = self._on_response(leg, response)
                if final and leg.pos - leg.base >= soft_bytes and not leg.half_closed:
                    # Restart at this final: it ends in silence, and the next call
                    # resends from its end, so no word is cut or repeated.
                    call.cancel()
                    return grpc.StatusCode.CANCELLED, "planned restart", True
            return grpc.StatusCode.OK, "stream ended", False
        except grpc.aio.AioRpcError as exc:
            first = leg.status  # Google's, if it came before a failed write replaced it
            status = first if first is not None and first != WRITE_RACE else (exc.code(), exc.details() or "")
            if status == WRITE_RACE:
                status = await status_after_write_race(call)
            return status[0], status[1], False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._cancelled or (task is not None and task.cancelling()):
                raise
            # The call was cancelled, but not by cancel(): the engine closed its
            # channels (shutdown), or the sender failed.
            return grpc.StatusCode.CANCELLED, "the call was cancelled locally", False

    def _on_response(self, leg: Leg, response: Any) -> bool:
        """Turn one response into events (``google_results``); True if it carried a final result."""
        read = self._results.read(response, leg.base)
        if read.results:
            leg.progress = True
        for end_pos in read.final_ends:
            # Audio up to this final's end never needs resending.
            self._audio.trim_to(min(max(end_pos, self._audio.start), leg.pos))
        for event in read.events:
            self._emit(event)
        return bool(read.final_ends)

    # ------------------------------------------------------------------ events (loop)

    def _emit(self, event: RecognitionEvent) -> None:
        with self._emit_lock:
            if self._cancelled or self._ended:
                return
            self._listener(event)

    def _end(self, error: ServiceError | None) -> None:
        with self._emit_lock:
            if self._ended:
                return
            if not self._cancelled:
                self._listener(RecognitionEnded(error=error))
            self._ended = True
        self._audio.release_writers()  # a writer waiting for room returns
