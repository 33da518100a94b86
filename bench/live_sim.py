"""Whisper's decoding policy on a core of its own: the live part's figures without the machine's other work.

``python -m bench.live_sim N KIND`` loads one ``WhisperWorker`` in this
process and feeds it N streams of the live part's speech (KIND ``short``
or ``long``) in 100 ms chunks on a virtual clock: audio arrives on
schedule, and each decoding pass advances the clock by the CPU time it
took (``time.process_time``, so other processes' load does not count). The
result is what one worker process would deliver with one core to itself,
which is what ``--offline-workers`` (one per core) provides on a quiet
machine: the floor under the paced figures of ``live_asr``, measured in the
same run, and the figure to compare code changes with while the shared
machine is busy. It leaves out the gRPC hops (a few ms) and the server
process's own CPU.

Prints one JSON object: first-interim and final latency (s, p50/p95) from
the speech edges, WER of the finals, and the share of the core the worker
was busy.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import stats
from bench.live_asr import LONG_SENTENCES, VOICES, speech_edges
from bench.offline_asr import SENTENCES, make_audio
from tests.support.speech import word_error_rate

CHUNK_S = 0.1


def simulate(streams: int, kind: str, work_dir: Path) -> dict[str, Any]:
    """Run the simulation; JSON-able figures."""
    from tongyeok_server.audio.format import AudioSpec, Encoding
    from tongyeok_server.recognition import whisper_model, whisper_worker
    from tongyeok_server.recognition.base import Transcript

    clock = 0.0
    events: list[tuple[float, int, Transcript]] = []

    def send(message: tuple[Any, ...]) -> None:
        sid, event = message
        if isinstance(event, Transcript):
            events.append((clock, sid, event))

    worker = whisper_worker.WhisperWorker(send, whisper_worker.load(whisper_model.packaged_source(), "cpu", 1))
    sentences = LONG_SENTENCES if kind == "long" else SENTENCES
    audios = [make_audio(VOICES[i % len(VOICES)], "16k", sentences, work_dir) for i in range(streams)]
    for sid in range(streams):
        worker.open(sid, AudioSpec(Encoding.LINEAR16, 16000, 1), (("en-US", "en"),), True, False)
    chunk = int(32000 * CHUNK_S)
    busy = 0.0
    for offset in range(0, max(len(a.data) for a in audios), chunk):
        arrival = (offset // chunk + 1) * CHUNK_S
        clock = max(clock, arrival)
        for sid, audio in enumerate(audios):
            if offset < len(audio.data):
                worker.audio(sid, audio.data[offset : offset + chunk])
        while clock < arrival + CHUNK_S:
            started = time.process_time()
            if not worker.idle():
                break
            spent = time.process_time() - started
            clock += spent
            busy += spent
    for sid in range(streams):
        worker.finish(sid)
    firsts: list[float] = []
    finals: list[float] = []
    errors = words = 0.0
    for sid, audio in enumerate(audios):
        edges = speech_edges(audio)
        mine = [(at, t) for at, s, t in events if s == sid]
        done = [(at, t) for at, t in mine if t.is_final]
        ends = audio.speech.sentence_end_s
        matched: set[int] = set()
        for at, final in done:
            i = min(range(len(ends)), key=lambda j: abs(ends[j] - final.end_offset_s))
            if i in matched:
                continue
            matched.add(i)
            finals.append(at - edges[i][1])
            interims = [a for a, t in mine if not t.is_final and abs(t.start_offset_s - final.start_offset_s) < 0.01]
            if interims:
                firsts.append(interims[0] - edges[i][0])
        reference = " ".join(sentences)
        errors += word_error_rate(reference, " ".join(t.text for _, t in done)) * len(reference.split())
        words += len(reference.split())
    return {
        "streams": streams,
        "sentences_kind": kind,
        "first_interim_s": _pair(firsts),
        "final_s": _pair(finals),
        "wer": round(errors / words, 4),
        "core_busy": round(busy / clock, 2),
    }


def _pair(values: list[float]) -> dict[str, float | None]:
    return {q: _round(stats.percentile(values, n)) for q, n in (("p50", 50), ("p95", 95))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


if __name__ == "__main__":
    print(json.dumps(simulate(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))))
