"""Live recognition on the default recogniser (Whisper): latency at 1, 2 and 4 paced streams.

What a caller of a flagless ``tongyeok-server`` sees while people speak:
for ``streams`` concurrent streams at real-time pace (100 ms chunks on a
fixed schedule, each stream another voice), once with short sentences
(2-3 s) and once with long ones (8-12 s):

- **first interim**: its arrival minus the moment the sentence's speech
  started; **final**: its arrival minus the moment the speech ended. Speech
  edges are where the audio is voiced (10 ms frames above -45 dBFS), not
  the synthesised file's edges (the voices put 0.1-0.3 s of silence around
  each sentence). Both include the up-to-100 ms a microphone chunk waits.
- **the floor** of each, from the same audio and chunks: when the server's
  own voice-activity segmenter (``recognition.vad``) decides that speech
  started (no interim can come before) and that it ended (no final can),
  with no decoding at all; what is above it is decoding and queueing.
- **stable_text**: every interim's text starts with its ``stable_text``, which
  never shrinks within an utterance and with which the final starts;
  how many interims carry one; how many words each new interim adds.
- **WER of these paced finals** (interims feed the finals: the agreed prefix
  is decoded once, not again), and with the most streams whether one more
  stream is refused with RESOURCE_EXHAUSTED when the default pool is full.
- **Two-way**: one paced stream alternating English (Festival, flite) and
  Spanish (espeak-ng) sentences; the share of finals labelled with the
  language spoken.

The machine is shared: the load average is recorded before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench import stats
from bench.offline_asr import SENTENCES, Audio, Result, cpu_seconds, make_audio, match_finals, run_streams
from bench.procs import LOOPBACK, ROOT, Children, free_port, python, server_command, wait_for_grpc
from tests.support.calls import config
from tests.support.speech import synthesize, word_error_rate
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

# 8-12 s each when spoken by the bench's voices.
LONG_SENTENCES = [
    "Good morning everyone, thank you for coming today, and before we start I would like to introduce the two "
    "colleagues who traveled with me from our office in Seoul.",
    "We have studied your proposal very carefully, and we think the price is fair, but we need a little more time "
    "to discuss the delivery schedule with our partners.",
    "If we sign the contract this week, our team can start the installation in March and finish the training of "
    "your engineers before the end of the summer.",
    "The second part of the agreement covers maintenance and support, which we would like to extend from two years "
    "to five years at the same monthly fee.",
    "Could you please send us the revised figures by Friday at the latest, so that our finance department can "
    "prepare the budget for the board meeting next month?",
    "I am afraid that the shipping costs in your last offer are much higher than we expected, so we would like to "
    "ask whether you could share them with us.",
]
SPANISH = [
    "Buenos días a todos.",
    "El contrato está listo para firmar.",
    "Gracias por su tiempo.",
    "Necesitamos los documentos antes de la reunión.",
    "El precio incluye el envío y el seguro.",
    "Nuestro equipo visitará su oficina en marzo.",
    "Podemos ofrecer un mejor precio.",
    "La entrega será el próximo viernes.",
]
VOICES = ("hts", "flite:rms", "flite:slt", "flite:awb")
# The targets, seconds: (p50, p95).
FIRST_INTERIM_TARGET_S = (1.0, 1.5)
FINAL_TARGET_S = (1.0, 1.5)
FINAL_P95_AT_4_S = 2.0
LANGUAGE_TARGET = 0.95
VOICED_DB = -45.0


@dataclass(frozen=True)
class LiveOptions:
    """How the live part runs."""

    streams: tuple[int, ...] = (1, 2, 4)
    short_sentences: int = len(SENTENCES)
    long_sentences: int = len(LONG_SENTENCES)
    two_way_turns: int = 16
    server_args: tuple[str, ...] = ()  # extra tongyeok-server flags (experiments)


def speech_edges(audio: Audio) -> list[tuple[float, float]]:
    """Per sentence, (where its speech starts, where it ends) in seconds: its voiced 10 ms frames."""
    pcm = np.frombuffer(audio.speech.pcm(), dtype="<i2").astype(np.float32) / 32768.0
    frame = audio.speech.sample_rate_hz // 100
    frames = pcm[: len(pcm) // frame * frame].reshape(-1, frame)
    voiced = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9) > VOICED_DB
    edges = []
    for file_start, file_end in zip(audio.starts_s, audio.speech.sentence_end_s, strict=True):
        first, last = int(file_start * 100), int(file_end * 100)
        hits = np.nonzero(voiced[first:last])[0]
        edges.append(
            (file_start, file_end) if not len(hits) else ((first + hits[0]) / 100, (first + hits[-1] + 1) / 100)
        )
    return edges


def segmenter_floor(audio: Audio, edges: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """When the server's segmenter, fed the same 100 ms chunks, starts and ends each sentence (s after its edge)."""
    from tongyeok_server.recognition.vad import SAMPLE_RATE_HZ, Segmenter, SpeechEnded, SpeechStarted

    segmenter = Segmenter()
    pcm = audio.speech.pcm()
    chunk = int(SAMPLE_RATE_HZ * 2 * 0.1)
    starts: list[float] = []
    ends: list[float] = []
    for i, offset in enumerate(range(0, len(pcm), chunk)):
        arrival = (i + 1) * 0.1
        for event in segmenter.feed(pcm[offset : offset + chunk]):
            (starts if isinstance(event, SpeechStarted) else ends).append(arrival)
            assert isinstance(event, SpeechStarted | SpeechEnded)
    first = [min((s for s in starts if s >= a), default=a) - a for a, _ in edges]
    last = [min((e for e in ends if e >= b), default=b) - b for _, b in edges]
    return first, last


def _norm_words(text: str) -> list[str]:
    return ["".join(c for c in w.lower() if c.isalnum() or c == "'") for w in text.split()]


def stable_checks(result: Result) -> dict[str, int]:
    """The stable_text contract over one stream's interims and finals (counts of breaches)."""
    out = {"interims": len(result.interims), "with_stable": 0, "not_prefix": 0, "shrank": 0, "final_differs": 0}
    last: dict[int, list[str]] = {}
    for (uid, text, _), stable in zip(result.interims, result.stable_texts, strict=True):
        words = _norm_words(stable)
        out["with_stable"] += bool(words)
        out["not_prefix"] += _norm_words(text)[: len(words)] != words
        previous = last.get(uid, [])
        out["shrank"] += words[: len(previous)] != previous
        last[uid] = words if len(words) >= len(previous) else previous
    finals = {uid: _norm_words(text) for uid, text, _, _ in result.finals}
    out["final_differs"] = sum(1 for uid, words in last.items() if uid in finals and finals[uid][: len(words)] != words)
    return out


def words_per_update(result: Result) -> list[int]:
    """How many words each interim adds to the previous one of its utterance (growth, word by word)."""
    growth: list[int] = []
    previous: dict[int, int] = {}
    for uid, text, _ in result.interims:
        n = len(text.split())
        if uid in previous:
            growth.append(n - previous[uid])
        previous[uid] = n
    return growth


def _latencies(audio: Audio, result: Result, edges: list[tuple[float, float]]) -> tuple[list[float], list[float], int]:
    matched = match_finals(audio, result)
    arrivals = {uid: at for uid, _, _, at in result.finals}
    first_interim: dict[int, float] = {}
    for uid, _, at in result.interims:
        first_interim.setdefault(uid, at)
    finals, interims, missing = [], [], 0
    for i, uid in matched.items():
        finals.append(arrivals[uid] - edges[i][1])
        if uid in first_interim:
            interims.append(first_interim[uid] - edges[i][0])
        else:
            missing += 1
    return finals, interims, missing


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "p50": _r(stats.percentile(values, 50)),
        "p95": _r(stats.percentile(values, 95)),
        "max": _r(max(values)) if values else None,
        "count": len(values),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _refused_while_full(address: str) -> str:
    """One more stream while the pool is full: its status (RESOURCE_EXHAUSTED expected)."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        try:
            list(stub.Interpret(iter([config()]), timeout=30))
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return "OK"


def _step(
    address: str, pid: int, n: int, kind: str, sentences: list[str], work_dir: Path, probe: bool
) -> dict[str, Any]:
    audios = [make_audio(VOICES[i % len(VOICES)], "16k", sentences, work_dir) for i in range(n)]
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pid)
    refused: list[str] = []
    prober = None
    if probe:
        prober = threading.Timer(3.0, lambda: refused.append(_refused_while_full(address)))
        prober.start()
    results = run_streams(address, audios, paced=True)
    cpu = cpu_seconds(pid) - cpu_before
    if prober is not None:
        prober.join()
    firsts: list[float] = []
    finals: list[float] = []
    floor_first: list[float] = []
    floor_final: list[float] = []
    missing = errors = words = 0
    checks: dict[str, int] = {}
    growth: list[int] = []
    statuses = []
    misheard: list[list[str]] = []
    for audio, result in zip(audios, results, strict=True):
        edges = speech_edges(audio)
        f_first, f_final = segmenter_floor(audio, edges)
        floor_first += f_first
        floor_final += f_final
        fin, first, miss = _latencies(audio, result, edges)
        finals += fin
        firsts += first
        missing += miss
        reference = " ".join(audio.speech.sentences)
        heard = " ".join(text for _, text, _, _ in result.finals)
        errors += round(word_error_rate(reference, heard) * len(reference.split()))
        words += len(reference.split())
        finals_by_uid = {uid: text for uid, text, _, _ in result.finals}
        misheard += [
            [audio.speech.sentences[i], finals_by_uid[uid]]
            for i, uid in match_finals(audio, result).items()
            if word_error_rate(audio.speech.sentences[i], finals_by_uid[uid]) > 0
        ]
        for key, value in stable_checks(result).items():
            checks[key] = checks.get(key, 0) + value
        growth += words_per_update(result)
        statuses.append(result.status)
    return {
        "streams": n,
        "sentences_kind": kind,
        "sentences": sum(len(a.speech.sentences) for a in audios),
        "statuses": statuses,
        "first_interim_s": _summary(firsts),
        "final_s": _summary(finals),
        "floor_first_interim_s": _summary(floor_first),
        "floor_final_s": _summary(floor_final),
        "sentences_without_interim": missing,
        "wer": round(errors / max(1, words), 4),
        "misheard": misheard,
        "stable": checks,
        "words_per_interim": {
            "mean": round(sum(growth) / len(growth), 2) if growth else None,
            "max": max(growth, default=None),
            "shorter": sum(1 for g in growth if g < 0),
        },
        "refused_beyond_capacity": refused[0] if refused else None,
        # Server and workers, per second of audio of each stream (CPU time is less at the mercy of a
        # busy machine than latency is).
        "cpu_cores_per_stream": round(cpu / sum(len(a.data) / a.bytes_per_second for a in audios), 3),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _two_way(address: str, turns: int, work_dir: Path) -> dict[str, Any]:
    english = [*SENTENCES, *SENTENCES][: (turns + 1) // 2]
    spanish = [*SPANISH, *SPANISH][: turns // 2]
    sentences, voices, expected = [], [], []
    for i in range(turns):
        if i % 2 == 0:
            sentences.append(english[i // 2])
            voices.append(VOICES[(i // 2) % 2])
            expected.append("en-US")
        else:
            sentences.append(spanish[i // 2])
            voices.append("espeak:es")
            expected.append("es")
    speech = synthesize(sentences, voice=voices)
    audio = Audio("two-way", "16k", config(sources=("en-US", "es"), targets=()), speech.pcm(), 32000, speech)
    (result,) = run_streams(address, [audio], paced=True)
    matched = match_finals(audio, result)
    labels = {uid: lang for (uid, _, _, _), lang in zip(result.finals, result.final_languages, strict=True)}
    right = sum(1 for i, uid in matched.items() if labels.get(uid) == expected[i])
    return {
        "utterances": turns,
        "finals": len(result.finals),
        "labelled_right": right,
        "share": round(right / turns, 3),
        "status": result.status,
        "wrong": [[sentences[i], labels.get(uid)] for i, uid in matched.items() if labels.get(uid) != expected[i]],
    }


def run_live(options: LiveOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Start a server on the default recogniser, measure each step; JSON-able."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"options": options.__dict__, "steps": [], "one_core": []}
    port = free_port()
    argv = [server_command(), "--host", LOOPBACK, "--port", str(port), "--log-level", "WARNING", *options.server_args]
    with Children() as children:
        started = time.monotonic()
        child = children.start("live-default", argv, work_dir)
        address = f"{LOOPBACK}:{port}"
        wait_for_grpc(child, address, 180)
        out["startup_s"] = round(time.monotonic() - started, 2)
        out["server_rss_mb"] = _rss_mb(child.pid)
        # Warm-up: each worker's first pass pays for its first allocations.
        run_streams(address, [make_audio(VOICES[i], "16k", SENTENCES[:1], work_dir) for i in range(2)], paced=False)
        sets = [
            (kind, sentences)
            for kind, sentences in (
                ("short", SENTENCES[: options.short_sentences]),
                ("long", LONG_SENTENCES[: options.long_sentences]),
            )
            if sentences
        ]
        for n in options.streams:
            for kind, sentences in sets:
                log(f"live: {n} paced stream(s), {kind} sentences ...")
                probe = n == max(options.streams) and kind == "short"
                out["steps"].append(_step(address, child.pid, n, kind, sentences, work_dir, probe))
        out["workers"] = workers = len(os.sched_getaffinity(0))  # the default --offline-workers
        for kind, _ in sets:
            for per_worker in sorted({-(-n // workers) for n in options.streams}):
                log(f"live: {per_worker} stream(s) on one worker with a core to itself (simulated), {kind} ...")
                out["one_core"].append(_one_core(per_worker, kind, work_dir))
        if options.two_way_turns:
            log(f"live: two-way stream, {options.two_way_turns} turns en/es ...")
            out["two_way"] = _two_way(address, options.two_way_turns, work_dir)
        out["server_rss_mb_after"] = _rss_mb(child.pid)
        children.stop(child)
    return out


def _one_core(per_worker: int, kind: str, work_dir: Path) -> dict[str, Any]:
    """``bench.live_sim`` in a process of its own (it loads the model)."""
    argv = [python(), "-m", "bench.live_sim", str(per_worker), kind, str(work_dir)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        return round(float(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])) / 2**20, 1)
    except psutil.Error:
        return 0.0
