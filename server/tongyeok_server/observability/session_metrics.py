"""Metrics about sessions, through the observer seam: what each session's caller saw, counted.

``MetricsExtension`` attaches a ``_SessionMetrics`` observer to every
Interpret session. The hot path is kept to a few Python operations per
event: counts are plain ints on the observer, added to the Prometheus
counters every ``FLUSH_S`` (one timer on the event loop for all sessions)
and when the session closes; only the latency histograms are observed per
event (transcripts, and the first token / first audio of each
translation), because a histogram cannot be summed later. Audio received
is read from the session's own figures at each flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from tongyeok_server.errors import ServiceError
from tongyeok_server.observability.metrics import Metrics
from tongyeok_server.session import events as ev
from tongyeok_server.session.extension import SessionExtension
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.session import Session

# How often open sessions' counts reach the counters (a scrape is usually every 15-30 s).
FLUSH_S = 5.0


class MetricsExtension(SessionExtension):
    """Follows every Interpret session for the metrics; counts refused streams."""

    def __init__(self, metrics: Metrics, flush_s: float = FLUSH_S) -> None:
        self.metrics = metrics
        self._flush_s = flush_s
        self._open: set[_SessionMetrics] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def attach(self, session: Session) -> SessionObserver | None:
        observer = _SessionMetrics(self, session)
        self._open.add(observer)
        if self._timer is None:  # attach runs on the event loop: start the flush timer there
            self._loop = asyncio.get_running_loop()
            self._timer = self._loop.call_later(self._flush_s, self._tick)
        return observer

    def stream_refused(self, error: ServiceError) -> None:
        self.metrics.streams_refused.labels(error.code.name).inc()

    def stream_resumed(self, session: Session, moved: bool) -> None:
        self.metrics.resumes.labels("moved" if moved else "reconnected").inc()

    def _tick(self) -> None:
        for observer in list(self._open):
            observer.flush()
        assert self._loop is not None
        self._timer = self._loop.call_later(self._flush_s, self._tick)

    def _closed(self, observer: _SessionMetrics) -> None:
        self._open.discard(observer)

    def close(self) -> None:
        loop, timer = self._loop, self._timer
        if loop is not None and timer is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(timer.cancel)


class _SessionMetrics(SessionObserver):
    """One session's counts and timings (every method runs on the event loop)."""

    def __init__(self, extension: MetricsExtension, session: Session) -> None:
        m = self.metrics = extension.metrics
        self._extension = extension
        self._session = session
        self._caller = m.caller_label(session.caller)
        m.streams_started.labels(self._caller).inc()
        m.streams_open.inc()
        # Children bound once per session: labels() costs a dict look-up and a lock.
        self._audio = m.audio_received.labels(self._caller)
        self._interim_latency = m.event_latency.labels("interim")
        self._final_latency = m.event_latency.labels("final")
        self._queued: dict[int, float] = {}  # id(event) -> when the session queued it
        self._final_at: dict[int, float] = {}  # utterance id -> when its final was queued (the latest few)
        self._first_token: dict[tuple[int, str], None] = {}  # (utterance, language) seen (the latest few)
        self._first_audio: dict[tuple[int, str], None] = {}
        self._counts = {"interim": 0, "final": 0, "translations": 0, "spoken": 0}
        self._flushed = dict.fromkeys(self._counts, 0)
        self._audio_bytes = 0
        self._closed = False

    # -- the hot path ----------------------------------------------------------------

    def on_event(self, event: ev.SessionEvent) -> None:
        if isinstance(event, ev.Token):
            if _first(self._first_token, (event.utterance_id, event.target_language)):
                self._since_final(event.utterance_id, self.metrics.first_token)
        elif isinstance(event, ev.Interim):
            self._queued[id(event)] = time.monotonic()
        elif isinstance(event, ev.Final):
            now = time.monotonic()
            self._queued[id(event)] = now
            _remember(self._final_at, event.utterance_id, now)
        elif isinstance(event, ev.Audio):
            if _first(self._first_audio, (event.utterance_id, event.target_language)):
                self._since_final(event.utterance_id, self.metrics.first_speech)
            if event.last:
                self._counts["spoken"] += 1
        elif isinstance(event, ev.Notice):
            self._on_notice(event)

    def on_delivered(self, event: ev.SessionEvent) -> None:
        # Transcripts and translations are counted as the caller got them, not as they were made.
        queued = self._queued.pop(id(event), None)
        if queued is not None:
            if isinstance(event, ev.Interim):
                self._counts["interim"] += 1
                self._interim_latency.observe(time.monotonic() - queued)
            elif isinstance(event, ev.Final):
                self._counts["final"] += 1
                self._final_latency.observe(time.monotonic() - queued)
        elif isinstance(event, ev.Complete):
            self._counts["translations"] += 1

    # -- the rest --------------------------------------------------------------------

    def _since_final(self, utterance_id: int, histogram: Any) -> None:
        final_at = self._final_at.get(utterance_id)
        if final_at is not None:
            histogram.observe(time.monotonic() - final_at)

    def _on_notice(self, notice: ev.Notice) -> None:
        code = notice.code.name
        self.metrics.notices.labels(code).inc()
        if notice.code is ev.NoticeCode.TRANSLATION_FAILED:
            self.metrics.engine_errors.labels("translator", code).inc()
        elif notice.code is ev.NoticeCode.SYNTHESIS_FAILED:
            self.metrics.engine_errors.labels("synthesizer", code).inc()

    def flush(self) -> None:
        """Add what the session did since the last flush to the counters."""
        m = self.metrics
        for name, value in self._counts.items():
            delta = value - self._flushed[name]
            if not delta:
                continue
            self._flushed[name] = value
            if name in ("interim", "final"):
                m.transcripts.labels(name).inc(delta)
            elif name == "translations":
                m.translations.inc(delta)
            else:
                m.speech_utterances.inc(delta)
        audio_bytes = self._session.stats.audio_bytes
        if audio_bytes > self._audio_bytes:
            self._audio.inc(self._session.config.audio.duration_s(audio_bytes - self._audio_bytes))
            self._audio_bytes = audio_bytes
        # Events the caller never got (the stream ended) would otherwise stay here.
        if len(self._queued) > 1000:
            self._queued.clear()

    def on_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        m, session = self.metrics, self._session
        outcome = session.outcome
        if outcome in ("ok", "cancelled"):
            m.streams_ended.labels(outcome, "OK" if outcome == "ok" else "CANCELLED").inc()
        else:
            m.streams_ended.labels("error", outcome).inc()
        m.streams_open.dec()
        self._extension._closed(self)


# Per-utterance bookkeeping is kept for the latest few utterances only: an hour-long
# meeting has a thousand, and a translation's first token or audio comes within seconds.
_KEEP = 64


def _remember(store: dict[Any, Any], key: Any, value: Any) -> None:
    store[key] = value
    if len(store) > _KEEP:
        del store[next(iter(store))]


def _first(seen: dict[Any, None], key: Any) -> bool:
    """Whether ``key`` is new (and remember it)."""
    if key in seen:
        return False
    _remember(seen, key, None)
    return True
