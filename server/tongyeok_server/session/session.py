"""One Interpret stream: audio in, recognition, per-language translation, events out.

Who touches a session: the servicer's coroutine and the stream's feeder task,
both on the server's event loop (``events()``, ``write_audio``,
``finish_audio``, ``cancel``); the recogniser's listener, on the loop
(Google) or on the engine's reader thread (pocketsphinx); the shared
translation threads (lane jobs). They meet at one lock, held only for a few
assignments, and one ``EventChannel``; every event a caller sees goes through
``_emit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import grpc

from tongyeok_server.auth.caller import ANONYMOUS, Caller
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
from tongyeok_server.session.event_channel import EventChannel
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.serial_lane import SerialLane
from tongyeok_server.session.translation_job import OpenTranslations, run_translation
from tongyeok_server.translation.base import ContextSentence, TranslationRequest, Translator

log = logging.getLogger(__name__)

# Sentences kept for translation context; the most a caller may ask for.
MAX_CONTEXT_SENTENCES = 50

_NOTICE_CODES = {
    RecognizerNoticeKind.RETRYING: ev.NoticeCode.RECOGNIZER_RETRYING,
    RecognizerNoticeKind.RESTARTED: ev.NoticeCode.RECOGNIZER_RESTARTED,
    RecognizerNoticeKind.BEHIND: ev.NoticeCode.RECOGNITION_BEHIND,
}


def new_session_id() -> str:
    """A session id unique across processes, replicas and restarts (the meeting record is keyed by it).

    The start time (UTC, to the second) keeps ids readable and sortable; 40
    random bits make two sessions started in the same second differ.
    """
    return time.strftime("s%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(5)


@dataclass
class _HistoryEntry:
    utterance_id: int
    text: str
    language: str
    translations: dict[str, str] = field(default_factory=dict)


@dataclass
class SessionStats:
    """Figures for the session's log line."""

    audio_bytes: int = 0
    chunks: int = 0
    interims: int = 0
    finals: int = 0
    translations: int = 0
    translation_failures: int = 0
    first_final_latency_s: float | None = None


class Session:
    """The state of one Interpret stream; create it on the server's event loop."""

    def __init__(
        self,
        config: SessionConfig,
        recognizer: Recognizer,
        translator: Translator,
        translation_executor: Executor,
        session_id: str | None = None,
        caller: Caller = ANONYMOUS,
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
        self._executor = translation_executor
        self._observers: list[SessionObserver] = []
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._events: EventChannel[ev.SessionEvent] = EventChannel(asyncio.get_running_loop(), self._observe)
        self._lock = threading.Lock()
        self._stream: RecognizerStream | None = None
        self._utterance_id = 1
        self._last_interim = ""
        self._history: deque[_HistoryEntry] = deque(maxlen=MAX_CONTEXT_SENTENCES)
        self._lanes = {target: SerialLane(translation_executor) for target in config.target_languages}
        self._open = OpenTranslations()
        self._pending_translations = 0
        self._holds = 0  # observers' work the end waits for (speech being spoken)
        self._recognition_done = False
        self._draining = False
        self._ended = False
        self.outcome: str = "open"  # "ok", "cancelled" or a status code name, for the log line

    # -- lifecycle -------------------------------------------------------

    def add_observer(self, observer: SessionObserver) -> None:
        """Let ``observer`` follow this session (before ``start``; see ``session/observer.py``)."""
        self._observers.append(observer)

    def emit(self, event: ev.SessionEvent) -> None:
        """Add an event for the caller (from any thread); dropped once the session has ended."""
        self._emit(event)

    def hold(self) -> Callable[[], None]:
        """Keep the session from ending (OK) until the returned function is called (once, any thread).

        For observers whose work follows the last translation (its speech):
        take the hold in ``on_event`` of the event that starts the work.
        """
        with self._lock:
            self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._holds -= 1
            self._maybe_done()

        return release

    def start(self) -> None:
        """Open the recogniser stream; raises ``ServiceError`` (e.g. no capacity)."""
        rc = RecognitionConfig(
            audio=self.config.audio,
            language_codes=self.config.source_languages,
            interim_results=self.config.interim_results,
            voice_activity_events=self.config.voice_activity_events,
            session_id=self.id,
        )
        self._stream = self._recognizer.open_stream(rc, self._on_recognition)

    async def write_audio(self, audio: bytes) -> None:
        """Pass one validated chunk on to the recogniser; returns when the engine has taken it."""
        stream = self._stream
        if self._draining or self._ended or stream is None:
            return
        self.stats.audio_bytes += len(audio)
        self.stats.chunks += 1
        self.last_audio_at = time.monotonic()
        if self._observers:  # before the engine: the record keeps what the caller sent, in order
            self._notify(lambda observer: observer.on_audio(audio))
        await stream.write_async(audio)

    @property
    def finishing(self) -> bool:
        """Whether the session takes no more audio (half-closed, draining, or ending)."""
        return self._draining or self._ended

    def finish_audio(self) -> None:
        """The caller half-closed: finish the last sentence and its translations."""
        with self._lock:
            if self._ended or self._draining:
                return
            self._draining = True
        if self._stream is not None:
            self._stream.finish()

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

    def fail(self, error: ServiceError) -> None:
        """End the session now with ``error`` (e.g. a malformed request)."""
        self._end(error)

    def cancel(self) -> None:
        """The caller went away (or the RPC ended): stop everything now. Idempotent."""
        with self._lock:
            was_open = not self._ended
            if was_open:
                self.outcome = "cancelled"
        self._end(None, emit=False)

    def close(self) -> None:
        """Release the session (on the loop, once its RPC is over): cancel what runs, tell the observers."""
        self.cancel()
        observers, self._observers = self._observers, []
        for observer in observers:
            try:
                observer.on_close()
            except Exception:
                log.exception("session %s: observer %s failed on close", self.id, type(observer).__name__)

    async def events(self) -> AsyncIterator[ev.SessionEvent]:
        """Events for the caller, ending with ``ev.End``."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, ev.End):
                return

    # -- internals ---------------------------------------------------------

    _shutdown_error: ServiceError | None = None

    def _emit(self, event: ev.SessionEvent) -> None:
        if not self._ended:
            self._events.put(event)

    def _observe(self, event: ev.SessionEvent) -> None:
        """Show one event to the observers (on the loop, in the caller's order)."""
        self._notify(lambda observer: observer.on_event(event))

    def _notify(self, call: Callable[[SessionObserver], None]) -> None:
        for observer in list(self._observers):
            try:
                call(observer)
            except Exception:
                # A bug in a follower (record, speech, metrics) must not cost the caller the meeting.
                log.exception("session %s: observer %s failed; detached", self.id, type(observer).__name__)
                self._observers.remove(observer)

    def _end(self, error: ServiceError | None, *, emit: bool = True) -> None:
        """Stop the recogniser and translations; emit ``End`` once."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            if self.outcome == "open":
                self.outcome = error.code.name if error is not None else "ok"
            stream, self._stream = self._stream, None
            for lane in self._lanes.values():
                lane.clear()
        if emit:
            self._events.put(ev.End(error))
        else:
            self._events.put(ev.End(None))  # wakes a servicer still waiting
        if stream is not None:
            stream.cancel()
        self._open.cancel_all()

    def _maybe_done(self) -> None:
        if threading.get_ident() != self._loop_thread:
            # Decide on the loop, after the events this thread queued before
            # (a translation's Complete) have reached the observers, so that
            # a hold they take for them counts.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._maybe_done)
            return
        with self._lock:
            done = self._recognition_done and self._pending_translations == 0 and self._holds == 0
        if done:
            self._end(self._shutdown_error)

    # -- recognition (the loop or the engine's thread) ---------------------------------------

    def _on_recognition(self, event: RecognitionEvent) -> None:
        if self._ended:
            return
        if isinstance(event, Transcript):
            if event.is_final:
                self._on_final(event)
            elif event.text and event.text != self._last_interim:
                self._last_interim = event.text
                self.stats.interims += 1
                self._emit(ev.Interim(self._utterance_id, event))
        elif isinstance(event, SpeechActivity):
            if self.config.voice_activity_events:
                self._emit(ev.Activity(event))
        elif isinstance(event, RecognizerNotice):
            self._emit(ev.Notice(_NOTICE_CODES[event.kind], event.message))
        elif isinstance(event, RecognitionEnded):
            if event.error is not None:
                self._end(event.error)
                return
            with self._lock:
                self._recognition_done = True
            self._maybe_done()

    def _on_final(self, transcript: Transcript) -> None:
        text = transcript.text.strip()
        if not text:
            return
        utterance_id = self._utterance_id
        self._utterance_id += 1
        self._last_interim = ""
        targets = self.config.targets_for(transcript.language_code)
        self.stats.finals += 1
        self._emit(ev.Final(utterance_id, transcript, targets))
        entry = _HistoryEntry(utterance_id, text, transcript.language_code)
        context = self._context(self.config.translation.context_sentences)
        self._history.append(entry)
        for target in targets:
            with self._lock:
                if self._ended:
                    return
                self._pending_translations += 1
            request = TranslationRequest(
                text, transcript.language_code, target, self.config.translation, context, session_id=self.id
            )
            self._lanes[target].submit(functools.partial(self._translate, entry, request))

    def _context(self, n: int) -> tuple[ContextSentence, ...]:
        if n <= 0:
            return ()
        recent = list(self._history)[-n:]
        return tuple(ContextSentence(h.text, h.language, "") for h in recent)

    # -- translation (shared translation threads) ---------------------------

    def _translate(self, entry: _HistoryEntry, request: TranslationRequest) -> None:
        try:
            if self._ended:
                return
            # Context gets the translations finished since the job was queued.
            request = _with_translations(request, self._history, request.target_language)
            text = run_translation(self._translator, request, entry.utterance_id, self._emit, self._open)
            if text is not None:
                entry.translations[request.target_language] = text
                self.stats.translations += 1
            elif not self._open.cancelled:
                self.stats.translation_failures += 1
        finally:
            # Count the translation done on the loop, after the Complete this thread queued there:
            # counted here, a _maybe_done the recogniser's thread had queued earlier could see no
            # pending translation and end the stream before the Complete reached the caller.
            if threading.get_ident() == self._loop_thread:
                self._translation_done()
            else:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                    self._loop.call_soon_threadsafe(self._translation_done)

    def _translation_done(self) -> None:
        with self._lock:
            self._pending_translations -= 1
        self._maybe_done()


def _with_translations(request: TranslationRequest, history: deque[_HistoryEntry], target: str) -> TranslationRequest:
    """Fill in the context sentences' translations into ``target`` known by now."""
    if not request.context:
        return request
    by_text = {(h.text, h.language): h.translations.get(target, "") for h in list(history)}
    context = tuple(
        ContextSentence(c.text, c.language_code, by_text.get((c.text, c.language_code), "")) for c in request.context
    )
    from dataclasses import replace

    return replace(request, context=context)
