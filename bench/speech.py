"""Speech output: how soon a sentence is heard translated, what the synthesizers cost.

Method:

- **Embedded, end to end.** One paced stream of synthesised English speech
  (Festival, as the offline part) into a server with pocketsphinx + Apertium
  + the embedded synthesizer, spoken in Spanish (espeak-ng). For each
  sentence: the end of its audio -> its final (the floor: nothing can be
  spoken before the words are recognised) -> the first byte of its spoken
  translation. The same stream without speech output gives the server's CPU
  per stream with speech off.
- **Piper, warm.** TranslateText es -> en with speech (Apertium + Piper): the
  translation's last token -> the first audio byte, i.e. what the neural
  voice adds once the text is there.
- **Through the fakes.** Paced word-audio streams into a server with the fake
  Speech-to-Text, the fake OpenAI chat and, for speech, the fake OpenAI
  ``/v1/audio/speech`` or the fake Google Text-to-Speech (which answer at
  once: the figures are the server's own cost): final -> first token -> first
  audio byte, and the server's CPU per stream with speech off and on.
- **Real-time factor** of Piper and espeak-ng, in this process: synthesis
  wall time / audio duration, per clause. Piper's thread speed-up: the same
  clauses with 2 synthesis threads at once against 1.

The machine's load average is recorded before and after: the machine is
shared, and every figure is from the same run as its floor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import stats
from bench.measure import machine_busy_s, run_loadgen
from bench.offline import SENTENCES, _cpu_by_role, _spec
from bench.procs import LOOPBACK, Child, Children, free_port, python, server_command, wait_for_grpc, wait_for_tcp
from tests.support.speech import Speech, synthesize
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

SPANISH = "Buenos días a todos. Nos gustaría hablar del contrato hoy. La entrega es el viernes."
RTF_CLAUSES = [
    "Good morning everyone.",
    "We would like to discuss the contract today.",
    "The delivery date is next Friday, as agreed.",
    "Please send your comments by email before the meeting.",
]
LINEAR16 = {"encoding": pb.SPEECH_ENCODING_LINEAR16, "rate": 24000}


@dataclass(frozen=True)
class SpeechOptions:
    """How the speech part runs."""

    sentences: int = len(SENTENCES)  # of the embedded stream
    translate_runs: int = 5  # TranslateText with Piper
    fake_streams: int = 10
    fake_seconds: float = 20.0
    ttft_ms: float = 100.0
    tokens_per_s: float = 50.0
    rtf_rounds: int = 2


def run_speech(options: SpeechOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the speech measurements; returns the JSON-able results."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"options": options.__dict__, "load_before": _load()}
    busy_before, wall_before = machine_busy_s(), time.monotonic()
    log("speech: real-time factor of the embedded synthesizers ...")
    out["synthesizers"] = _synthesizers(options)
    with Children() as children:
        log("speech: embedded end to end (pocketsphinx + Apertium + espeak-ng), speech off then on ...")
        out["embedded"] = _embedded(children, options, work_dir)
        log(f"speech: through the fakes, {options.fake_streams} streams, off / OpenAI TTS / Google TTS ...")
        out["fakes"] = _fakes(children, options, work_dir)
    out["load_after"] = _load()
    out["machine_busy_cores"] = round((machine_busy_s() - busy_before) / (time.monotonic() - wall_before), 2)
    return out


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# --------------------------------------------------------------------------- synthesizers, in this process


def _synthesizers(options: SpeechOptions) -> dict[str, Any]:
    from tongyeok_server.synthesis import espeak_engine, piper_engine

    out: dict[str, Any] = {}
    espeak = espeak_engine.EspeakSynthesizer()
    voice = espeak.default_voice("es")
    if voice is not None:
        out["espeak-ng"] = asyncio.run(_rtf(espeak, voice, _spanish_clauses(), options.rtf_rounds, 1))
    if piper_engine.available():
        one, two = piper_engine.PiperSynthesizer(1), piper_engine.PiperSynthesizer(2)
        voice = one.default_voice("en")
        assert voice is not None
        one.warm_up()
        two.warm_up()
        out["piper"] = asyncio.run(_rtf(one, voice, RTF_CLAUSES, options.rtf_rounds, 1))
        out["piper_2_threads"] = asyncio.run(_rtf(two, voice, RTF_CLAUSES, options.rtf_rounds, 2))
        out["piper_thread_speedup"] = round(out["piper"]["wall_s"] / out["piper_2_threads"]["wall_s"], 2)
    return out


def _spanish_clauses() -> list[str]:
    return [s.strip() + "." for s in SPANISH.split(".") if s.strip()]


async def _rtf(engine: Any, voice: Any, clauses: list[str], rounds: int, at_once: int) -> dict[str, Any]:
    """Speak ``clauses`` ``rounds`` times, ``at_once`` clauses in flight: per-clause RTF and total wall time."""
    from tongyeok_server.synthesis.base import SpeechRequest

    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(4))
    request = SpeechRequest(voice.language_codes[0], voice, 1.0, 24000)
    rate = engine.output_rate(request)
    await _speak(engine, request, "Hello.")  # the load and the first run are not counted
    gate = asyncio.Semaphore(at_once)
    factors: list[float] = []
    audio_s = 0.0

    async def one(text: str) -> None:
        nonlocal audio_s
        async with gate:
            started = time.perf_counter()
            pcm = await _speak(engine, request, text)
            seconds = len(pcm) / 2 / rate
            factors.append((time.perf_counter() - started) / seconds)
            audio_s += seconds

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for _ in range(rounds) for c in clauses))
    wall = time.perf_counter() - started
    return {
        "clauses": len(factors),
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
        "rtf_per_clause": stats.summary(factors),
        "rtf_overall": round(wall / audio_s, 4) if audio_s else None,
    }


async def _speak(engine: Any, request: Any, text: str) -> bytes:
    return b"".join([pcm async for pcm in engine.speak_clause(request, text)])


# --------------------------------------------------------------------------- embedded, end to end


def _embedded(children: Children, options: SpeechOptions, work_dir: Path) -> dict[str, Any]:
    speech = synthesize(SENTENCES[: options.sentences])
    port = free_port()
    argv = [
        server_command(), "--host", LOOPBACK, "--port", str(port),
        "--recognizer", "pocketsphinx", "--translator", "apertium", "--synthesizer", "embedded",
        "--offline-workers", "1", "--log-level", "WARNING",
    ]  # fmt: skip
    server = children.start("speech-embedded-server", argv, work_dir)
    address = f"{LOOPBACK}:{port}"
    try:
        wait_for_grpc(server, address, 90)
        translate = _translate_piper(address, options.translate_runs)  # also warms Piper and espeak-ng up
        off = _paced_stream(children, server, address, speech, work_dir, None)
        on = _paced_stream(children, server, address, speech, work_dir, LINEAR16)
    finally:
        children.stop(server, grace_s=5)
    return {"speech_off": off, "speech_on": on, "translate_piper": translate}


def _paced_stream(
    children: Children, server: Child, address: str, speech: Speech, work_dir: Path, speech_out: dict[str, int] | None
) -> dict[str, Any]:
    spec = _spec(address, speech, work_dir, 1, paced=True)
    if speech_out:
        spec["speech"] = speech_out
    name = "speech-embedded-" + ("on" if speech_out else "off")
    before = _cpu_by_role(server.pid)
    streams, _ = run_loadgen(children, spec, 1, work_dir, name, spec["timeout_s"] + 30)
    after = _cpu_by_role(server.pid)
    stream = streams[0]
    audio_s = len(speech.pcm()) / 32000
    first_audio = dict(stream["first_audio_at"])  # utterance -> arrival s
    to_final: list[float] = []
    to_audio: list[float] = []
    first_final: dict[int, list[Any]] = {}
    ends = list(speech.sentence_end_s)
    for final in stream["finals"]:  # [utterance, end offset s, arrival s, text]; nearest sentence end, as offline
        first_final.setdefault(min(range(len(ends)), key=lambda i: abs(ends[i] - final[1])), final)
    for i, end in enumerate(ends):
        hit = first_final.get(i)
        if hit is None:
            continue
        to_final.append((hit[2] - end) * 1000)
        if hit[0] in first_audio:
            to_audio.append((first_audio[hit[0]] - end) * 1000)
    cpu = sum(after.values()) - sum(before.values())
    return {
        "status": stream["status"],
        "sentences": len(ends),
        "spoken": len(to_audio),
        "sentence_end_to_final_ms": stats.summary(to_final),
        "final_to_first_token_ms": stats.summary(stream["first_token_ms"]),
        "final_to_first_audio_ms": stats.summary(stream["first_audio_ms"]),
        "sentence_end_to_first_audio_ms": stats.summary(to_audio),
        "audio_bytes": stream["audio_bytes"],
        "server_cpu_s": round(cpu, 2),
        "server_cores_per_stream": round(cpu / audio_s, 3),
    }


def _translate_piper(address: str, runs: int) -> dict[str, Any]:
    """TranslateText es -> en spoken by Piper: last token -> first audio byte (and request -> first audio)."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        request = pb.TranslateTextRequest(
            text=SPANISH,
            source_language_code="es",
            target_language_codes=["en"],
            speech_output=pb.SpeechOutputConfig(sample_rate_hertz=24000),
        )
        for source, target, text in (("es", "en", "Hola."), ("en", "es", "Hello.")):  # loads the voices
            warm = pb.TranslateTextRequest(text=text, source_language_code=source, target_language_codes=[target])
            warm.speech_output.SetInParent()
            list(stub.TranslateText(warm, timeout=120))
        text_to_audio: list[float] = []
        to_audio: list[float] = []
        for _ in range(runs):
            started = time.monotonic()
            last_token = first_audio = None
            for response in stub.TranslateText(request, timeout=60):
                kind = response.WhichOneof("event")
                if kind == "translation_token" and first_audio is None:
                    last_token = time.monotonic()
                elif kind == "translation_audio" and first_audio is None:
                    first_audio = time.monotonic()
            if first_audio is not None and last_token is not None:
                text_to_audio.append((first_audio - last_token) * 1000)
                to_audio.append((first_audio - started) * 1000)
    return {
        "runs": runs,
        "last_token_before_audio_to_first_audio_ms": stats.summary(text_to_audio),
        "request_to_first_audio_ms": stats.summary(to_audio),
    }


# --------------------------------------------------------------------------- through the fakes


def _fakes(children: Children, options: SpeechOptions, work_dir: Path) -> dict[str, Any]:
    speech_port, openai_port, tts_port = free_port(), free_port(), free_port()
    fakes = [
        children.start("speech-fake-stt", [python(), "-m", "tests.support.fake_speech", "--port", str(speech_port)], work_dir),
        children.start(
            "speech-fake-openai",
            [
                python(), "-m", "tests.support.fake_openai", "--port", str(openai_port),
                "--ttft-ms", str(options.ttft_ms), "--tokens-per-s", str(options.tokens_per_s),
            ],
            work_dir,
        ),
        children.start("speech-fake-tts", [python(), "-m", "tests.support.fake_tts", "--port", str(tts_port)], work_dir),
    ]  # fmt: skip
    wait_for_grpc(fakes[0], f"{LOOPBACK}:{speech_port}", 30)
    wait_for_tcp(fakes[1], openai_port, 30)
    wait_for_grpc(fakes[2], f"{LOOPBACK}:{tts_port}", 30)
    common = [
        "--recognizer", "google", "--google-endpoint", f"{LOOPBACK}:{speech_port}", "--google-insecure",
        "--translator", "openai", "--openai-base-url", f"http://{LOOPBACK}:{openai_port}/v1",
    ]  # fmt: skip
    engines = {
        "openai": ["--synthesizer", "openai"],
        "google": ["--synthesizer", "google", "--google-tts-endpoint", f"{LOOPBACK}:{tts_port}"],
    }
    out: dict[str, Any] = {}
    try:
        for name, extra in engines.items():
            server, address = _start(children, work_dir, f"speech-fakes-{name}", common + extra)
            try:
                if name == "openai":
                    out["speech_off"] = _fake_phase(children, options, server, address, work_dir, None, "off")
                out[name] = _fake_phase(children, options, server, address, work_dir, LINEAR16, name)
            finally:
                children.stop(server, grace_s=5)
    finally:
        for child in fakes:
            children.stop(child)
    return out


def _start(children: Children, work_dir: Path, name: str, args: list[str]) -> tuple[Child, str]:
    port = free_port()
    argv = [server_command(), "--host", LOOPBACK, "--port", str(port), "--log-level", "WARNING", *args]
    server = children.start(name, argv, work_dir, env={"OPENAI_API_KEY": "bench-not-a-secret"})
    address = f"{LOOPBACK}:{port}"
    wait_for_grpc(server, address, 60)
    return server, address


def _fake_phase(
    children: Children,
    options: SpeechOptions,
    server: Child,
    address: str,
    work_dir: Path,
    speech_out: dict[str, int] | None,
    name: str,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": "tongyeok",
        "address": address,
        "streams": options.fake_streams,
        "start_at": time.monotonic() + 3.0,
        "ramp_s": 0.5,
        "chunk_ms": 100,
        "paced": True,
        "audio": {"kind": "words", "seconds": options.fake_seconds},
        "sources": ["en-US"],
        "targets": ["es"],
        "interim": True,
        "streams_per_channel": 50,
        "timeout_s": options.fake_seconds + 60,
        "drain_timeout_s": 30.0,
    }
    if speech_out:
        spec["speech"] = speech_out
    before = _cpu_by_role(server.pid)
    results, _ = run_loadgen(children, spec, 1, work_dir, f"speech-fakes-{name}", spec["timeout_s"] + 30)
    after = _cpu_by_role(server.pid)
    cpu = sum(after.values()) - sum(before.values())
    audio_s = options.fake_seconds * options.fake_streams

    def merged(key: str) -> list[float]:
        return [v for r in results for v in r[key]]

    finals = [e[2] for r in results for e in r["events"] if e[0] == "final"]
    return {
        "streams": options.fake_streams,
        "statuses": sorted({r["status"] for r in results}),
        "utterances": sum(len(r["finals"]) for r in results),
        "spoken": sum(len(r["first_audio_ms"]) for r in results),
        "trigger_to_final_ms": stats.summary(finals),
        "final_to_first_token_ms": stats.summary(merged("first_token_ms")),
        "final_to_first_audio_ms": stats.summary(merged("first_audio_ms")),
        "server_cpu_s": round(cpu, 2),
        "server_cores_per_stream": round(cpu / audio_s, 4),
    }
