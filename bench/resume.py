"""Resumption: how soon a broken meeting goes on, what the break costs the events, what a detached session holds.

Method (the fake Speech-to-Text and Apertium, so every final is known in
advance; the Python client, which resumes by itself; a TCP proxy in this
process between the clients and the server):

- **The floor.** ``streams`` paced meetings straight through the proxy,
  nothing broken: when each final arrives, from the stream's start.
- **The break.** The same meetings; at ``cut_at_s`` the proxy resets every
  connection and refuses new ones for ``down_s``, then lets them through.
  Per stream: from the network's return to ``session_resumed`` and to the
  first event after it (the client's backoff included: it tries at 0.25,
  0.75, 1.75, 3.75 s ... after the break). Per final: its arrival against
  the floor's, for the finals the server produced during the break (they
  waited in the session's log) and for those after it.
- **Memory.** ``detached`` sessions that each took a few seconds of audio,
  then lost their streams: the server's RSS with them all detached, against
  before they were opened (an upper bound: the interpreter keeps the memory
  it once took).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench import stats
from bench.procs import LOOPBACK, Children, free_port, python, server_command, wait_for_grpc
from tests.support import fake_speech
from tests.support.tcp_proxy import TcpProxy
from tongyeok_client import FinalTranscript, InterpreterClient, SessionResumed, config, paced
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

CHUNK = 3200


@dataclass(frozen=True)
class ResumeOptions:
    """How the resumption part runs."""

    streams: int = 10
    sentences: int = 12
    cut_at_s: float = 8.0
    down_s: float = 3.0
    detached: int = 100


def _sentence(i: int) -> list[int]:
    return [1 + (4 * i + k) % 60 for k in range(4)]


class _Meeting(threading.Thread):
    def __init__(self, address: str, audio: bytes, start_at: float) -> None:
        super().__init__(daemon=True)
        self.address, self.audio, self.start_at = address, audio, start_at
        self.finals: list[tuple[float, float, str]] = []  # (arrival s from start, audio end s, text)
        self.resumed_at: float | None = None
        self.first_after_resume: float | None = None
        self.error: str = ""

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.monotonic()))
        chunks = [self.audio[i : i + CHUNK] for i in range(0, len(self.audio), CHUNK)]
        try:
            with InterpreterClient(self.address) as client:
                for event in client.interpret(config(source="en-US", target="es"), paced(chunks, 0.1)):
                    now = time.monotonic()
                    if isinstance(event, SessionResumed):
                        self.resumed_at = now
                    elif self.resumed_at is not None and self.first_after_resume is None:
                        self.first_after_resume = now
                    if isinstance(event, FinalTranscript):
                        self.finals.append((now - self.start_at, event.audio_end_s, event.text))
        except Exception as e:  # the figures say a stream failed
            self.error = repr(e)


def _meetings(address: str, options: ResumeOptions, audio: bytes) -> tuple[list[_Meeting], float]:
    start = time.monotonic() + 1.0
    meetings = [_Meeting(address, audio, start + 0.05 * i) for i in range(options.streams)]
    for m in meetings:
        m.start()
    return meetings, start


def run_resume(options: ResumeOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the resumption part; returns JSON-able figures."""
    work_dir.mkdir(parents=True, exist_ok=True)
    utterances = [_sentence(i) for i in range(options.sentences)]
    audio = fake_speech.synthesize(utterances)
    with Children() as children:
        speech_port, port = free_port(), free_port()
        children.start(
            "fake-speech", [python(), "-m", "tests.support.fake_speech", "--port", str(speech_port)], work_dir
        )
        argv = [
            server_command(), "--host", LOOPBACK, "--port", str(port),
            "--recognizer", "google", "--google-endpoint", f"{LOOPBACK}:{speech_port}", "--google-insecure",
            "--google-project", "bench", "--translator", "apertium", "--resume-window", "30",
            "--log-level", "WARNING", "--offline-workers", "1",
        ]  # fmt: skip
        server = children.start("server-resume", argv, work_dir)
        wait_for_grpc(server, f"{LOOPBACK}:{port}", 60)
        proxy = TcpProxy(port).start()
        try:
            log(f"resume: {options.streams} meetings, nothing broken (the floor) ...")
            floor, _ = _meetings(f"{LOOPBACK}:{proxy.port}", options, audio)
            for m in floor:
                m.join(120)
            log(f"resume: the same, the network down for {options.down_s:g} s at {options.cut_at_s:g} s ...")
            broken, start = _meetings(f"{LOOPBACK}:{proxy.port}", options, audio)
            time.sleep(max(0.0, start + options.cut_at_s - time.monotonic()))
            cut_at = time.monotonic()
            proxy.refusing = True
            proxy.cut()
            time.sleep(options.down_s)
            proxy.restore()
            back_at = time.monotonic()
            for m in broken:
                m.join(180)
            log(f"resume: {options.detached} sessions detached at once (memory) ...")
            memory = _detached_memory(f"{LOOPBACK}:{port}", server.pid, options.detached, audio)
        finally:
            proxy.close()
    return _figures(options, floor, broken, start, cut_at, back_at, memory)


def _figures(
    options: ResumeOptions,
    floor: list[_Meeting],
    broken: list[_Meeting],
    start: float,
    cut_at: float,
    back_at: float,
    memory: dict[str, float],
) -> dict[str, Any]:
    during, after = [], []
    cut_s, back_s = cut_at - start, back_at - start
    for f, b in zip(floor, broken, strict=True):
        offset = b.start_at - start
        # Finals pair by where they end in the audio (a sentence the break split in two has no pair).
        arrivals = {round(end, 2): got for got, end, _ in b.finals}
        for due, end, _ in f.finals:
            got = arrivals.get(round(end, 2))
            if got is None:
                continue
            extra_ms = (got - due) * 1000
            if cut_s <= due + offset <= back_s:
                during.append(extra_ms)
            elif due + offset > back_s + 5:
                after.append(extra_ms)
    return {
        "options": options.__dict__,
        "finals_per_stream": {"floor": [len(m.finals) for m in floor], "broken": [len(m.finals) for m in broken]},
        # Every word once, in order: the finals' words joined, against the floor's (a sentence the break
        # split, ended where the audio stopped, still has all its words).
        "words_kept": all(_words(f) == _words(b) for f, b in zip(floor, broken, strict=True)),
        "sentences_split": sum(len(b.finals) - len(f.finals) for f, b in zip(floor, broken, strict=True)),
        "errors": [m.error for m in [*floor, *broken] if m.error],
        "restore_to_resumed_ms": stats.summary(
            [(m.resumed_at - back_at) * 1000 for m in broken if m.resumed_at is not None]
        ),
        "restore_to_first_event_ms": stats.summary(
            [(m.first_after_resume - back_at) * 1000 for m in broken if m.first_after_resume is not None]
        ),
        "resumed_streams": sum(m.resumed_at is not None for m in broken),
        "extra_ms_during_break": stats.summary(during),
        "extra_ms_after_break": stats.summary(after),
        "memory": memory,
    }


def _words(meeting: _Meeting) -> list[str]:
    return " ".join(text for _, _, text in meeting.finals).split()


def _detached_memory(address: str, server_pid: int, n: int, audio: bytes) -> dict[str, float]:
    server = psutil.Process(server_pid)
    time.sleep(1.0)
    before = server.memory_info().rss
    calls = []
    stop = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        request = pb.InterpretRequest(
            config=pb.InterpretConfig(
                audio_format=pb.AudioFormat(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000),
                source_language_codes=["en-US"],
                target_language_codes=["es"],
                interim_results=True,
                resumption=pb.SessionResumption(enabled=True),
            )
        )
        yield request
        for i in range(0, 50 * CHUNK, CHUNK):  # 5 s of speech
            yield pb.InterpretRequest(audio=audio[i : i + CHUNK])
        stop.wait(60)

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        for _ in range(n):
            call = stub.Interpret(requests(), timeout=120)
            next(iter(call))
            calls.append(call)
        time.sleep(3.0)  # their audio recognised, their events in their logs
        attached = server.memory_info().rss
        for call in calls:
            call.cancel()
        stop.set()
        time.sleep(2.0)
        detached = server.memory_info().rss
    return {
        "sessions": n,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_attached_mb": round(attached / 2**20, 1),
        "rss_detached_mb": round(detached / 2**20, 1),
        "per_detached_session_mb": round((detached - before) / 2**20 / n, 3),
    }
