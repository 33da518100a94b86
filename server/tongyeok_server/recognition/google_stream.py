"""One Interpret stream proxied into Google Speech-to-Text v2 streaming recognition.

A ``GoogleRecognizerStream`` hides Google's limits from the session:

- **Audio log** (``google_audio_log``). Caller audio goes into one buffer
  that is both the send queue and the resend buffer: it holds every byte from
  the end of the last final result (an absolute byte position in the caller's
  audio) to the newest byte written. Each Google stream has a send cursor into
  it. A final result trims the log up to its ``result_end_offset``.
- **Restarts.** A Google stream lives about five minutes. After
  ``soft_limit_s`` of audio in one Google stream, the next final result
  cancels it and a new stream resends from that final's end (a final ends in
  silence, so no word is cut). If no final comes by ``hard_limit_s`` the
  stream is half-closed instead, and Google finalises what it has. When
  Google ends a stream with OUT_OF_RANGE anyway, the audio after the last
  final is resent. Offsets from every Google stream are shifted by where that
  stream started, so callers see offsets from the start of their own audio.
- **Pauses.** When the caller sends nothing for ``idle_close_s`` the Google
  stream is half-closed (Google finalises what it heard) rather than kept
  alive with invented silence; the next audio opens a new stream. While the
  caller is away (``caller_away``: its connection broke, the audio will go
  on after a resume, possibly mid-word; until that audio comes, a resumed
  caller is still away) the stream is cancelled instead, so
  nothing is finalised, and the next stream, opened with the next audio,
  resends from the last final: the sentence is recognised whole.
- **Errors.** UNAVAILABLE and friends, and RESOURCE_EXHAUSTED (Google's
  quota, with a longer back-off), are retried with bounded exponential
  back-off, resending the unfinalised audio; everything else ends the stream
  with a ``ServiceError``. ``google/status.py`` classifies each status and words
  it: the caller gets the cause and what to do, the log (at WARNING, with
  the session id) Google's own message, which can name the project or an
  address. Before each call the engine's ``before_call`` (the credential
  check, ``google/auth.py``) may refuse or ask for a retry the same way.

Threads: none of its own. A stream lives on one asyncio event loop (the
server's; see ``google_engine``) as two
tasks over a ``grpc.aio`` call:

- the **run task** (one per stream) opens each Google call in turn, reads its
  responses and applies the policy above; between calls it waits for audio,
  and it sleeps out retry back-offs;
- the **sender task** (one per Google call) writes the config request, then
  the buffer from the call's cursor, and half-closes. It is separate because
  one task cannot wait on ``call.read()`` and for new audio at once.

``write_async`` appends to the log and resolves the future the sender is
parked on (if it is parked), so a chunk costs one task wake-up and one
``call.write``; the idle rule uses one timer per stream that is re-armed only
when it fires (at most once per ``idle_close_s``), not per chunk. ``write``,
``finish`` and ``cancel`` may be called from other threads and hop onto the
loop.

On the wire: the call takes requests already serialised (the config request
once per stream, each audio request by ``audio_request``) and
gives responses as raw protobuf messages, not proto-plus ones (the engine
builds the call that way, see ``google_engine``).
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

from tongyeok_client.backoff import Backoff
from tongyeok_server.errors import ServiceError
from tongyeok_server.google import status as google_status
from tongyeok_server.google.status import Action, Failure
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    RecognitionListener,
    RecognizerNotice,
    RecognizerNoticeKind,
    RecognizerStream,
)
from tongyeok_server.recognition.google_audio_log import AudioLog
from tongyeok_server.recognition.google_call import (
    MAX_REQUEST_AUDIO_BYTES,
    WRITE_RACE,
    BeforeCall,
    CallOpener,
    Leg,
    StreamPolicy,
    audio_request,
    status_after_write_race,
)
from tongyeok_server.recognition.google_results import GoogleResults

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
        self._first_request = cloud_speech.StreamingRecognizeRequest.serialize(first_request)  # sent on every call
        self._loop = loop
        self._policy = policy
        self._on_close = on_close
        self._name = f"{name}-{config.session_id}" if config.session_id else name
        self._before_call = before_call
        self._who = f"session {config.session_id}" if config.session_id else "google stream"  # for log lines
        self._bps = config.audio.bytes_per_second
        frame = config.audio.frame_bytes
        self._frame = frame
        self._chunk = MAX_REQUEST_AUDIO_BYTES // frame * frame  # whole frames only

        # Touched only on the loop, except the three flags, which other
        # threads set (finish, cancel) and read (write) as plain attributes.
        self._audio = AudioLog(policy)  # from the last final to the newest byte: what is sent and resent
        self._last_write = time.monotonic()
        self._finished = False
        self._away = False  # the caller's connection broke (see caller_away)
        self._cancelled = False
        self._ended = False
        # Resolved by audio, finish, cancel or the idle timer: the parked sender
        # or run task re-checks (one of them at most is parked at a time).
        self._waiter: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._leg: Leg | None = None
        self._call: Any = None
        self._sender: asyncio.Task[None] | None = None
        self._task: asyncio.Task[ServiceError | None] | None = None
        self._done = threading.Event()  # the run task has ended (for join)
        self._results = GoogleResults(config)  # what the responses mean (transcripts, offsets, stable text)
        self.restarts = 0  # for tests and logs
        self.retries = 0

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
        if not audio or self._cancelled or self._ended or self._finished:
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
        if not audio or self._cancelled or self._ended or self._finished:
            return
        if asyncio.get_running_loop() is not self._loop:  # the caller's loop is not the engine's
            if not self._loop.is_closed():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.write_async(audio), self._loop))
            return
        if not self._audio.has_room(self._sent()):
            await self._audio.wait_for_room(self._sent, self._gone)
            if self._cancelled or self._ended or self._finished:
                return
        self._audio.append(audio)
        self._last_write = time.monotonic()
        self._away = False  # the audio goes on: from now on a silence is a pause
        self._wake()

    def finish(self) -> None:
        """No more audio: half-close after sending it all, deliver the finals, then ``RecognitionEnded``."""
        if self._finished:
            return
        self._finished = True
        self._call_on_loop(self._wake)

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
            self._away = True

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
        if self._sender is not None:
            self._sender.cancel()
        if self._task is not None:
            self._task.cancel()
        self._wake()
        self._audio.release_writers()

    def _sent(self) -> int:
        """The send cursor of the call in progress (the log's start between calls), for the log's room."""
        leg = self._leg
        return leg.pos if leg is not None else self._audio.start

    def _gone(self) -> bool:
        return self._cancelled or self._ended

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
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self._disarm_idle()
        try:
            if self._on_close is not None:
                self._on_close()
        finally:
            try:
                self._end(error)
            finally:
                self._done.set()

    def _wake(self) -> None:
        """Wake the parked task (sender, or run task between calls), if any, to re-check its state."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # cancelled with its task
                waiter.set_result(None)

    async def _park(self) -> None:
        """Wait for ``_wake``. Callers check their state first: a wake before this is not remembered."""
        waiter = self._waiter = self._loop.create_future()
        await waiter

    def _idle_fired(self) -> None:
        self._idle_timer = None
        self._wake()

    def _disarm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # ------------------------------------------------------------------ sender task (one per Google call)

    async def _send(self, call: Any, leg: Leg) -> None:
        policy = self._policy
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
                if self._finished:
                    log.debug("google stream: caller finished; half-closing")
                    leg.half_closed = True
                    await call.done_writing()
                    return
                idle = time.monotonic() - max(self._last_write, leg.opened)
                if idle >= policy.idle_close_s and self._away:
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
                if self._idle_timer is None:
                    # Re-armed only when it fires, so writes cost no timer.
                    self._idle_timer = self._loop.call_later(policy.idle_close_s - idle, self._idle_fired)
                await self._park()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended under us; the run task reads its status
        except Exception:
            log.exception("%s: sending to Google failed unexpectedly", self._who)
            call.cancel()  # the run task sees the call end

    # ------------------------------------------------------------------ run task (one per stream)

    async def _run(self) -> ServiceError | None:
        failures = 0  # consecutive attempts that brought no result
        policy = self._policy
        while True:
            while not (self._audio.has_audio_to_send() or self._finished):
                await self._park()
            if not self._audio.unfinalised_bytes:  # finished, everything finalised
                return None
            failure = await self._before_call() if self._before_call is not None else None
            progress = False
            if failure is None:
                leg = Leg(self._audio.start)
                failure = await self._attempt(leg)
                if failure is None:
                    failures = 0
                    continue
                progress = leg.progress
            if progress:
                failures = 0
            # A renewal of a stream that brought results is not a failure.
            if not (failure.action is Action.RESTART and progress):
                failures += 1
            if failure.action is Action.FAIL or failures > policy.max_retries:
                log.warning("%s: speech recognition ended: %s (%s)", self._who, failure.cause, failure.detail)
                return failure.ending(failures - 1 if failure.action is not Action.FAIL else 0)
            if failure.action is Action.RESTART:
                # Google's stream-duration (or audio-timeout) limit: reopen and resend at once.
                self._restarted("after Google ended it (its stream limit)", failure.detail)
            elif failure.action is Action.RETRY or failures > 1:
                await self._back_off(failure, failures)  # cancel() cancels this task, and with it the sleep
            else:  # RECHECK, the first time: the next attempt renews the credential itself
                log.info("%s: %s (%s); renewing the credential", self._who, failure.cause, failure.detail)

    async def _attempt(self, leg: Leg) -> Failure | None:
        """One Google call from ``leg``'s start; None if it ended as planned, else what went wrong."""
        self._leg = leg
        call = self._open_call()
        call.add_done_callback(leg.record_status)
        self._call = call
        self._sender = self._loop.create_task(self._send(call, leg), name=f"{self._name}-send")
        try:
            code, details, planned = await self._read(call, leg)
        finally:
            self._call = None
            leg.stop = True
            if self._sender is not None:
                self._sender.cancel()  # a no-op once it has half-closed
                self._sender = None
            self._disarm_idle()
            self._leg = None
        if leg.abandoned:
            self._audio.hold()  # the next call starts with the next audio, from the last final
            return None
        if code is grpc.StatusCode.OK and leg.half_closed:
            self._audio.trim_to(leg.pos)  # Google finalised everything this call carried
            return None
        if planned:
            self._restarted(f"after {(leg.pos - leg.base) / self._bps:.0f} s of audio", "at a final, as planned")
            return None
        return google_status.from_status(code, details, self._config.language_codes)

    async def _back_off(self, failure: Failure, attempt: int) -> None:
        """Tell the caller (RECOGNIZER_RETRYING) and the log, then wait before the next attempt."""
        policy = self._policy
        backoff = Backoff(policy.backoff_initial_s, policy.backoff_max_s)
        if failure.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            backoff = Backoff(policy.quota_backoff_initial_s, policy.quota_backoff_max_s)
        delay = backoff.delay_s(attempt)
        self.retries += 1
        log.warning(
            "%s: %s (%s); retry %d of %d in %.1f s",
            self._who,
            failure.cause,
            failure.detail,
            attempt,
            policy.max_retries,
            delay,
        )
        self._emit(
            RecognizerNotice(
                RecognizerNoticeKind.RETRYING,
                f"speech recognition interrupted: {failure.cause}; "
                f"retrying in {delay:.1f} s (attempt {attempt} of {policy.max_retries}); no audio is lost",
            )
        )
        await asyncio.sleep(delay)

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

    def _restarted(self, why: str, detail: str) -> None:
        """Say that a new Google stream resends the audio after the last final (``why`` for the caller too)."""
        self.restarts += 1
        resend_s = self._audio.unfinalised_bytes / self._bps
        log.info("%s: Google stream renewed %s (%s); resending %.2f s of audio", self._who, why, detail, resend_s)
        self._emit(
            RecognizerNotice(
                RecognizerNoticeKind.RESTARTED,
                f"speech recognition stream renewed {why}; {resend_s:.1f} s of audio resent",
            )
        )

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
