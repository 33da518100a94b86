"""One Interpret stream proxied into Google Speech-to-Text v2 streaming recognition.

A ``GoogleRecognizerStream`` hides Google's limits from the session:

- **Audio log.** Caller audio goes into one buffer that is both the send
  queue and the resend buffer: it holds every byte from the end of the last
  final result (``_buf_start``, an absolute byte position in the caller's
  audio) to the newest byte written. Each Google stream has a send cursor into
  it. A final result trims the buffer up to its ``result_end_offset``.
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
  alive with invented silence; the next audio opens a new stream.
- **Errors.** UNAVAILABLE and friends are retried with bounded exponential
  backoff, resending the unfinalised audio; everything else ends the stream
  with a ``ServiceError`` carrying Google's message.

Threads: one reader thread of ours per stream, plus the thread grpc starts to
consume each call's request generator (the generator below waits on a
condition, so it costs no CPU while there is nothing to send).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud.speech_v2.types import cloud_speech

from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    RecognitionListener,
    RecognizerNotice,
    RecognizerNoticeKind,
    RecognizerStream,
    SpeechActivity,
    Transcript,
)

log = logging.getLogger(__name__)

# Google's documented per-request audio limit (the proto comment; the quota page says 25 KB).
MAX_REQUEST_AUDIO_BYTES = 15360

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)

# Google's status -> the status our caller sees. Not listed: passed through.
_CALLER_CODE = {
    # The server's recogniser/project is wrong: not the caller's fault, not retryable.
    grpc.StatusCode.NOT_FOUND: grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.CANCELLED: grpc.StatusCode.UNAVAILABLE,
}

_PB_REQUEST = cloud_speech.StreamingRecognizeRequest.pb()
_BEGIN = int(cloud_speech.StreamingRecognizeResponse.SpeechEventType.SPEECH_ACTIVITY_BEGIN)
_END = int(cloud_speech.StreamingRecognizeResponse.SpeechEventType.SPEECH_ACTIVITY_END)

# Opens one Google streaming call for a request iterator; returns the grpc call
# (an iterator of response messages that can be cancelled).
CallOpener = Callable[[Iterator[Any]], Any]


@dataclass(frozen=True)
class StreamPolicy:
    """Timings of the restart, pause and retry policy (seconds of audio or wall time)."""

    soft_limit_s: float = 240.0  # audio per Google stream before restarting at the next final
    hard_limit_s: float = 290.0  # audio per Google stream before half-closing regardless (cap is 305)
    idle_close_s: float = 2.0  # wall time without caller audio before half-closing the Google stream
    max_retries: int = 5  # consecutive failed attempts before giving up
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 4.0
    # write() blocks above these (flow control). Unfinalised audio is what a
    # restart must resend: ~48 s of 16 kHz LINEAR16. If a speaker goes on that
    # long without a final, the writer waits, the idle rule half-closes the
    # Google stream, Google finalises, and the buffer empties.
    max_unfinalised_bytes: int = 1536 * 1024
    max_unsent_bytes: int = 256 * 1024


class _Leg:
    """One Google streaming call: where it started in the caller's audio and how far it got."""

    def __init__(self, base: int) -> None:
        self.base = base  # absolute byte position of this call's offset 0
        self.pos = base  # absolute byte position of the next byte to send
        self.opened = time.monotonic()
        self.half_closed = False  # our generator ended: Google will finalise and close
        self.stop = False  # the generator must end now (restart or cancel)
        self.progress = False  # Google sent at least one result


class GoogleRecognizerStream(RecognizerStream):
    """A ``RecognizerStream`` over one or more successive Google streaming calls."""

    def __init__(
        self,
        config: RecognitionConfig,
        listener: RecognitionListener,
        open_call: CallOpener,
        first_request: cloud_speech.StreamingRecognizeRequest,
        policy: StreamPolicy = StreamPolicy(),
        on_close: Callable[[], None] | None = None,
        name: str = "google-stt",
    ) -> None:
        self._config = config
        self._listener = listener
        self._open_call = open_call
        self._first_request = _PB_REQUEST()
        self._first_request.CopyFrom(cloud_speech.StreamingRecognizeRequest.pb(first_request))
        self._policy = policy
        self._on_close = on_close
        self._bps = config.audio.bytes_per_second
        frame = config.audio.frame_bytes
        self._frame = frame
        self._chunk = MAX_REQUEST_AUDIO_BYTES // frame * frame  # whole frames only
        self._languages = {c.lower(): c for c in config.language_codes}

        self._cond = threading.Condition()
        self._buf = bytearray()
        self._buf_start = 0  # absolute position of _buf[0]: end of the last final (or consumed audio)
        self._written = 0  # absolute position after the last byte the caller wrote
        self._last_write = time.monotonic()
        self._finished = False
        self._cancelled = False
        self._ended = False
        self._leg: _Leg | None = None
        self._call: Any = None
        self._last_final_end_s = 0.0
        self._speech_began_s: float | None = None
        self.restarts = 0  # for tests and logs
        self.retries = 0

        # Events are delivered under this lock so that none arrives after cancel() returns.
        self._emit_lock = threading.RLock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side

    def write(self, audio: bytes) -> None:
        """Queue caller audio.

        Blocks while the buffer is full: more than ``max_unsent_bytes`` not yet
        sent, or more than ``max_unfinalised_bytes`` not yet finalised. Real-time
        callers never wait; faster ones are paced by Google's results.
        """
        if not audio:
            return
        policy = self._policy
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._cancelled
                    or self._ended
                    or (
                        self._unsent() <= policy.max_unsent_bytes
                        and self._written - self._buf_start <= policy.max_unfinalised_bytes
                    )
                )
            )
            if self._cancelled or self._ended or self._finished:
                return
            self._buf += audio
            self._written += len(audio)
            self._last_write = time.monotonic()
            self._cond.notify_all()

    def finish(self) -> None:
        """No more audio: half-close after sending it all, deliver the finals, then ``RecognitionEnded``."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Close the Google call now; no event is delivered after this returns."""
        with self._emit_lock:
            self._cancelled = True
        with self._cond:
            self._cancelled = True
            call = self._call
        if call is not None:
            # Cancel before waking the request generator: a generator that ends
            # first would half-close, and Google would go on finalising.
            call.cancel()
        with self._cond:
            if self._leg is not None:
                self._leg.stop = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the reader thread to end (tests); True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ buffer

    def _unsent(self) -> int:
        pos = self._leg.pos if self._leg is not None else self._buf_start
        return self._written - pos

    def _trim_to(self, position: int) -> None:
        if position > self._buf_start:
            del self._buf[: position - self._buf_start]
            self._buf_start = position
            self._cond.notify_all()  # a writer may be waiting for room

    # ------------------------------------------------------------------ requests (grpc's consumer thread)

    def _requests(self, leg: _Leg) -> Iterator[Any]:
        yield self._first_request
        policy = self._policy
        hard_bytes = int(policy.hard_limit_s * self._bps)
        while True:
            with self._cond:
                while True:
                    if leg.stop:  # set only once the call is cancelled
                        return
                    if leg.pos < self._written:
                        if leg.pos - leg.base >= hard_bytes:
                            log.info(
                                "google stream: %.0f s of audio without a final; half-closing", policy.hard_limit_s
                            )
                            leg.half_closed = True
                            return
                        start = leg.pos - self._buf_start
                        chunk = bytes(self._buf[start : start + self._chunk])
                        leg.pos += len(chunk)
                        self._cond.notify_all()  # a writer may be waiting for room
                        break
                    if self._finished:
                        log.debug("google stream: caller finished; half-closing")
                        leg.half_closed = True
                        return
                    idle = time.monotonic() - max(self._last_write, leg.opened)
                    if idle >= policy.idle_close_s:
                        # The caller paused: let Google finalise and close rather than time out.
                        log.debug("google stream: no audio for %.1f s; half-closing", idle)
                        leg.half_closed = True
                        return
                    self._cond.wait(policy.idle_close_s - idle)
            yield _PB_REQUEST(audio=chunk)

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        try:
            error = self._loop()
        except Exception:
            log.exception("google stream failed unexpectedly")
            error = ServiceError(grpc.StatusCode.INTERNAL, "speech recognition failed unexpectedly")
        finally:
            if self._on_close is not None:
                self._on_close()
        self._end(error)

    def _loop(self) -> ServiceError | None:
        failures = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._cancelled or self._written > self._buf_start or self._finished)
                if self._cancelled:
                    return None
                if self._written == self._buf_start:  # finished, everything finalised
                    return None
                leg = _Leg(self._buf_start)
                self._leg = leg
            call = self._open_call(self._requests(leg))
            with self._cond:
                self._call = call
                cancelled = self._cancelled
            if cancelled:  # cancel() came while the call was being opened
                call.cancel()
                with self._cond:
                    leg.stop = True
                    self._cond.notify_all()
            code, details, planned = self._read(call, leg)
            with self._cond:
                self._call = None
                if self._cancelled:
                    return None
                if code is grpc.StatusCode.OK and leg.half_closed:
                    # Google finalised everything this call carried.
                    self._trim_to(leg.pos)
                    self._leg = None
                    failures = 0
                    continue
                self._leg = None  # resend from the last final
                resend_s = (self._written - self._buf_start) / self._bps
            if leg.progress:
                failures = 0
            if planned:
                self._restarted(f"after {(leg.pos - leg.base) / self._bps:.0f} s of audio", resend_s)
                continue
            if code is grpc.StatusCode.OUT_OF_RANGE or code is grpc.StatusCode.OK:
                # Google's stream-duration (or audio-timeout) limit: reopen and resend.
                failures += 0 if leg.progress else 1
                if failures > self._policy.max_retries:
                    return ServiceError(grpc.StatusCode.UNAVAILABLE, f"Speech-to-Text keeps ending streams: {details}")
                self._restarted(f"Google ended the stream ({details})", resend_s)
                continue
            if code in RETRYABLE:
                failures += 1
                if failures > self._policy.max_retries:
                    return ServiceError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"Speech-to-Text unavailable after {self._policy.max_retries} retries: {details}",
                    )
                delay = min(self._policy.backoff_max_s, self._policy.backoff_initial_s * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.2)
                self.retries += 1
                self._emit(
                    RecognizerNotice(
                        RecognizerNoticeKind.RETRYING,
                        f"speech recognition interrupted ({code.name}: {details}); "
                        f"retrying in {delay:.1f} s (attempt {failures} of {self._policy.max_retries})",
                    )
                )
                with self._cond:
                    if self._cond.wait_for(lambda: self._cancelled, timeout=delay):
                        return None
                continue
            return self._fatal(code, details)

    def _read(self, call: Any, leg: _Leg) -> tuple[grpc.StatusCode, str, bool]:
        """Deliver the call's responses; (final status, details, ended by a planned restart)."""
        soft_bytes = self._policy.soft_limit_s * self._bps
        try:
            for response in call:
                final = self._on_response(leg, cloud_speech.StreamingRecognizeResponse.pb(response))
                if final and leg.pos - leg.base >= soft_bytes and not leg.half_closed:
                    # Restart at this final: it ends in silence, and the next call
                    # resends from its end, so no word is cut or repeated.
                    call.cancel()
                    with self._cond:
                        leg.stop = True
                        self._cond.notify_all()
                    return grpc.StatusCode.CANCELLED, "planned restart", True
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", False
        return grpc.StatusCode.OK, "stream ended", False

    def _on_response(self, leg: _Leg, response: Any) -> bool:
        """Turn one response into events; True if it carried a final result."""
        base_s = leg.base / self._bps
        got_final = False
        if response.speech_event_type in (_BEGIN, _END):
            offset = base_s + response.speech_event_offset.ToNanoseconds() / 1e9
            if response.speech_event_type == _BEGIN:
                self._speech_began_s = offset
            if self._config.voice_activity_events:
                self._emit(SpeechActivity(began=response.speech_event_type == _BEGIN, offset_s=offset))
        interim_text: list[str] = []
        interim_stability = 1.0
        interim_end = self._last_final_end_s
        interim_language = ""
        for result in response.results:
            leg.progress = True
            if not result.alternatives:
                continue
            best = result.alternatives[0]
            end_ns = result.result_end_offset.ToNanoseconds()
            end_s = base_s + end_ns / 1e9
            language = self._language(result.language_code)
            if result.is_final:
                got_final = True
                self._final(best.transcript, language, end_ns, best.confidence, leg)
            else:
                interim_text.append(best.transcript)
                interim_stability = min(interim_stability, result.stability)
                interim_end = max(interim_end, end_s)
                interim_language = interim_language or language
        text = "".join(interim_text).strip()
        if text and self._config.interim_results:
            self._emit(
                Transcript(
                    text=text,
                    language_code=interim_language,
                    is_final=False,
                    start_offset_s=self._utterance_start(),
                    end_offset_s=interim_end,
                    stability=interim_stability,
                )
            )
        return got_final

    def _final(self, text: str, language: str, end_ns: int, confidence: float, leg: _Leg) -> None:
        # Google's offsets count from the start of this call; the call started at leg.base.
        end_pos = leg.base + end_ns * self._bps // 1_000_000_000
        end_pos -= (end_pos - leg.base) % self._frame
        end_s = max(end_pos / self._bps, self._last_final_end_s)
        start_s = self._utterance_start()
        with self._cond:
            # Audio up to this final's end never needs resending.
            self._trim_to(min(max(end_pos, self._buf_start), leg.pos))
        self._last_final_end_s = end_s
        self._speech_began_s = None
        if text.strip():
            self._emit(Transcript(text.strip(), language, True, start_s, end_s, stability=1.0, confidence=confidence))

    def _utterance_start(self) -> float:
        began = self._speech_began_s
        return max(began, self._last_final_end_s) if began is not None else self._last_final_end_s

    def _language(self, reported: str) -> str:
        """Google reports ``ko-kr``; callers configured ``ko-KR``."""
        if not reported:
            return self._config.language_codes[0]
        return self._languages.get(reported.lower(), reported)

    def _restarted(self, why: str, resend_s: float) -> None:
        self.restarts += 1
        log.info("google stream restarted %s; resending %.2f s of audio", why, resend_s)
        self._emit(
            RecognizerNotice(
                RecognizerNoticeKind.RESTARTED,
                f"speech recognition stream renewed {why}; {resend_s:.1f} s of audio resent",
            )
        )

    def _fatal(self, code: grpc.StatusCode, details: str) -> ServiceError:
        caller_code = _CALLER_CODE.get(code, code)
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            message = (
                f"Google Speech-to-Text refused the server's credentials ({code.name}): {details} "
                "Check the server's Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS or "
                "`gcloud auth application-default login`), --google-project, and that the account may use "
                "the Speech-to-Text API."
            )
        elif code is grpc.StatusCode.NOT_FOUND:
            message = (
                f"Google Speech-to-Text: {details} (check --google-project, --google-location, --google-recognizer)"
            )
        else:
            message = f"Google Speech-to-Text failed ({code.name}): {details}"
        return ServiceError(caller_code, message)

    # ------------------------------------------------------------------ events

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
        with self._cond:
            self._ended = True
            self._cond.notify_all()
