"""Simultaneous interpretation against consecutive: the same speech, the same server, the same run.

Method:

- **Embedded** (Whisper + Apertium, en->es): ``SENTENCES``, business
  sentences of 8-10 s synthesised by Festival, sent at real-time pace in
  100 ms chunks by ``streams`` streams at once, first consecutive, then
  simultaneous (same server). Quality: chrF (sacrebleu) of each mode's
  complete translations against ``REFERENCES_ES``, translations shipped
  with the bench, and of simultaneous against consecutive.
- **Fakes** (Google's interims from the fake Speech-to-Text, the fake
  OpenAI at a time to first token of 300 ms and 50 tokens/s): word audio
  of 8-10 s utterances in three directions at once (en->es, ko->en,
  en->ko), consecutive then simultaneous. The fake OpenAI runs in this
  process, so every request it got (re-translations, finals, cancels) is
  counted per direction.

The embedded path also runs simultaneous mode with speech output
(``SPOKEN``, the embedded voices), echo suppression on and off, nothing
coming back into the microphone (as with headphones or a device's own echo
canceller): what judging each interim before commitment costs where the
speech's delay is never found, the most it waits (the echo room in
``bench/echo.py`` measures it with the speech coming back). Not the fakes:
their words are runs of constant samples, which signal processing does not
leave intact (with suppression on and nothing coming back, a few of the
fake recogniser's Korean words were lost or changed in one run).

Each sentence's measures are in ``simul_metrics``; beside each figure the
bench prints a floor from the same run: what the recogniser allowed
(words stable, the final) before any translation could be made. The
machine's load average is recorded before and after (it is shared).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from sacrebleu.metrics.chrf import CHRF

from bench import simul_metrics as sm
from bench import stats
from bench.measure import machine_busy_s
from bench.offline import _cpu_by_role
from bench.procs import LOOPBACK, Children, free_port, python, server_command, wait_for_grpc
from tests.support import fake_speech
from tests.support.fake_openai import FakeOpenAI
from tests.support.speech import synthesize
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

# Business sentences of 8-10 s in Festival's voice, in words Whisper and Apertium's eng-spa know.
SENTENCES = [
    "We would like to discuss the delivery schedule for the new machines and the training of your staff next month.",
    "Our company can offer a lower price if you sign the contract for three years before the end of this week.",
    "The first shipment will arrive at your warehouse on Monday morning and our engineers will install the system "
    "on Tuesday.",
    "Please send us the signed documents and the list of questions from your team before our meeting in Seoul.",
    "We are very happy with the results of the pilot project and we hope to work with you for many years.",
    "If the quality of the samples is good, we will place a larger order at the beginning of the next quarter.",
]
# Reference translations (a person's, not an engine's), for chrF.
REFERENCES_ES = [
    "Nos gustaría hablar del calendario de entrega de las nuevas máquinas y de la formación de su personal el "
    "próximo mes.",
    "Nuestra empresa puede ofrecer un precio más bajo si firman el contrato por tres años antes del final de esta "
    "semana.",
    "El primer envío llegará a su almacén el lunes por la mañana y nuestros ingenieros instalarán el sistema el "
    "martes.",
    "Por favor, envíennos los documentos firmados y la lista de preguntas de su equipo antes de nuestra reunión en "
    "Seúl.",
    "Estamos muy contentos con los resultados del proyecto piloto y esperamos trabajar con ustedes durante muchos "
    "años.",
    "Si la calidad de las muestras es buena, haremos un pedido más grande a principios del próximo trimestre.",
]
PAUSE_S = 1.0
CHUNK_S = 0.1
MODES = ("consecutive", "simultaneous")
#: Simultaneous phases with speech output (the embedded path's voices), and whether echo suppression is on
#: in each.
SPOKEN = {"simultaneous-spoken": True, "simultaneous-spoken-unsuppressed": False}
# The fakes' directions: (source, target, first word id, words per utterance).
FAKE_DIRECTIONS = (
    ("en-US", "es", 1, 26),
    ("ko-KR", "en", fake_speech.KOREAN_BASE, 26),
    ("en-US", "ko", 5, 24),
)


@dataclass(frozen=True)
class SimultaneousOptions:
    """How the simultaneous part runs."""

    sentences: int = len(SENTENCES)
    embedded_streams: int = 1  # per mode, at once
    fake_streams: int = 2  # per direction and mode, at once
    fake_utterances: int = 4
    ttft_ms: float = 300.0
    tokens_per_s: float = 50.0
    embedded: bool = True
    fakes: bool = True
    embedded_recognizer: str = "whisper"
    #: Simultaneous levels measured besides the default one ("low", "accurate"), each a phase of its own.
    extra_levels: tuple[str, ...] = ()
    #: The phases with speech output, echo suppression on and off (``SPOKEN``).
    spoken: bool = True


@dataclass
class StreamLog:
    """What one stream saw, on its own clock (0: its first audio chunk was sent)."""

    status: str = "pending"
    interims: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    finals: dict[int, tuple[float, float, float, str]] = field(default_factory=dict)  # arrival, start, end, text
    translations: dict[tuple[int, str], sm.Translation] = field(default_factory=dict)


def run_simultaneous(options: SimultaneousOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run both paths; returns the JSON-able results."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"options": options.__dict__, "load_before": _load()}
    busy_before, wall_before = machine_busy_s(), time.monotonic()
    with Children() as children:
        if options.embedded:
            log(f"simultaneous: embedded ({options.embedded_recognizer} + Apertium), {options.sentences} sentences, "
                f"{', '.join(phases(options))} ...")  # fmt: skip
            out["embedded"] = _embedded(children, options, work_dir)
        if options.fakes:
            log("simultaneous: through the fakes, three directions, consecutive then simultaneous ...")
            out["fakes"] = _fakes(children, options, work_dir)
    out["load_after"] = _load()
    out["machine_busy_cores"] = round((machine_busy_s() - busy_before) / (time.monotonic() - wall_before), 2)
    return out


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --------------------------------------------------------------------------- one stream


_LEVELS = {
    "low": pb.SIMULTANEOUS_LATENCY_LOW,
    "balanced": pb.SIMULTANEOUS_LATENCY_BALANCED,
    "accurate": pb.SIMULTANEOUS_LATENCY_ACCURATE,
}


def phases(options: SimultaneousOptions, spoken: bool = True) -> list[str]:
    """The modes a path runs: consecutive, simultaneous at the server's default, any other level, then spoken."""
    return [
        *MODES,
        *(f"simultaneous-{level}" for level in options.extra_levels),
        *(SPOKEN if options.spoken and spoken else ()),
    ]


def config(source: str, target: str, mode: str, rate: int = 16000) -> pb.InterpretConfig:
    """A stream's config in ``mode`` (``simultaneous-low``: that level; ``SPOKEN``), with tentative translations."""
    options = pb.TranslationOptions()
    if mode.startswith("simultaneous"):
        options.mode = pb.INTERPRETATION_MODE_SIMULTANEOUS
        options.tentative_translations = True
        level = mode.partition("-")[2]
        if level in _LEVELS:
            options.latency = _LEVELS[level]
    cfg = pb.InterpretConfig(
        audio_format=pb.AudioFormat(encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=rate, channel_count=1),
        source_language_codes=[source],
        target_language_codes=[target],
        interim_results=True,
        translation_options=options,
    )
    if mode in SPOKEN:
        cfg.speech_output.CopyFrom(pb.SpeechOutputConfig(voices=[pb.VoiceSelection(language_code=target)]))
        cfg.echo_suppression = SPOKEN[mode]
    return cfg


def run_stream(address: str, cfg: pb.InterpretConfig, pcm: bytes, start_at: float, timeout_s: float) -> StreamLog:
    """One paced stream (100 ms chunks, the first at ``start_at``, monotonic); every event timed."""
    result = StreamLog()
    chunk = int(32000 * CHUNK_S)

    def requests() -> Iterator[pb.InterpretRequest]:
        yield pb.InterpretRequest(config=cfg)
        for i, offset in enumerate(range(0, len(pcm), chunk)):
            # As a microphone does: a chunk goes once its last sample has been spoken.
            delay = start_at + (i + 1) * CHUNK_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield pb.InterpretRequest(audio=pcm[offset : offset + chunk])

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        try:
            for response in stub.Interpret(requests(), timeout=timeout_s):
                _record(result, response, time.monotonic() - start_at)
            result.status = "OK"
        except grpc.RpcError as error:
            result.status = f"{error.code().name}: {error.details()}"
    return result


def _record(result: StreamLog, response: pb.InterpretResponse, at: float) -> None:
    kind = response.WhichOneof("event")
    if kind == "interim_transcript":
        i = response.interim_transcript
        result.interims.setdefault(i.utterance_id, []).append((at, i.stable_text))
    elif kind == "final_transcript":
        f = response.final_transcript
        span = (f.audio_start_offset.ToTimedelta().total_seconds(), f.audio_end_offset.ToTimedelta().total_seconds())
        result.finals[f.utterance_id] = (at, span[0], span[1], f.text)
    elif kind in ("translation_token", "translation_tentative", "translation_complete", "translation_reset"):
        event = getattr(response, kind)
        key = (event.utterance_id, event.target_language_code)
        translation = result.translations.setdefault(key, sm.Translation(event.utterance_id))
        if kind == "translation_token":
            translation.tokens.append((at, event.text))
        elif kind == "translation_tentative":
            translation.tentatives.append((at, event.text))
        elif kind == "translation_reset":
            translation.resets += 1
        else:
            translation.complete_at, translation.complete = at, event.text


def run_streams(jobs: list[tuple[str, pb.InterpretConfig, bytes]], timeout_s: float) -> list[StreamLog]:
    """Several streams at once, started together."""
    start_at = time.monotonic() + 1.0
    results: list[StreamLog | None] = [None] * len(jobs)

    def one(i: int) -> None:
        address, cfg, pcm = jobs[i]
        results[i] = run_stream(address, cfg, pcm, start_at, timeout_s)

    threads = [threading.Thread(target=one, args=(i,), name=f"simul-stream-{i}") for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s + 30)
    return [r or StreamLog(status="no result") for r in results]


# --------------------------------------------------------------------------- analysis


@dataclass
class Sentence:
    """Where a sentence's speech is in the stream's audio."""

    start_s: float
    end_s: float


def sentence_figures(stream: StreamLog, sentences: list[Sentence], target: str) -> list[dict[str, Any]]:
    """Per sentence: the translation's lag, first word, end offset, retractions, erasure, and the floors."""
    by_end = sorted(stream.finals.items(), key=lambda item: item[1][2])
    out: list[dict[str, Any]] = []
    for index, sentence in enumerate(sentences):
        # The utterance whose final ends nearest the sentence's end (the endpointer cuts within a word or two).
        uid = min(by_end, key=lambda item: abs(item[1][2] - sentence.end_s), default=(None, None))[0]
        translation = stream.translations.get((uid, target)) if uid is not None else None
        if uid is None or translation is None or translation.complete_at is None:
            out.append({"sentence": index, "missing": True})
            continue
        duration = sentence.end_s - sentence.start_s
        delays = [t - sentence.start_s for t in sm.word_times(translation.tokens)]
        stable = [t - sentence.start_s for t in sm.stable_word_times(stream.interims.get(uid, []))]
        erased, words = sm.erasure(translation)
        first = translation.first_token_at
        out.append(
            {
                "sentence": index,
                "utterance": uid,
                "al_s": sm.average_lagging(delays, duration),
                "first_word_s": None if first is None else first - sentence.start_s,
                "end_offset_s": translation.complete_at - sentence.end_s,
                "retracted_chars": sm.retracted_chars(translation.sent, translation.complete),
                "resets": translation.resets,
                "erased_words": erased,
                "words": words,
                "complete": translation.complete,
                "final": stream.finals[uid][3],
                # Floors: nothing can be translated before it is stable, nor completed before the final.
                "floor_al_s": sm.average_lagging(stable, duration),
                "floor_first_word_s": stable[0] if stable else None,
                "floor_end_offset_s": stream.finals[uid][0] - sentence.end_s,
            }
        )
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's figures over its sentences (seconds)."""
    kept = [r for r in rows if not r.get("missing")]

    def values(key: str) -> list[float]:
        return [r[key] for r in kept if r.get(key) is not None]

    def mean(key: str) -> float | None:
        v = values(key)
        return round(sum(v) / len(v), 3) if v else None

    def pct(key: str, q: float) -> float | None:
        p = stats.percentile(values(key), q)
        return None if p is None else round(p, 3)

    words = sum(r["words"] for r in kept)
    return {
        "sentences": len(rows),
        "translated": len(kept),
        "al_s": mean("al_s"),
        "floor_al_s": mean("floor_al_s"),
        "first_word_s": {"p50": pct("first_word_s", 50), "max": pct("first_word_s", 100)},
        "floor_first_word_s": pct("floor_first_word_s", 50),
        "end_offset_s": {"p50": pct("end_offset_s", 50), "p95": pct("end_offset_s", 95)},
        "floor_end_offset_s": {"p50": pct("floor_end_offset_s", 50), "p95": pct("floor_end_offset_s", 95)},
        "retracted_chars": sum(r["retracted_chars"] for r in kept),
        "resets": sum(r["resets"] for r in kept),
        "erasure": round(sum(r["erased_words"] for r in kept) / words, 3) if words else None,
    }


def chrf(hypotheses: list[str], references: list[str]) -> float | None:
    """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2) of the pairs where both exist."""
    pairs = [(h, r) for h, r in zip(hypotheses, references, strict=True) if h and r]
    if not pairs:
        return None
    score: float = CHRF().corpus_score([h for h, _ in pairs], [[r for _, r in pairs]]).score
    return round(score, 2)


def _translated(address: str, texts: list[str]) -> list[str]:
    """Each text's whole translation into Spanish from the same server (TranslateText), "" for an empty one."""
    out = []
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        for text in texts:
            if not text.strip():
                out.append("")
                continue
            request = pb.TranslateTextRequest(text=text, source_language_code="en", target_language_codes=["es"])
            out.append(
                next(
                    (
                        r.translation_complete.text
                        for r in stub.TranslateText(request, timeout=30)
                        if r.HasField("translation_complete")
                    ),
                    "",
                )
            )
    return out


def _completes(rows: list[dict[str, Any]], count: int) -> list[str]:
    by_index = {r["sentence"]: r.get("complete", "") for r in rows}
    return [by_index.get(i, "") for i in range(count)]


def _cpu(pid: int) -> float:
    return sum(_cpu_by_role(pid).values())


# --------------------------------------------------------------------------- embedded


def _embedded(children: Children, options: SimultaneousOptions, work_dir: Path) -> dict[str, Any]:
    sentences = SENTENCES[: options.sentences]
    speech = synthesize(sentences, pause_s=PAUSE_S)
    ends = list(speech.sentence_end_s)
    spans = [Sentence((ends[i - 1] if i else 0.0) + PAUSE_S, end) for i, end in enumerate(ends)]
    pcm = speech.pcm()
    port = free_port()
    argv = [
        server_command(), "--host", LOOPBACK, "--port", str(port), "--recognizer", options.embedded_recognizer,
        "--translator", "apertium", "--offline-workers", "1", "--whisper-streams-per-worker",
        str(max(2, options.embedded_streams)), "--store", "none", "--log-level", "WARNING",
        "--synthesizer", "embedded" if options.spoken else "none",
    ]  # fmt: skip
    server = children.start("simul-embedded-server", argv, work_dir)
    address = f"{LOOPBACK}:{port}"
    out: dict[str, Any] = {
        "recognizer": options.embedded_recognizer,
        "sentences": sentences,
        "speech_s": round(len(pcm) / 32000, 1),
    }
    try:
        wait_for_grpc(server, address, 120)
        run_streams([(address, config("en-US", "es", "consecutive"), pcm[: 32000 * 3])], 60)  # loads Whisper
        completes: dict[str, list[str]] = {}
        for mode in phases(options):
            jobs = [(address, config("en-US", "es", mode), pcm)] * options.embedded_streams
            before, wall = _cpu(server.pid), time.monotonic()
            streams = run_streams(jobs, len(pcm) / 32000 + 120)
            cpu = _cpu(server.pid) - before
            rows = [row for s in streams for row in sentence_figures(s, spans, "es")]
            completes[mode] = _completes(sentence_figures(streams[0], spans, "es"), len(sentences))
            out[mode] = summarise(rows) | {
                "statuses": sorted({s.status for s in streams}),
                "server_cores_per_stream": round(cpu / (time.monotonic() - wall) / len(streams), 3),
                "chrf_reference": chrf(completes[mode], REFERENCES_ES[: len(sentences)]),
                "rows": rows,
            }
            if mode != "consecutive":
                # The recogniser does not hear a phase's speech exactly as the last one's: against what a
                # consecutive translation of the same finals says, only the policy's effect is left.
                same = _translated(address, [r.get("final", "") for r in rows])
                out[mode]["chrf_same_finals"] = chrf([r.get("complete", "") for r in rows], same)
        out["chrf_simultaneous_vs_consecutive"] = chrf(completes["simultaneous"], completes["consecutive"])
        for mode in phases(options)[2:]:
            out[mode]["chrf_vs_consecutive"] = chrf(completes[mode], completes["consecutive"])
    finally:
        children.stop(server, grace_s=5)
    return out


# --------------------------------------------------------------------------- fakes


def _fake_script(first: int, words: int, utterances: int) -> list[list[int]]:
    return [[first + (u * words + w) % 20 for w in range(words)] for u in range(utterances)]


def _fakes(children: Children, options: SimultaneousOptions, work_dir: Path) -> dict[str, Any]:
    speech_port = free_port()
    stt = children.start(
        "simul-fake-stt", [python(), "-m", "tests.support.fake_speech", "--port", str(speech_port)], work_dir
    )
    wait_for_grpc(stt, f"{LOOPBACK}:{speech_port}", 30)
    fake = FakeOpenAI(ttft_s=options.ttft_ms / 1000, tokens_per_s=options.tokens_per_s).start()
    port = free_port()
    argv = [
        server_command(), "--host", LOOPBACK, "--port", str(port), "--log-level", "WARNING", "--store", "none",
        "--synthesizer", "none", "--recognizer", "google", "--google-endpoint", f"{LOOPBACK}:{speech_port}",
        "--google-insecure", "--translator", "openai", "--openai-base-url", fake.base_url,
    ]  # fmt: skip
    server = children.start("simul-fakes-server", argv, work_dir, env={"OPENAI_API_KEY": "bench-not-a-secret"})
    address = f"{LOOPBACK}:{port}"
    out: dict[str, Any] = {"ttft_ms": options.ttft_ms, "tokens_per_s": options.tokens_per_s}
    try:
        wait_for_grpc(server, address, 60)
        scripts = {
            (s, t): _fake_script(first, words, options.fake_utterances) for s, t, first, words in FAKE_DIRECTIONS
        }
        audio = {key: fake_speech.synthesize(script) for key, script in scripts.items()}
        spans = {key: _fake_spans(script) for key, script in scripts.items()}
        for mode in phases(options, spoken=False):
            fake.reset()
            jobs = [
                (address, config(s, t, mode), audio[(s, t)])
                for s, t, _, _ in FAKE_DIRECTIONS
                for _ in range(options.fake_streams)
            ]
            before, wall = _cpu(server.pid), time.monotonic()
            longest = max(len(a) for a in audio.values()) / 32000
            streams = run_streams(jobs, longest + 60)
            cpu = _cpu(server.pid) - before
            fake.wait_idle(10)
            per_stream = cpu / (time.monotonic() - wall) / len(streams)
            phase: dict[str, Any] = {}
            for d, (s, t, _, _) in enumerate(FAKE_DIRECTIONS):
                mine = streams[d * options.fake_streams : (d + 1) * options.fake_streams]
                rows = [row for stream in mine for row in sentence_figures(stream, spans[(s, t)], t)]
                speech_s = sum(x.end_s - x.start_s for x in spans[(s, t)]) * len(mine)
                requests = [
                    r
                    for r in fake.requests
                    if r.kind != "speech" and r.source_language.split("-")[0] == s.split("-")[0]
                    and r.target_language.split("-")[0] == t
                ]  # fmt: skip
                phase[f"{s.split('-')[0]}->{t}"] = summarise(rows) | {
                    "statuses": sorted({x.status for x in mine}),
                    "requests": len(requests),
                    "cancelled": sum(r.outcome == "disconnected" for r in requests),
                    "requests_per_speech_s": round(len(requests) / speech_s, 3),
                    "finals": sum(len(x.finals) for x in mine),
                    "server_cores_per_stream": round(per_stream, 4),
                    "rows": rows,
                }
            out[mode] = phase
    finally:
        children.stop(server, grace_s=5)
        fake.stop()
        children.stop(stt)
    return out


def _fake_spans(script: list[list[int]]) -> list[Sentence]:
    timing = fake_speech.Timing()
    spans = []
    start = timing.lead_in_s
    for end, next_start in fake_speech.utterance_ends_s(script, timing):
        spans.append(Sentence(start, end))
        start = next_start
    return spans
