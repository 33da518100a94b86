"""The server's Prometheus metrics: one ``Metrics`` object per server process, every name in one place.

Names follow Prometheus' conventions: ``tongyeok_`` prefix, base units
(seconds), ``_total`` on counters (prometheus-client adds it), labels with
a small fixed set of values. No label carries text, a token or an
unbounded identity: callers are named by ``CallerLabels`` (API-key ids, a
bounded number of them; every JWT caller is ``jwt``).

Under ``--processes N`` each server process writes its values to
memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's
multiprocess mode; the supervisor in ``main.py`` makes and removes that
directory and serves the sum, see ``observability/exporter.py``). The
gauge of open streams is ``livesum``: a process that exited no longer
counts.

The meeting record's writer thread reports through ``store_observer()``
(``store.writer.WriterObserver``): each write's lag, and failed writes by
reason.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tongyeok_server.auth.caller import Caller, CallerKind

# Seconds. Per-event latency is what the server adds (sub-millisecond when
# healthy, tens of ms when a loop is saturated); time to first token and to
# first speech are the engines' (a cloud model: 0.2-2 s).
EVENT_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FIRST_OUTPUT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
STORE_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

OTHER_CALLERS = "other"


class StoreWriteMetrics:
    """The meeting record's writes as metrics (called on the writer thread; prometheus-client is thread-safe)."""

    def __init__(self, lag: Histogram, errors: Counter) -> None:
        self._lag = lag
        self._errors = errors

    def written(self, lags_s: list[float]) -> None:
        """Writes committed, each with its time from the event to the commit."""
        for lag in lags_s:
            self._lag.observe(lag)

    def failed(self, reason: str, count: int) -> None:
        """``count`` writes failed for ``reason``."""
        self._errors.labels(reason).inc(count)


class CallerLabels:
    """The ``caller`` label of a caller: bounded, never a credential, never an end user.

    ``key:<id>`` for the first ``limit`` API keys seen by this process (an
    operator's backends: a keys file holds a handful), ``other`` beyond;
    ``jwt`` for every JWT caller (their subjects are app users: unbounded);
    ``anonymous`` without authentication.
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(0, limit)
        self._named: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, caller: Caller) -> str:
        if caller.kind is CallerKind.ANONYMOUS:
            return "anonymous"
        if caller.kind is CallerKind.JWT:
            return "jwt"
        label = self._named.get(caller.id)
        if label is not None:
            return label
        with self._lock:
            label = self._named.get(caller.id)
            if label is None:
                label = caller.id if len(self._named) < self._limit else OTHER_CALLERS
                if label != OTHER_CALLERS:
                    self._named[caller.id] = label
            return label


class Metrics:
    """Every metric of one server process, registered in ``registry`` (a fresh one by default).

    One object per server rather than module globals, so that servers in
    one process (the tests) keep their own counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None, caller_labels: int = 100) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.caller_label = CallerLabels(caller_labels)

        # Streams.
        self.streams_open = Gauge(
            "tongyeok_streams_open",
            "Interpret streams open now (the autoscaling signal)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.streams_started = Counter(
            "tongyeok_streams_started", "Interpret streams whose session started", ["caller"], registry=r
        )
        self.streams_ended = Counter(
            "tongyeok_streams_ended",
            "Interpret streams ended: outcome ok, cancelled (the caller went away) or error, and the gRPC status",
            ["outcome", "code"],
            registry=r,
        )
        self.streams_refused = Counter(
            "tongyeok_streams_refused",
            "Interpret streams refused before a session started (bad config, server full, a caller's limit, "
            "shutting down), by gRPC status",
            ["code"],
            registry=r,
        )
        self.audio_received = Counter(
            "tongyeok_audio_received_seconds", "Seconds of caller audio received", ["caller"], registry=r
        )
        self.resumes = Counter(
            "tongyeok_sessions_resumed",
            "Sessions resumed on a new stream: reconnected (here after a break) or moved (from a server that shut down)",
            ["how"],
            registry=r,
        )

        # What the sessions produced.
        self.transcripts = Counter(
            "tongyeok_transcripts", "Transcript events sent to callers, by kind (interim, final)", ["kind"], registry=r
        )
        self.translations = Counter(
            "tongyeok_translations",
            "Translations of a final transcript completed (one per target language)",
            registry=r,
        )
        self.speech_utterances = Counter(
            "tongyeok_speech_utterances", "Translations spoken to the end (speech output)", registry=r
        )
        self.notices = Counter(
            "tongyeok_notices",
            "Notices sent to callers, by code (RECOGNIZER_RETRYING, RECOGNIZER_RESTARTED, TRANSLATION_FAILED, ...)",
            ["code"],
            registry=r,
        )
        self.engine_errors = Counter(
            "tongyeok_engine_errors",
            "Engine failures: a recogniser ending a stream with an error, a translation or a synthesis that failed",
            ["engine", "code"],
            registry=r,
        )

        # Latency.
        self.event_latency = Histogram(
            "tongyeok_event_added_latency_seconds",
            "From a result reaching the session (on the event loop) to its event written to the caller's stream",
            ["kind"],
            buckets=EVENT_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "tongyeok_final_to_first_token_seconds",
            "From a final transcript to the first token of its translation, per target language",
            buckets=FIRST_OUTPUT_BUCKETS,
            registry=r,
        )
        self.first_speech = Histogram(
            "tongyeok_final_to_first_speech_seconds",
            "From a final transcript to the first audio of its spoken translation (speech output)",
            buckets=FIRST_OUTPUT_BUCKETS,
            registry=r,
        )

        # The edge: authentication and limits (explicit calls from auth/).
        self.auth_refusals = Counter(
            "tongyeok_auth_refusals",
            "Calls refused by authentication, by reason (missing, malformed, unknown_key, invalid_jwt, scope, ...)",
            ["reason", "code"],
            registry=r,
        )
        self.limit_refusals = Counter(
            "tongyeok_limit_refusals",
            "Streams refused or ended by a per-caller limit (concurrent, opening, per_minute, audio_per_day)",
            ["limit", "caller"],
            registry=r,
        )

        # The meeting record: its writer thread updates these through store_observer().
        self.store_write_lag = Histogram(
            "tongyeok_store_write_lag_seconds",
            "From an event of a session to its row committed in the meeting record",
            buckets=STORE_LAG_BUCKETS,
            registry=r,
        )
        self.store_write_errors = Counter(
            "tongyeok_store_write_errors",
            "Meeting-record writes that failed: unreachable (held and retried), invalid or buffer_full (lost)",
            ["reason"],
            registry=r,
        )

    def store_observer(self) -> StoreWriteMetrics:
        """What the meeting record's writer reports to (a ``store.writer.WriterObserver``)."""
        return StoreWriteMetrics(self.store_write_lag, self.store_write_errors)

    # -- explicit calls from the edge (auth.limits.RefusalObserver) ------------------

    def auth_refused(self, reason: str, code: str) -> None:
        """Authentication refused a call (``reason`` is one of the authenticator's short words)."""
        self.auth_refusals.labels(reason, code).inc()

    def limit_refused(self, limit: str, caller: Caller) -> None:
        """A per-caller limit refused a stream (or ended one: the day's audio)."""
        self.limit_refusals.labels(limit, self.caller_label(caller)).inc()
