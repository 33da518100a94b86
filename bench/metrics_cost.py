"""The metrics' CPU per event, measured in a process of its own: ``python -m bench.metrics_cost [--multiprocess]``.

A server-wide A/B (metrics on against off) drowns in the noise of a shared
machine, so this drives the session-metrics observer directly with the
event mix of a cloud stream (per utterance: 5 interims, a final, 10
tokens, a complete; each event seen and then delivered, as the session and
the RPC do) and reports process CPU per event, with prometheus-client's
single-process values or, with ``--multiprocess``, its memory-mapped files
(``--processes N``). Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

UTTERANCES = 2000
INTERIMS, TOKENS = 5, 10


def measure(utterances: int = UTTERANCES) -> dict[str, Any]:
    """CPU seconds per event through the metrics observer, and through a bare observer (the floor)."""
    from tongyeok_server.auth.caller import ANONYMOUS
    from tongyeok_server.observability.metrics import Metrics
    from tongyeok_server.observability.session_metrics import MetricsExtension, _SessionMetrics
    from tongyeok_server.recognition.base import Transcript
    from tongyeok_server.session import events as ev
    from tongyeok_server.session.observer import SessionObserver

    # What the observer reads of its session: the caller, the audio figures.
    session: Any = SimpleNamespace(
        caller=ANONYMOUS,
        stats=SimpleNamespace(audio_bytes=0),
        config=SimpleNamespace(audio=SimpleNamespace(duration_s=lambda b: b / 32000)),
    )
    events: list[Any] = []
    for u in range(1, utterances + 1):
        for i in range(INTERIMS):
            events.append(ev.Interim(u, Transcript("w " * (i + 1), "en-US", False, 0.0, 0.1)))
        events.append(ev.Final(u, Transcript("w w w w w", "en-US", True, 0.0, 1.0), ("ko",)))
        events.extend(ev.Token(u, "en-US", "ko", " t") for _ in range(TOKENS))
        events.append(ev.Complete(u, "en-US", "ko", "t " * TOKENS))

    def run(observer: SessionObserver) -> float:
        start = time.process_time()
        for event in events:
            observer.on_event(event)
            observer.on_delivered(event)
        return time.process_time() - start

    extension = MetricsExtension(Metrics())
    observer = _SessionMetrics(extension, session)
    run(observer)  # warm up: children bound, dicts sized
    bare = min(run(SessionObserver()) for _ in range(3))
    metered = min(run(observer) for _ in range(3))
    flush_start = time.process_time()
    for _ in range(1000):
        observer.flush()
    flush = (time.process_time() - flush_start) / 1000
    n = len(events)
    return {
        "events": n,
        "us_per_event": round((metered - bare) / n * 1e6, 3),
        "bare_us_per_event": round(bare / n * 1e6, 3),
        "flush_us": round(flush * 1e6, 2),
        "multiprocess": bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON (``--multiprocess``: with prometheus-client's multiprocess values)."""
    args = sys.argv[1:] if argv is None else argv
    if "--multiprocess" in args and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        with tempfile.TemporaryDirectory(prefix="tongyeok-metrics-cost-") as directory:
            import subprocess

            env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
            return subprocess.run([sys.executable, "-m", "bench.metrics_cost"], env=env, check=False).returncode
    print(json.dumps(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
