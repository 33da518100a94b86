"""The embedded engines (pocketsphinx + Apertium): latency at real-time pace, real-time factor, capacity.

Method:

- **Latency.** One stream of synthesised speech (Festival's HTS voice) at
  real-time pace. A sentence's audio ends at ``Speech.sentence_end_s``; its
  final is the first final whose audio end offset is at or after that point
  (and before the next sentence ends). Latency is the final's arrival minus
  the moment that audio was spoken (the stream's start + ``sentence_end_s``),
  so it includes the up-to-one-chunk wait a microphone imposes.
- **Real-time factor.** One stream sent as fast as the server takes it:
  wall time to the last event / audio duration.
- **Capacity.** With ``--offline-workers 1`` and then ``2``, enough streams
  sent unpaced to keep every worker busy (``streams_per_worker`` per
  worker); aggregate throughput = audio seconds decoded / wall time, i.e. the
  number of real-time streams the pool sustains. The ratio is 2 workers / 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import stats
from bench.measure import run_loadgen
from bench.procs import LOOPBACK, Child, Children, free_port, server_command, wait_for_grpc
from tests.support.speech import Speech, synthesize

SENTENCES = [
    "Good morning everyone.",
    "We would like to discuss the contract today.",
    "The delivery date is next Friday.",
    "Thank you for your time.",
    "Please send your comments by email.",
]


@dataclass(frozen=True)
class OfflineOptions:
    """How the offline part runs."""

    sentences: int = len(SENTENCES)  # how many of SENTENCES the speech holds
    capacity_streams_per_worker: int = 4
    workers: tuple[int, ...] = (1, 2)


def _speech(sentences: int) -> Speech:
    return synthesize(SENTENCES[:sentences])


def run_offline(options: OfflineOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the offline measurements; returns the JSON-able results."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"options": options.__dict__ | {"workers": list(options.workers)}, "sentences": SENTENCES}
    # One recording (cached by tests.support.speech) serves the latency stream and the capacity streams.
    latency_speech = capacity_speech = _speech(options.sentences)
    with Children() as children:
        capacity: dict[str, Any] = {}
        for workers in options.workers:
            streams = workers * options.capacity_streams_per_worker
            port = free_port()
            server = _start_server(children, workers, streams, port, work_dir)
            address = f"{LOOPBACK}:{port}"
            try:
                if workers == options.workers[0]:
                    log(f"offline: latency at real-time pace ({latency_speech.sentence_end_s[-1]:.0f} s of speech) ...")
                    out["latency"] = _latency(children, address, latency_speech, work_dir)
                    log("offline: real-time factor of one stream ...")
                    out["rtf"] = _throughput(children, server.pid, address, capacity_speech, 1, work_dir, "rtf")
                log(f"offline: capacity with {workers} worker(s), {streams} unpaced streams ...")
                capacity[str(workers)] = _throughput(
                    children, server.pid, address, capacity_speech, streams, work_dir, f"cap{workers}"
                )
            finally:
                children.stop(server, grace_s=5)
        out["capacity"] = capacity
        rates = [capacity[str(w)]["realtime_streams"] for w in options.workers]
        out["capacity_ratio"] = round(rates[-1] / rates[0], 3) if len(rates) > 1 and rates[0] else None
    return out


def _start_server(children: Children, workers: int, streams: int, port: int, work_dir: Path) -> Child:
    argv = [
        server_command(), "--host", LOOPBACK, "--port", str(port),
        "--recognizer", "pocketsphinx", "--translator", "apertium",
        "--offline-workers", str(workers), "--offline-streams-per-worker", str(max(3, streams // workers)),
        "--log-level", "WARNING",
    ]  # fmt: skip
    server = children.start(f"offline-server-{workers}", argv, work_dir)
    wait_for_grpc(server, f"{LOOPBACK}:{port}", 90)
    return server


def _spec(address: str, speech: Speech, work_dir: Path, streams: int, paced: bool) -> dict[str, Any]:
    pcm_path = work_dir / f"speech-{speech.path.stem}.pcm"
    if not pcm_path.exists():
        pcm_path.write_bytes(speech.pcm())
    audio_s = len(speech.pcm()) / 32000
    return {
        "target": "tongyeok",
        "address": address,
        "streams": streams,
        "start_at": time.monotonic() + 2.0,  # the load generator starts in about 0.5 s
        "ramp_s": 0.0 if not paced else 0.1,
        "chunk_ms": 100,
        "paced": paced,
        "audio": {"kind": "file", "path": str(pcm_path)},
        "sources": ["en-US"],
        "targets": ["es"],
        "interim": True,
        "streams_per_channel": 50,
        "timeout_s": audio_s * (1.5 if paced else streams) + 60,
        "drain_timeout_s": 30.0,
    }


def _latency(children: Children, address: str, speech: Speech, work_dir: Path) -> dict[str, Any]:
    spec = _spec(address, speech, work_dir, 1, paced=True)
    streams, _ = run_loadgen(children, spec, 1, work_dir, "offline-latency", spec["timeout_s"] + 30)
    stream = streams[0]
    ends = list(speech.sentence_end_s)
    finals = stream["finals"]  # [utterance, end offset s, arrival s since start, text]
    to_final: list[float] = []
    matched: list[dict[str, Any]] = []
    # Each final belongs to the sentence whose end is nearest its audio end offset (the
    # endpointer may cut a few tens of ms before the synthesised audio's silent tail).
    first_final: dict[int, list[Any]] = {}
    for final in finals:
        nearest = min(range(len(ends)), key=lambda i: abs(ends[i] - final[1]))
        first_final.setdefault(nearest, final)
    for i, end in enumerate(ends):
        hit = first_final.get(i)
        if hit is None:
            continue
        to_final.append((hit[2] - end) * 1000)
        matched.append({"sentence": speech.sentences[i], "final": hit[3], "ms": round((hit[2] - end) * 1000, 1)})
    return {
        "status": stream["status"],
        "sentences": len(ends),
        "finals": len(finals),
        "sentences_matched": len(matched),
        "sentence_end_to_final_ms": stats.summary(to_final),
        "final_to_first_token_ms": stats.summary(stream["first_token_ms"]),
        "lateness_ms": stats.summary(stream["lateness_ms"]),
        "examples": matched[:3],
    }


def _throughput(
    children: Children, server_pid: int, address: str, speech: Speech, streams: int, work_dir: Path, name: str
) -> dict[str, Any]:
    spec = _spec(address, speech, work_dir, streams, paced=False)
    before = _cpu_by_role(server_pid)
    results, loadgen_cpu = run_loadgen(children, spec, 1, work_dir, f"offline-{name}", spec["timeout_s"] + 30)
    after = _cpu_by_role(server_pid)
    audio_s = len(speech.pcm()) / 32000
    wall = max(r["ended_s"] for r in results)
    statuses = sorted({r["status"] for r in results})
    return {
        "streams": streams,
        "audio_s_per_stream": round(audio_s, 2),
        "wall_s": round(wall, 2),
        "rtf_per_stream": round(wall / audio_s, 3) if streams == 1 else None,
        "realtime_streams": round(streams * audio_s / wall, 2),
        "finals": sum(len(r["finals"]) for r in results),
        "statuses": statuses,
        # Where the cores went during the run (CPU seconds): the server's own process, the
        # pocketsphinx workers, the Apertium pipelines, and the load generator.
        "cpu_s": {role: round(after.get(role, 0.0) - before.get(role, 0.0), 2) for role in after}
        | {"loadgen": round(sum(loadgen_cpu), 2)},
    }


def _cpu_by_role(pid: int) -> dict[str, float]:
    """CPU seconds so far of the server process and its children, grouped by what they are."""
    out = {"server": 0.0, "pocketsphinx workers": 0.0, "apertium": 0.0, "other": 0.0}
    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        out["server"] = t.user + t.system
        for child in root.children(recursive=True):
            try:
                ct = child.cpu_times()
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            role = (
                "pocketsphinx workers"
                if "multiprocessing" in cmd
                else "apertium"
                if any(tool in cmd for tool in ("lt-proc", "apertium", "cg-proc", "lrx-proc"))
                else "other"
            )
            out[role] += ct.user + ct.system
    except psutil.Error:
        pass
    return out
