"""The embedded recognisers side by side (Whisper, pocketsphinx): accuracy, latency, flicker, capacity.

Speech: ``SENTENCES`` synthesised by several voices (Festival's HTS voice
and flite's), 0.8 s of silence around each sentence, sent through the
service as 16 kHz LINEAR16 and as 8 kHz G.711 mu-law. Each engine runs in
its own ``tongyeok-server`` process (Apertium translating into Spanish, as
a caller would use it); the bench is the client.

- **WER through the service**: every voice in both formats, one stream at a
  time, sent as fast as the server takes it (finals do not depend on pace):
  word errors of the finals against the sentences, over all words.
- **Latency and flicker**: ``paced_streams`` streams at once at real-time
  pace (100 ms chunks on a fixed schedule). A sentence's final latency is
  its arrival minus the moment its audio ended; first-interim latency is the
  first interim of that utterance minus the moment its speech started (both
  include the up-to-100 ms a microphone chunk waits). Flicker: of the word
  positions an interim showed, the share whose word later changed (in a
  later interim or the final).
- **Capacity**: with 1 and then 2 worker processes, the number of paced
  streams served at once with every final delivered and the finals' p95
  latency within ``LATENCY_TARGET_S`` (doubling, then bisecting), i.e.
  real-time streams per core and the 2-to-1 ratio.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench import offline, stats
from bench.procs import LOOPBACK, Children, free_port, server_command, wait_for_grpc
from tests.support.calls import config
from tests.support.speech import Speech, convert, synthesize, word_error_rate
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

# The offline part's five sentences and five more.
SENTENCES = [
    *offline.SENTENCES,
    "Our team will visit your office in March.",
    "The price includes shipping and insurance.",
    "Could you repeat the last number please?",
    "We need the signed documents before the meeting.",
    "I am looking forward to working with you.",
]
VOICES = ("hts", "flite:slt", "flite:rms", "flite:awb", "flite:kal16")
PAUSE_S = 0.8
CHUNK_S = 0.1
LATENCY_TARGET_S = 1.0
WER_TARGETS = {"16k": 0.02, "8k": 0.05}


@dataclass(frozen=True)
class AsrOptions:
    """How the side-by-side part runs."""

    engines: tuple[str, ...] = ("whisper", "pocketsphinx")
    voices: tuple[str, ...] = VOICES
    paced_voices: tuple[str, ...] = ("hts", "flite:rms")  # one stream each, 16 kHz then 8 kHz, at once
    capacity_sentences: int = 5
    capacity_max_streams: int = 12  # per worker
    workers: tuple[int, ...] = (1, 2)


@dataclass
class Audio:
    name: str  # "hts 16k"
    format: str  # "16k" or "8k"
    request: pb.InterpretRequest
    data: bytes
    bytes_per_second: int
    speech: Speech

    @property
    def starts_s(self) -> list[float]:
        """Where each sentence's speech starts (each follows PAUSE_S of silence)."""
        ends = self.speech.sentence_end_s
        return [PAUSE_S + (ends[i - 1] if i else 0.0) for i in range(len(ends))]


@dataclass
class Result:
    status: str = "OK"
    finals: list[tuple[int, str, float, float]] = field(default_factory=list)  # uid, text, end offset, arrival
    interims: list[tuple[int, str, float]] = field(default_factory=list)  # uid, text, arrival
    # Beside them, index for index: each interim's stable_text, each final's language label.
    stable_texts: list[str] = field(default_factory=list)
    final_languages: list[str] = field(default_factory=list)


def make_audio(voice: str, fmt: str, sentences: list[str], work_dir: Path) -> Audio:
    speech = synthesize(sentences, pause_s=PAUSE_S, voice=voice)
    if fmt == "16k":
        return Audio(f"{voice} 16k", fmt, config(), speech.pcm(), 32000, speech)
    raw = work_dir / f"{speech.path.stem}.ul"
    data = convert(speech, raw, rate_hz=8000, encoding="mu-law", bits=8)
    return Audio(f"{voice} 8k", fmt, config(rate=8000, encoding=pb.AUDIO_ENCODING_MULAW), data, 8000, speech)


def _stream(stub: Any, audio: Audio, paced: bool, t0: float, result: Result) -> None:
    """One Interpret stream; arrivals are seconds since ``t0``, the moment its audio starts."""
    chunk = int(audio.bytes_per_second * CHUNK_S)

    def requests() -> Any:
        yield audio.request
        for i, offset in enumerate(range(0, len(audio.data), chunk)):
            if paced:
                # A microphone has a chunk's audio once it has been spoken, at its end.
                delay = t0 + (i + 1) * CHUNK_S - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield pb.InterpretRequest(audio=audio.data[offset : offset + chunk])

    try:
        for response in stub.Interpret(requests(), timeout=600):
            kind = response.WhichOneof("event")
            now = time.monotonic() - t0
            if kind == "final_transcript":
                f = response.final_transcript
                result.finals.append((f.utterance_id, f.text, f.audio_end_offset.ToTimedelta().total_seconds(), now))
                result.final_languages.append(f.language_code)
            elif kind == "interim_transcript":
                m = response.interim_transcript
                result.interims.append((m.utterance_id, m.text, now))
                result.stable_texts.append(m.stable_text)
    except grpc.RpcError as exc:
        result.status = exc.code().name


def run_streams(address: str, audios: list[Audio], paced: bool) -> list[Result]:
    """Streams of ``audios`` at once; their results."""
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
    results = [Result() for _ in audios]
    t0 = time.monotonic() + 0.5
    threads = [
        threading.Thread(target=_stream, args=(stub, a, paced, t0 + 0.02 * i, r), daemon=True)
        for i, (a, r) in enumerate(zip(audios, results, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()
    return results


def match_finals(audio: Audio, result: Result) -> dict[int, int]:
    """Sentence index -> utterance id of the first final whose end offset is nearest that sentence's end."""
    ends = audio.speech.sentence_end_s
    out: dict[int, int] = {}
    for uid, _, end, _ in result.finals:
        nearest = min(range(len(ends)), key=lambda i: abs(ends[i] - end))
        out.setdefault(nearest, uid)
    return out


def _norm(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


def flicker(result: Result) -> tuple[int, int]:
    """(word positions an interim showed, how many of them later showed another word or none) over all utterances.

    A word counts once per position: shown at position j by some interim, it
    has changed if any later interim or the final has another word there, or
    no word (a hypothesis that got shorter takes it back).
    """
    shown = changed = 0
    finals = {uid: [_norm(w) for w in text.split()] for uid, text, _, _ in result.finals}
    by_utterance = itertools.groupby(sorted(result.interims, key=lambda m: (m[0], m[2])), key=lambda m: m[0])
    for uid, group in by_utterance:
        texts = [[_norm(w) for w in text.split()] for _, text, _ in group]
        sequence = [*texts, finals.get(uid, [])]
        for j in range(max(len(t) for t in texts)):
            first = next(k for k, t in enumerate(texts) if j < len(t))
            values = {t[j] if j < len(t) else None for t in sequence[first:]}
            shown += 1
            changed += len(values) > 1
    return shown, changed


def _latencies(audio: Audio, result: Result) -> tuple[list[float], list[float], int]:
    """(final latencies s, first-interim latencies s, sentences without an interim)."""
    matched = match_finals(audio, result)
    arrivals = {uid: at for uid, _, _, at in result.finals}
    first_interim: dict[int, float] = {}
    for uid, _, at in result.interims:
        first_interim.setdefault(uid, at)
    finals, interims, missing = [], [], 0
    for i, uid in matched.items():
        finals.append(arrivals[uid] - audio.speech.sentence_end_s[i])
        if uid in first_interim:
            interims.append(first_interim[uid] - audio.starts_s[i])
        else:
            missing += 1
    return finals, interims, missing


def _errors(audio: Audio, result: Result) -> tuple[float, int]:
    reference = " ".join(audio.speech.sentences)
    heard = " ".join(text for _, text, _, _ in result.finals)
    words = len(reference.split())
    return word_error_rate(reference, heard) * words, words


def _server(children: Children, engine: str, workers: int, streams_per_worker: int, work_dir: Path) -> tuple[Any, str]:
    port = free_port()
    argv = [
        server_command(), "--host", LOOPBACK, "--port", str(port),
        "--recognizer", engine, "--translator", "apertium", "--offline-workers", str(workers),
        "--offline-streams-per-worker", str(streams_per_worker),
        "--whisper-streams-per-worker", str(streams_per_worker), "--log-level", "WARNING",
    ]  # fmt: skip
    child = children.start(f"asr-{engine}-{workers}", argv, work_dir)
    address = f"{LOOPBACK}:{port}"
    wait_for_grpc(child, address, 180)
    return child, address


def cpu_seconds(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return float(sum(p.cpu_times().user + p.cpu_times().system for p in procs))
    except psutil.Error:
        return 0.0


def _engine(engine: str, options: AsrOptions, work_dir: Path, log: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Children() as children:
        server, address = _server(children, engine, max(options.workers), options.capacity_max_streams, work_dir)
        # Warm-up: the first stream of a worker pays for imports and first allocations.
        run_streams(address, [make_audio(options.voices[0], "16k", SENTENCES[:1], work_dir)], paced=False)
        log(f"asr {engine}: WER over {len(options.voices)} voices x 2 formats ...")
        wer: dict[str, Any] = {}
        totals = {"16k": [0.0, 0], "8k": [0.0, 0]}
        for voice in options.voices:
            for fmt in ("16k", "8k"):
                audio = make_audio(voice, fmt, SENTENCES, work_dir)
                (result,) = run_streams(address, [audio], paced=False)
                errors, words = _errors(audio, result)
                totals[fmt][0] += errors
                totals[fmt][1] += words
                wer[audio.name] = {
                    "wer": round(errors / words, 4),
                    "status": result.status,
                    "finals": len(result.finals),
                    "misheard": [
                        [s, t]
                        for s, t in zip(SENTENCES, [t for _, t, _, _ in result.finals], strict=False)
                        if word_error_rate(s, t) > 0
                    ],
                }
        out["wer"] = {fmt: round(e / max(1, n), 4) for fmt, (e, n) in totals.items()}
        out["wer_by_audio"] = wer
        log(f"asr {engine}: latency and flicker, {2 * len(options.paced_voices)} paced streams ...")
        paced = [make_audio(v, fmt, SENTENCES, work_dir) for v in options.paced_voices for fmt in ("16k", "8k")]
        cpu_before = cpu_seconds(server.pid)
        results = run_streams(address, paced, paced=True)
        audio_s = sum(len(a.data) / a.bytes_per_second for a in paced)
        out["cpu_cores_per_stream"] = round((cpu_seconds(server.pid) - cpu_before) / audio_s, 3)
        # The machine is shared: how busy it was says how much the wall-clock figures can be trusted.
        out["load_average"] = round(os.getloadavg()[0], 2)
        finals: list[float] = []
        interims: list[float] = []
        missing = shown = changed = 0
        for audio, result in zip(paced, results, strict=True):
            f, i, m = _latencies(audio, result)
            finals += f
            interims += i
            missing += m
            s, c = flicker(result)
            shown += s
            changed += c
        out["latency"] = {
            "streams": len(paced),
            "final_s": _summary_s(finals),
            "first_interim_s": _summary_s(interims),
            "sentences_without_interim": missing,
            "sentences": sum(len(a.speech.sentences) for a in paced),
        }
        out["flicker"] = {
            "words_shown": shown,
            "changed": changed,
            "rate": round(changed / shown, 4) if shown else None,
        }
        children.stop(server)
        capacity: dict[str, Any] = {}
        for workers in options.workers:
            log(f"asr {engine}: capacity with {workers} worker(s) ...")
            server, address = _server(children, engine, workers, options.capacity_max_streams, work_dir)
            capacity[str(workers)] = _capacity(address, options, work_dir, workers)
            children.stop(server)
        out["capacity"] = capacity
        one, two = (capacity[str(w)]["streams"] for w in (1, 2)) if len(capacity) == 2 else (None, None)
        out["capacity_ratio"] = round(two / one, 2) if one and two is not None else None
    return out


def _summary_s(values: list[float]) -> dict[str, Any]:
    ms = stats.summary([v * 1000 for v in values])
    p95 = stats.percentile([v * 1000 for v in values], 95)
    ms["p95"] = None if p95 is None else round(p95, 1)
    return ms


def _kept_pace(address: str, audio: Audio, streams: int) -> tuple[bool, dict[str, Any]]:
    results = run_streams(address, [audio] * streams, paced=True)
    latencies: list[float] = []
    complete = True
    for result in results:
        f, _, _ = _latencies(audio, result)
        latencies += f
        complete &= result.status == "OK" and len(f) == len(audio.speech.sentences)
    p95 = stats.percentile(latencies, 95)
    ok = complete and p95 is not None and p95 <= LATENCY_TARGET_S
    return ok, {"streams": streams, "complete": complete, "final_p95_s": None if p95 is None else round(p95, 3)}


def _capacity(address: str, options: AsrOptions, work_dir: Path, workers: int) -> dict[str, Any]:
    """The most paced streams served in time: double until one fails, then bisect."""
    audio = make_audio(options.voices[0], "16k", SENTENCES[: options.capacity_sentences], work_dir)
    tried: list[dict[str, Any]] = []
    limit = options.capacity_max_streams * workers
    good, bad, n = 0, limit + 1, 1
    while n < bad and n <= limit:
        ok, figures = _kept_pace(address, audio, n)
        tried.append(figures | {"kept_pace": ok})
        if ok:
            good = n
            n = n * 2 if bad > limit else (n + bad) // 2
        else:
            bad = n
            n = (good + bad) // 2
        if n <= good:
            break
    return {"streams": good, "tried": tried}


def run_asr(options: AsrOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Both engines' figures; JSON-able."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"options": options.__dict__, "sentences": SENTENCES}
    for engine in options.engines:
        out[engine] = _engine(engine, options, work_dir, log)
    return out
