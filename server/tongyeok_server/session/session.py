"""One Interpret stream: audio in, recognition, per-language translation, events out.

Who touches a session: the servicer's coroutine and the stream's feeder task
(``log``, ``write_audio``, ``finish_audio``, ``cancel``), the recogniser's
listener (its transcripts become utterances in ``utterances.py``) and the
per-language translation lanes (``translations.py``), all on the server's event
loop. A recogniser that reports from a thread of its own (the embedded
engines' pipe readers) is brought onto the loop at the listener, so the
session's state changes in one place. Observers may ``emit`` and release
holds from any thread (the record's writer does), through one
``EventChannel``; every event a caller sees goes through ``_emit`` into the
session's ``EventLog``, which numbers it and keeps it for a stream to read,
now or after a resume.

A session may continue one that started on another server (``Continuation``:
its next utterance id and event number, the audio already taken, the
sentences said): ids, numbers and offsets then go on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

import grpc

from tongyeok_server.auth.caller import ANONYMOUS, Caller
from tongyeok_server.echo.base import EchoFilter
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    Recognizer,
    RecognizerNotice,
    RecognizerNoticeKind,
    RecognizerStream,
    SpeechActivity,
    Transcript,
)
from tongyeok_server.session import events as ev
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.continuation import Continuation
from tongyeok_server.session.end_gate import EndGate
from tongyeok_server.session.event_channel import EventChannel
from tongyeok_server.session.event_log import EventLog
from tongyeok_server.session.observer import ObserverList, SessionObserver
from tongyeok_server.session.stats import SessionStats, new_session_id
from tongyeok_server.session.translations import Translations
from tongyeok_server.session.utterances import Utterances
from tongyeok_server.translation.base import Translator

log = logging.getLogger(__name__)

_NOTICE_CODES = {
    RecognizerNoticeKind.RETRYING: ev.NoticeCode.RECOGNIZER_RETRYING,
    RecognizerNoticeKind.RESTARTED: ev.NoticeCode.RECOGNIZER_RESTARTED,
    RecognizerNoticeKind.BEHIND: ev.NoticeCode.RECOGNITION_BEHIND,
}


class Session:
    """The state of one Interpret stream; create it on the server's event loop."""

    def __init__(
        self,
        config: SessionConfig,
        recognizer: Recognizer,
        translator: Translator,
        session_id: str | None = None,
        caller: Caller = ANONYMOUS,
        continuation: Continuation | None = None,
    ) -> None:
        self.id = session_id or new_session_id()
        self.config = config
        #: Who opened the session (for the record, limits and logs).
        self.caller = caller
        self.stats = SessionStats()
        self.started_at = time.monotonic()
        #: When the last audio chunk arrived (monotonic), for the idle timeout.
        self.last_audio_at = self.started_at
        self._recognizer = recognizer
        self._translator = translator
        self._observers = ObserverList(self.id)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        start = continuation or Continuation(1, 1, 0)
        #: The session's numbered events, for the stream that reads them (now or after a resume).
        self.log = EventLog(start.next_sequence_number)
        #: Resolved when ``End`` is in the log.
        self.ended: asyncio.Future[None] = self._loop.create_future()
        self._events: EventChannel[ev.SessionEvent] = EventChannel(self._loop, self._accept, queue=False)
        self._stream: RecognizerStream | None = None
        #: Audio bytes of the session before this server's: offsets and byte counts start there.
        self.audio_base_bytes = start.audio_bytes
        self._gate = EndGate(self._loop, lambda: self._end(self._shutdown_error))
        self._translations = Translations(
            self.id, config, translator, self._emit, self._gate, self.stats, start, lambda: self._ended
        )
        # Simultaneous mode: the utterance in progress is translated while it is spoken (simultaneous/).
        self._simultaneous = self._translations.simultaneous
        self._utterances = Utterances(
            config,
            self.stats,
            self._emit,
            self._gate,
            self._translations,
            start,
            lambda: self.audio_bytes_taken,
            lambda: not (self._moving or self._ended),
        )
        self._ended_by_caller = False
        self._draining = False
        self._moving = False  # handing over to another server: recognition stopped, no final may follow
        self._ended = False
        self._echo: EchoFilter | None = None
        self._flushing: asyncio.Task[None] | None = None  # the echo filter's last audio on its way (see finish_audio)
        self.outcome: str = "open"  # "ok", "cancelled" or a status code name, for the log line

    # -- lifecycle -------------------------------------------------------

    def add_observer(self, observer: SessionObserver) -> None:
        """Let ``observer`` follow this session (before ``start``; see ``session/observer.py``)."""
        self._observers.add(observer)

    def set_echo_filter(self, echo: EchoFilter) -> None:
        """Keep the session's own speech out of its recognition (before ``start``; see ``echo/``)."""
        self._echo = echo
        self._utterances.set_echo_filter(echo)

    @property
    def echo_filter(self) -> EchoFilter | None:
        """The echo filter set, if any."""
        return self._echo

    def delivered(self, event: ev.SessionEvent) -> None:
        """The RPC wrote ``event`` to the caller's stream (on the loop): tell the observers that ask."""
        self._observers.delivered(event)

    def emit(self, event: ev.SessionEvent) -> None:
        """Add an event for the caller (from any thread); dropped once the session has ended."""
        self._emit(event)

    def hold(self) -> Callable[[], None]:
        """Keep the session from ending (OK) until the returned function is called (once, any thread).

        For observers whose work follows the last translation (its speech):
        take the hold in ``on_event`` of the event that starts the work. The
        release counts after the events its thread emitted before it (its
        last audio chunk): see ``session/end_gate.py``.
        """
        return self._gate.hold()

    def start(self) -> None:
        """Open the recogniser stream; raises ``ServiceError`` (e.g. no capacity)."""
        rc = RecognitionConfig(
            audio=self.config.audio,
            language_codes=self.config.source_languages,
            # Simultaneous mode translates the interims' stable text, whether or not the caller sees them.
            interim_results=self.config.interim_results or self._simultaneous is not None,
            voice_activity_events=self.config.voice_activity_events,
            session_id=self.id,
        )
        self._stream = self._recognizer.open_stream(rc, self._listener)

    async def write_audio(self, audio: bytes) -> None:
        """Pass one validated chunk on to the recogniser; returns when the engine has taken it."""
        stream = self._stream
        if self._draining or self._ended or stream is None:
            return
        self.stats.audio_bytes += len(audio)
        self.stats.chunks += 1
        self.last_audio_at = time.monotonic()
        if self._observers.want_audio:  # before the engine: the record keeps what the caller sent, in order
            self._observers.audio(audio)
        if self._echo is not None:  # the same length back, the session's own speech taken out
            audio = await self._echo.clean(audio)
            if self._stream is not stream or self._draining or self._ended:
                return  # finished, ended or handed over meanwhile (the recogniser was told: no more audio)
        await stream.write_async(audio)

    def caller_away(self, away: bool) -> None:
        """The caller's stream broke (``True``) or a resume brought it back (``False``): tell the recogniser."""
        stream = self._stream
        if stream is not None:
            stream.caller_away(away)

    @property
    def finishing(self) -> bool:
        """Whether the session takes no more audio (half-closed, draining, or ending)."""
        return self._draining or self._ended

    @property
    def ended_by_caller(self) -> bool:
        """Whether the caller said its audio is over (``end`` or a half-close), as opposed to the server."""
        return self._ended_by_caller

    def caller_ended_audio(self) -> None:
        """The caller sent ``end`` or half-closed: finish the last sentence and its translations."""
        self._ended_by_caller = True
        self.finish_audio()

    def finish_audio(self) -> None:
        """No more audio (the caller's end, or the server's reason): finish the last sentence and its translations."""
        if self._ended or self._draining:
            return
        self._draining = True
        if self._stream is not None:
            tail = self._echo.flush() if self._echo is not None else b""
            if tail:  # what the echo filter still holds back (a few milliseconds), then the end
                self._flushing = self._loop.create_task(self._finish_after(self._stream, tail))
            else:
                self._stream.finish()

    async def _finish_after(self, stream: RecognizerStream, tail: bytes) -> None:
        """Write the echo filter's last audio, then tell the recogniser the audio is over."""
        try:
            await stream.write_async(tail)
        except Exception:  # the engine's stream failed: its own end reports that
            log.debug("session %s: the last audio did not reach the recogniser", self.id, exc_info=True)
        if self._stream is stream and not self._moving:
            stream.finish()

    def drain(self) -> None:
        """Server shutdown: stop taking audio, finish what was heard, then UNAVAILABLE."""
        self.finish_with(
            ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; the last sentence was finished, reconnect to go on",
            )
        )

    def finish_with(self, error: ServiceError) -> None:
        """Stop taking audio, finish the sentence heard and its translations, then end with ``error``.

        For endings the caller did not ask for but that need not lose what
        was said: shutdown, the idle timeout, the maximum duration, a used-up
        quota. The first reason given is the one the caller gets.
        """
        if self._shutdown_error is None:
            self._shutdown_error = error
        self.finish_audio()

    def hand_over(self, error: ServiceError) -> bool:
        """Server shutdown, for a caller that can resume elsewhere: stop recognising now, finish the translations.

        The sentence in progress is dropped (the next server recognises it
        again, whole, from ``continuation().audio_bytes``), the translations
        (and their speech) of the finals already given are finished, then the
        session ends with ``error`` and an ``End.moved`` continuation. False
        if the session is already finishing (the caller asked for the end).
        """
        if self._ended or self._draining:
            return False
        self._draining = self._moving = True
        stream, self._stream = self._stream, None
        if self._shutdown_error is None:
            self._shutdown_error = error
        if stream is not None:
            stream.cancel()
        self._gate.recognition_finished()  # on the loop: at once
        return True

    def fail(self, error: ServiceError) -> None:
        """End the session now with ``error`` (e.g. a malformed request)."""
        self._end(error)

    def cancel(self) -> None:
        """The caller went away (or the RPC ended): stop everything now. Idempotent."""
        if not self._ended:
            self.outcome = "cancelled"
        self._end(None, emit=False)

    def close(self) -> None:
        """Release the session (on the loop, once its RPC is over): cancel what runs, tell the observers."""
        self.cancel()
        self._observers.close()

    @property
    def audio_bytes_taken(self) -> int:
        """Audio bytes of the session so far (from its first, on any server): where the caller's next byte goes."""
        return self.audio_base_bytes + self.stats.audio_bytes

    @property
    def next_utterance_id(self) -> int:
        """The id the next final will get."""
        return self._utterances.next_id

    @property
    def acknowledged_bytes(self) -> int:
        """Audio the session will never need again, wherever it continues: up to the end of the last final."""
        return self._utterances.acknowledged_bytes

    def continuation(self) -> Continuation:
        """Where this session would go on elsewhere: after its last final, its translations done.

        For a session that moves: the new one resends the audio after the
        last final (``acknowledged_bytes``), so the sentence in progress is
        recognised again there, whole, and nothing finished is repeated.
        Meaningful once the session has ended after ``hand_over``: its
        ``End`` is then the last event, and numbers go on after it. In
        simultaneous mode the caller may already have part of that
        sentence's translation: it goes along (``committed``), and the new
        server continues it rather than saying it again.
        """
        committed = self._simultaneous.in_progress() if self._simultaneous is not None else {}
        return Continuation(
            self._utterances.next_id,
            self.log.next_sequence_number,
            self.acknowledged_bytes,
            self._translations.history.export(),
            committed,
        )

    # -- internals ---------------------------------------------------------

    _shutdown_error: ServiceError | None = None

    def _emit(self, event: ev.SessionEvent) -> None:
        if not self._ended:
            self._events.put(event)

    def _accept(self, event: ev.SessionEvent) -> None:
        """Number and keep one event, then show it to the observers (on the loop, in the caller's order)."""
        if self.log.ended:
            return  # a late event from a thread, after End
        self.log.append(event)
        if isinstance(event, ev.End) and not self.ended.done():
            self.ended.set_result(None)
        self._observers.event(event)

    def _end(self, error: ServiceError | None, *, emit: bool = True) -> None:
        """Stop the recogniser and translations; emit ``End`` once."""
        if self._ended:
            return
        self._ended = True
        if self.outcome == "open":
            self.outcome = error.code.name if error is not None else "ok"
        stream, self._stream = self._stream, None
        if emit:
            self._events.put(ev.End(error, moved=self._moving and error is self._shutdown_error))
        else:
            self._events.put(ev.End(None))  # wakes a servicer still waiting
        if stream is not None:
            stream.cancel()
        self._translations.cancel()  # queued ones dropped, running ones cancelled (their HTTP streams closed)

    # -- recognition (on the loop) ---------------------------------------------------------

    def _listener(self, event: RecognitionEvent) -> None:
        """The recogniser's events, brought onto the loop (an embedded engine reports from its pipe's reader)."""
        if threading.get_ident() == self._loop_thread:
            self._on_recognition(event)
        else:
            # Per thread in order, as EventChannel does; a closed loop means the server has stopped.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_recognition, event)

    def _on_recognition(self, event: RecognitionEvent) -> None:
        if self._ended:
            return
        event = self._utterances.shifted(event)
        if isinstance(event, Transcript):
            if event.is_final:
                self._utterances.final(event)
            else:
                self._utterances.interim(event)
        elif isinstance(event, SpeechActivity):
            if self.config.voice_activity_events:
                self._emit(ev.Activity(event))
        elif isinstance(event, RecognizerNotice):
            self._emit(ev.Notice(_NOTICE_CODES[event.kind], event.message))
        elif isinstance(event, RecognitionEnded):
            if event.error is not None:
                self._end(event.error)
                return
            self._gate.recognition_finished()
