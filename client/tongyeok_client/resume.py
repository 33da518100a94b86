"""An Interpret stream that survives a broken connection: reconnect, resend, carry on.

How it works (``ResumingStream``):

- The caller's audio is read by a thread of its own into an ``AudioBuffer``
  (so reading it never waits for the network); each gRPC call sends from
  the buffer. The buffer keeps what the server has not acknowledged
  (``audio_acknowledged``), at most ``max_buffer_s`` of audio (the server's
  resume window, 120 s by default): past that the reader stops reading the
  source until the server acknowledges more, so no audio is ever dropped
  silently.
- Every event carries its sequence number; the stream remembers the last
  one it yielded and the session's resume token (from ``session_started``,
  replaced by a ``resume_token_update``).
- When the call breaks (UNAVAILABLE, a reset, a keepalive that went
  unanswered: see ``channel.KEEPALIVE_OPTIONS``) the stream yields a
  ``Reconnecting`` event, waits with the one back-off policy
  (``backoff.py``: 0.25 s doubling to 4 s, +-20 %), and opens a new call whose first message is
  ``resume`` (the token, the last sequence number). The server answers
  ``session_resumed`` with the byte to resend from; the stream resends the
  buffered audio from there and goes on with the source. Events the
  server sends again that were already yielded are skipped, so the
  caller's iterator simply continues.
- It gives up when reconnecting has taken longer than the session's resume
  window, or at once on an answer that a retry cannot change
  (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT, ...), raising
  ``TongyeokError``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2

from .backoff import Backoff
from .errors import TongyeokError
from .events import Event, Reconnecting, event_from_proto
from .proto import interpreter_pb2 as pb

#: Statuses after which a resume may succeed (the connection or the server went away, not the request).
RESUMABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)
DEFAULT_WINDOW_S = 120.0


#: Waits between reconnects: 0.25 s doubling to 4 s (a network that is back is found within a second or two).
RECONNECT_BACKOFF = Backoff(0.25, 4.0)


class AudioBuffer:
    """The caller's audio from the oldest unacknowledged byte on, fed by one thread, read by calls."""

    def __init__(self, limit_bytes: int) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[tuple[int, bytes]] = deque()  # (offset of the chunk's first byte, bytes)
        self._limit = limit_bytes
        self.end = 0  # bytes appended so far
        self.acknowledged = 0
        self.finished = False
        self.error: Exception | None = None
        self._closed = False

    def append(self, chunk: bytes) -> bool:
        """Add the source's next chunk; waits while the buffer is full. False once closed."""
        with self._cond:
            while not self._closed and self.end - self.acknowledged >= self._limit:
                self._cond.wait()
            if self._closed:
                return False
            self._chunks.append((self.end, chunk))
            self.end += len(chunk)
            self._cond.notify_all()
            return True

    def finish(self, error: Exception | None = None) -> None:
        """The source is exhausted (or raised ``error``)."""
        with self._cond:
            self.finished = True
            self.error = self.error or error
            self._cond.notify_all()

    def acknowledge(self, upto: int) -> None:
        """The server will never ask for the bytes before ``upto`` again."""
        with self._cond:
            if upto <= self.acknowledged:
                return
            self.acknowledged = upto
            while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= upto:
                self._chunks.popleft()
            self._cond.notify_all()

    def close(self) -> None:
        """Wake everything up; nothing more is read or sent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def chunks_from(self, offset: int, stop: threading.Event) -> Iterator[bytes]:
        """The audio from byte ``offset`` on, waiting for more until the source ends (or ``stop``)."""
        position = offset
        while True:
            with self._cond:
                while not (self._closed or stop.is_set()) and position >= self.end and not self.finished:
                    self._cond.wait(0.5)
                if self._closed or stop.is_set() or (position >= self.end and self.finished):
                    return
                if position < (self._chunks[0][0] if self._chunks else self.end):
                    raise RuntimeError(f"audio from byte {position} is no longer kept (kept from {self.acknowledged})")
                pieces = []
                for start, chunk in self._chunks:
                    if start + len(chunk) <= position:
                        continue
                    pieces.append(chunk[max(0, position - start) :])
                position = self.end
            yield from pieces


@dataclass
class _Attempt:
    """One gRPC call of the stream: where its audio starts, known once the server says."""

    first: pb.InterpretRequest
    resend_from: int | None  # None until session_resumed
    started: threading.Event
    stop: threading.Event


class ResumingStream:
    """One Interpret session over as many calls as the network makes it take (see the module docstring)."""

    def __init__(
        self,
        call: Callable[[Iterator[pb.InterpretRequest], bool], Any],
        config: pb.InterpretConfig,
        audio: Iterable[bytes],
        *,
        resume: bool = True,
        max_buffer_s: float = DEFAULT_WINDOW_S,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._call = call
        self._config = config
        if resume:
            self._config = pb.InterpretConfig()
            self._config.CopyFrom(config)
            self._config.resumption.enabled = True
        self._resume = resume
        spec = config.audio_format
        frame = (2 if spec.encoding == pb.AUDIO_ENCODING_LINEAR16 else 1) * max(1, spec.channel_count)
        self.buffer = AudioBuffer(max(1 << 16, int(max_buffer_s * max(8000, spec.sample_rate_hertz) * frame)))
        self._audio = audio
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.token = ""
        self.last_sequence_number = 0
        self.window_s = DEFAULT_WINDOW_S
        self.reconnects = 0

    def events(self) -> Generator[Event, None, None]:
        """The session's events, across reconnects.

        Raises ``grpc.RpcError`` for an answer a retry cannot change, and
        ``TongyeokError`` when the connection could not be restored in time.
        """
        reader = threading.Thread(target=self._read_source, name="tongyeok-audio", daemon=True)
        reader.start()
        attempt = _Attempt(pb.InterpretRequest(config=self._config), 0, threading.Event(), threading.Event())
        broke_at: float | None = None
        tries = 0
        try:
            while True:
                current = attempt
                resuming = current.first.WhichOneof("request") == "resume"
                # A resume waits for the channel to connect (it retries every second at most) rather than
                # failing at once while gRPC waits out a backoff; a timer keeps it within the window.
                call = self._call(self._requests(current), resuming)
                guard = None
                timed_out = threading.Event()
                if resuming and broke_at is not None:

                    def give_up(call: Any = call, timed_out: threading.Event = timed_out) -> None:
                        timed_out.set()
                        call.cancel()

                    guard = threading.Timer(max(0.5, self.window_s - (time.monotonic() - broke_at)), give_up)
                    guard.daemon = True
                    guard.start()
                try:
                    for response in call:
                        if broke_at is not None and response.WhichOneof("event") == "session_resumed":
                            broke_at, tries = None, 0
                            if guard is not None:
                                guard.cancel()
                        event = self._take(response, current)
                        if event is not None:
                            yield event
                    return
                except grpc.RpcError as error:
                    if self.buffer.error is not None:
                        raise self.buffer.error from None
                    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
                    if not (self._resume and self.token and code in RESUMABLE):
                        raise
                    now = time.monotonic()
                    broke_at = broke_at or now
                    if now - broke_at > self.window_s or timed_out.is_set():  # (one attempt at least)
                        last = (
                            "no connection"
                            if timed_out.is_set()
                            else error.details()
                            if isinstance(error, grpc.Call)
                            else str(error)
                        )
                        raise TongyeokError(
                            grpc.StatusCode.UNAVAILABLE,
                            f"the connection broke and could not be restored within the session's resume window "
                            f"of {self.window_s:g} s (last error: {last})",
                        ) from None
                    tries += 1
                    self.reconnects += 1
                    details = error.details() if isinstance(error, grpc.Call) else str(error)
                    yield _reconnecting(tries, f"{code.name}: {details}")
                    self._sleep(RECONNECT_BACKOFF.delay_s(tries, self._rng))
                    attempt = _Attempt(
                        pb.InterpretRequest(
                            resume=pb.ResumeRequest(
                                resume_token=self.token, last_sequence_number=self.last_sequence_number
                            )
                        ),
                        None,
                        threading.Event(),
                        threading.Event(),
                    )
                finally:
                    if guard is not None:
                        guard.cancel()
                    current.stop.set()
                    call.cancel()
        finally:
            self.buffer.close()

    def _take(self, response: pb.InterpretResponse, attempt: _Attempt) -> Event | None:
        """Book-keeping for one response; the event to yield, if any."""
        kind = response.WhichOneof("event")
        if kind == "audio_acknowledged":
            self.buffer.acknowledge(response.audio_acknowledged.acknowledged_bytes)
            return None
        if kind == "resume_token_update":
            self.token = response.resume_token_update.resume_token
            self.last_sequence_number = max(self.last_sequence_number, response.sequence_number)
            return None
        if kind == "session_resumed":
            attempt.resend_from = response.session_resumed.resend_from_byte
            attempt.started.set()
            return event_from_proto(response)
        seq = response.sequence_number
        if seq and seq <= self.last_sequence_number:
            return None  # sent again after a resume, already yielded
        self.last_sequence_number = max(self.last_sequence_number, seq)
        if kind == "session_started":
            started = response.session_started
            self.token = started.resume_token
            if started.HasField("resume_window"):
                self.window_s = started.resume_window.seconds + started.resume_window.nanos / 1e9
        return event_from_proto(response)

    def _requests(self, attempt: _Attempt) -> Iterator[pb.InterpretRequest]:
        """What one call sends: its first message, the audio from where the server wants it, then ``end``."""
        yield attempt.first
        if attempt.resend_from is None:
            while not attempt.started.wait(0.5):
                if attempt.stop.is_set():
                    return
        assert attempt.resend_from is not None
        for chunk in self.buffer.chunks_from(attempt.resend_from, attempt.stop):
            yield pb.InterpretRequest(audio=chunk)
        if self.buffer.error is not None:
            # Ends the call; events() re-raises the source's own exception rather than gRPC's opaque one.
            raise RuntimeError("the audio source failed")
        if not attempt.stop.is_set():
            yield pb.InterpretRequest(end=pb.EndOfAudio())

    def _read_source(self) -> None:
        try:
            for chunk in self._audio:
                if chunk and not self.buffer.append(chunk):
                    return
        except Exception as e:  # re-raised by events(), on the caller's thread
            self.buffer.finish(e)
            return
        self.buffer.finish()


def _reconnecting(attempt: int, reason: str) -> Reconnecting:
    raw = struct_pb2.Struct()
    raw.update({"reconnecting": {"attempt": attempt, "reason": reason}})
    return Reconnecting(attempt, reason, raw)
