"""Echo suppression: the service's own speech heard again by the microphone, at real-time pace (``tests/support/room.py``).

One ``tongyeok-server`` on the default embedded engines (Whisper, Apertium,
the embedded voices). The room: ``SENTENCES``, each one's spoken translation
mixed back into the microphone at -6 or 0 dB, 1 to 3 s after its final, the
next person speaking right after it or over its last half second or second
(``ROOM``); a two-way (English/Spanish) and a one-way (English -> Spanish)
stream at the same time. Runs on the same server:

- **floor**: no echo (as with headphones), suppression off: what the
  recogniser makes of these sentences at all;
- **quiet**: no echo, suppression on: what suppression costs a caller
  whose microphone never hears the speech (headphones, a platform canceller);
- **off**: the echo, suppression off (``InterpretConfig.echo_suppression``):
  what the issue reported;
- **on**: the echo, suppression on (the default);
- in simultaneous mode (``bench/echo_simultaneous.py``; ``EchoOptions.simultaneous``):
  no echo, suppression off (its floor); the echo, suppression off (what
  the service commits, shows and translates of its own speech); the echo,
  suppression on; and the echo, suppression on, at 22.05 kHz, where the
  canceller cannot run and the echo reaches the recogniser whole (the next
  person after the speech, not over it). The speech plays as its chunks
  come, so it may come back while the person still talks.

Figures: echo caught (of the times the speech came back, those that no
final the server translated came from), real sentences kept (each person's
sentence recognised as one final, not flagged, translated exactly once),
the people's WER in each run, and the server's CPU per second of audio;
in simultaneous mode also whether the people were still interpreted while
they spoke (their first committed word), and whether any of the echo's
translation was committed or shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import soxr

from bench.echo_simultaneous import simultaneous_figures, simultaneous_rows, simultaneous_targets
from bench.offline_asr import cpu_seconds
from bench.procs import LOOPBACK, Children, free_port, server_command, wait_for_grpc
from tests.support.calls import config
from tests.support.room import RoomRun, Turn, run_room
from tests.support.speech import synthesize, word_error_rate
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

SENTENCES = [
    "We would like to discuss the contract today.",
    "The delivery date is next Friday.",
    "Thank you for your time.",
    "Our team will visit your office in March.",
    "The price includes shipping and insurance.",
    "Could you repeat the last number please?",
]
# (gain dB, delay after the final s, the next person: gap after the speech (+) or over its end (-))
ROOM = [(-6.0, 1.0, 0.3), (0.0, 2.5, -0.5), (-6.0, 3.0, 0.5), (0.0, 1.5, -1.0), (-6.0, 2.0, 0.2), (0.0, 1.0, 1.0)]
MODES = {"two-way": (("en-US", "es-ES"), ()), "one-way": (("en-US",), ("es",))}

#: Targets: no echo translated; every real sentence kept; the people's WER within a point of the floor.
ECHO_CAUGHT_TARGET = 1.0
KEPT_TARGET = 1.0
WER_POINTS_TARGET = 1.0


@dataclass(frozen=True)
class EchoOptions:
    """How much of the room to run."""

    sentences: int = len(SENTENCES)
    simultaneous: bool = True  # the simultaneous rooms too


@dataclass(frozen=True)
class Room:
    """One run of the room: with the echo or not, suppression on or off, which mode, the microphone's rate."""

    name: str
    echo: bool
    suppression: bool
    simultaneous: bool = False
    rate: int = 16000


ROOMS = (
    Room("floor", False, False),
    Room("quiet", False, True),
    Room("off", True, False),
    Room("on", True, True),
)
SIMULTANEOUS_ROOMS = (
    Room("simultaneous-floor", False, False, True),
    Room("simultaneous-off", True, False, True),
    Room("simultaneous-on", True, True, True),
    Room("simultaneous-uncancelled", True, True, True, 22050),  # not a multiple of 100 Hz: no canceller
)


def _turns(n: int, room: Room) -> list[Turn]:
    speech = synthesize(SENTENCES[:n], pause_s=0.0)
    pcm = np.frombuffer(speech.pcm(), dtype="<i2")
    if room.rate != 16000:
        pcm = soxr.resample(pcm.astype(np.float32), 16000, room.rate).astype(np.int16)
    ends = [0.0, *speech.sentence_end_s]
    turns = []
    for i, text in enumerate(SENTENCES[:n]):
        gain, delay, gap = ROOM[i % len(ROOM)]
        piece = pcm[int(ends[i] * room.rate) : int(ends[i + 1] * room.rate)]
        if room.rate % 100:  # nothing removes the echo under a voice: the next person speaks after it
            gap = max(gap, 0.5)
        over = {"over_s": -gap} if gap < 0 else {"gap_s": gap}
        turns.append(Turn(piece, text, gain_db=gain if room.echo else None, delay_s=delay, **over))
    return turns


def _run_modes(address: str, turns: list[Turn], room: Room) -> dict[str, RoomRun]:
    runs: dict[str, RoomRun] = {}
    errors: list[str] = []

    def go(name: str) -> None:
        sources, targets = MODES[name]
        simultaneous: dict[str, Any] = (
            {"mode": pb.INTERPRETATION_MODE_SIMULTANEOUS, "tentative_translations": True} if room.simultaneous else {}
        )
        cfg = config(sources=sources, targets=targets, rate=room.rate, **simultaneous).config
        cfg.speech_output.CopyFrom(pb.SpeechOutputConfig(voices=[pb.VoiceSelection(language_code="es")]))
        cfg.echo_suppression = room.suppression
        try:
            with grpc.insecure_channel(address) as channel:
                stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
                runs[name] = run_room(stub, cfg, turns, language="es", as_it_comes=room.simultaneous)
        except grpc.RpcError as e:
            errors.append(f"{name}: {e}")

    threads = [threading.Thread(target=go, args=(name,)) for name in MODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    return runs


def judge(run: RoomRun, sentences: list[str]) -> dict[str, Any]:
    """One stream's figures: echo caught, sentences kept, WER."""
    people = run.people
    turns = [run.turn_of(f) for f in people]
    translated = {c.utterance_id for c in run.of_kind("translation_complete")}
    kept = 0
    for i in range(len(sentences)):
        mine = [f for f, t in zip(people, turns, strict=True) if t == i]
        if len(mine) == 1 and mine[0].language_code.startswith("en") and mine[0].utterance_id in translated:
            kept += 1
    stray = [f for f, t in zip(people, turns, strict=True) if t is None or not f.language_code.startswith("en")]

    def overlaps(final: pb.FinalTranscript, span: tuple[float, float]) -> bool:
        start = final.audio_start_offset.ToTimedelta().total_seconds()
        end = final.audio_end_offset.ToTimedelta().total_seconds()
        return start < span[1] and end > span[0]

    leaked = sum(1 for span in run.echo_spans_s if any(overlaps(f, span) for f in stray))
    return {
        "echo_returns": len(run.echo_spans_s),
        "echo_leaked": leaked,
        "echo_translated": [f.text for f in stray if f.utterance_id in translated],
        "echo_flagged": len(run.echoes),
        "kept": kept,
        "sentences": len(sentences),
        "wer": word_error_rate(" ".join(sentences), " ".join(f.text for f in people if f in people)),
        "heard": [f.text for f in people],
    }


def run_echo(options: EchoOptions, work_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the rooms on one server; figures per run and mode."""
    n = options.sentences
    sentences = SENTENCES[:n]
    port = free_port()
    argv = [
        server_command(), "--host", LOOPBACK, "--port", str(port), "--recognizer", "whisper",
        "--translator", "apertium", "--offline-workers", "1", "--whisper-streams-per-worker", "2",
        "--log-level", "WARNING",
    ]  # fmt: skip
    result: dict[str, Any] = {"sentences": n, "runs": {}}
    with Children() as children:
        server = children.start("echo-server", argv, work_dir)
        address = f"{LOOPBACK}:{port}"
        wait_for_grpc(server, address, 180)
        for room in ROOMS + (SIMULTANEOUS_ROOMS if options.simultaneous else ()):
            log(f"echo: {room.name} room, {n} sentences x {len(MODES)} streams at real-time pace ...")
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            runs = _run_modes(address, _turns(n, room), room)
            cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
            audio_s = sum(len(r.mic) / r.rate for r in runs.values() if r.mic is not None)
            modes = {mode: judge(run, sentences) for mode, run in runs.items()}
            if room.simultaneous:
                modes = {mode: modes[mode] | simultaneous_figures(run) for mode, run in runs.items()}
            result["runs"][room.name] = {
                "modes": modes,
                "server_cpu_ms_per_audio_s": round(1000 * cpu / audio_s, 1) if audio_s else None,
                "wall_s": round(wall, 1),
            }
    return result


def _totals(run: dict[str, Any]) -> dict[str, Any]:
    modes = run["modes"].values()
    returns = sum(m["echo_returns"] for m in modes)
    leaked = sum(m["echo_leaked"] for m in modes)
    return {
        "caught": (returns - leaked) / returns if returns else None,
        "returns": returns,
        "translated": sum(len(m["echo_translated"]) for m in modes),
        "kept": sum(m["kept"] for m in modes),
        "sentences": sum(m["sentences"] for m in modes),
        "wer": float(np.mean([m["wer"] for m in modes])),
    }


def echo_targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The echo part's targets (none when it did not run)."""
    if not result:
        return []
    floor, on = _totals(result["runs"]["floor"]), _totals(result["runs"]["on"])
    quiet = _totals(result["runs"]["quiet"])
    points = 100 * (on["wer"] - floor["wer"])
    quiet_points = 100 * (quiet["wer"] - floor["wer"])
    return [
        {
            "target": "echo: the people's WER with suppression on and no echo, against it off",
            "required": f"<= +{WER_POINTS_TARGET:g} point",
            "measured": f"{100 * quiet['wer']:.1f} % vs {100 * floor['wer']:.1f} % ({quiet_points:+.1f} points)",
            "met": quiet_points <= WER_POINTS_TARGET,
        },
        {
            "target": "echo: the speech heard again, caught (never translated)",
            "required": f">= {ECHO_CAUGHT_TARGET:.0%}",
            "measured": f"{'-' if on['caught'] is None else format(on['caught'], '.0%')} of {on['returns']} "
            f"({on['translated']} translated)",
            "met": on["caught"] is not None and on["caught"] >= ECHO_CAUGHT_TARGET,
        },
        {
            "target": "echo: real sentences kept (one final each, translated once)",
            "required": f">= {KEPT_TARGET:.0%}",
            "measured": f"{on['kept']}/{on['sentences']}",
            "met": on["kept"] >= KEPT_TARGET * on["sentences"],
        },
        {
            "target": "echo: the people's WER with suppression on, against no echo at all",
            "required": f"<= +{WER_POINTS_TARGET:g} point",
            "measured": f"{100 * on['wer']:.1f} % vs {100 * floor['wer']:.1f} % ({points:+.1f} points)",
            "met": points <= WER_POINTS_TARGET,
        },
        *simultaneous_targets(result, _totals, WER_POINTS_TARGET),
    ]


def render_echo(result: dict[str, Any]) -> str:
    """The table: each run's figures, the floor beside them."""
    lines = [
        f"Echo suppression: {result['sentences']} sentences x {len(MODES)} streams (two-way, one-way), "
        "speech back at -6/0 dB 1-3 s after the final, people right after it or over its end",
        "| run | echo caught | echo translated | sentences kept | people's WER | server CPU ms per audio s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = (
        ("floor", "no echo, suppression off (floor)"),
        ("quiet", "no echo, suppression on"),
        ("off", "echo, suppression off"),
        ("on", "echo, suppression on"),
    )
    for name, label in labels:
        run = result["runs"][name]
        t = _totals(run)
        caught = "-" if t["caught"] is None else f"{t['caught']:.0%} of {t['returns']}"
        lines.append(
            f"| {label} | {caught} | {t['translated']} | {t['kept']}/{t['sentences']} | {100 * t['wer']:.1f} % | "
            f"{run['server_cpu_ms_per_audio_s']} |"
        )
    lines.append(f"targets: echo caught {ECHO_CAUGHT_TARGET:.0%}, sentences kept {KEPT_TARGET:.0%}, "
                 f"WER within +{WER_POINTS_TARGET:g} point of the floor")  # fmt: skip
    for name in ("off", "on"):
        for mode, m in result["runs"][name]["modes"].items():
            lines.append(f"{name} {mode}: heard {m['heard']}")
    lines += simultaneous_rows(result, _totals)
    return "\n".join(lines)
