"""``python -m bench`` (``make bench``): run the cloud sweep and the embedded-engine measurements, print, save."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from bench.cloud import CloudOptions, run_cloud
from bench.echo import EchoOptions, echo_targets, render_echo, run_echo
from bench.expenses import ExpensesOptions, render_expenses, run_expenses
from bench.live_asr import LiveOptions, run_live
from bench.offline import OfflineOptions, run_offline
from bench.offline_asr import AsrOptions, run_asr
from bench.openai_client import run_openai_client
from bench.record import BACKENDS, RecordOptions, run_record
from bench.report import render, targets, write_json
from bench.resume import ResumeOptions, run_resume
from bench.scale import ScaleOptions, run_scale
from bench.simultaneous import SimultaneousOptions, run_simultaneous
from bench.speech import SpeechOptions, run_speech
from bench.web import render_web, run_web

RESULTS = Path(__file__).resolve().parent / "results"


def _streams(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive stream counts, e.g. 10,100,500")
    return values


def _stores(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in values if v not in BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: the backends are {', '.join(BACKENDS)}")
    return values


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": psutil.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--streams", type=_streams, default=None, help="concurrent streams per step (default 10,100,200,500)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="seconds of audio per stream (default 20)")
    parser.add_argument(
        "--quick", action="store_true", help="a small run (under a minute): 20 streams, 6 s, short offline part"
    )
    parser.add_argument("--skip-cloud", action="store_true", help="only the embedded engines")
    parser.add_argument("--skip-offline", action="store_true", help="no embedded-engine part (offline, asr)")
    parser.add_argument(
        "--store",
        type=_stores,
        default=BACKENDS,
        help="meeting-record backends compared at --store-streams, comma-separated (default none,sqlite,postgres; "
        "'' skips the comparison)",
    )
    parser.add_argument(
        "--store-streams", type=int, default=None, help="streams of the record comparison (default 200)"
    )
    parser.add_argument("--skip-sweep", action="store_true", help="of the cloud part, only the record comparison")
    parser.add_argument(
        "--skip-asr", action="store_true", help="without the recognisers side by side (Whisper vs pocketsphinx)"
    )
    parser.add_argument(
        "--asr-engines",
        default="whisper,pocketsphinx",
        help="embedded recognisers to compare (comma-separated; default whisper,pocketsphinx)",
    )
    parser.add_argument(
        "--asr-only", action="store_true", help="only the recognisers side by side (same as --skip-cloud, no offline)"
    )
    parser.add_argument(
        "--direct-only",
        action="store_true",
        help="cloud sweep without the server: load generators straight to the fake recogniser (the box's ceiling)",
    )
    parser.add_argument("--speech-latency-ms", type=float, default=0.0, help="the fake recogniser's delay per result")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="the fake OpenAI's time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=50.0, help="the fake OpenAI's tokens per second")
    parser.add_argument(
        "--behind-ms",
        type=float,
        default=200.0,
        help="a chunk sent, or a result (transcript or first token) returned, later than this means the stream fell behind",
    )
    parser.add_argument(
        "--server-processes",
        type=int,
        default=1,
        metavar="N",
        help="run tongyeok-server --processes N (each process uses about one core)",
    )
    parser.add_argument(
        "--profile", type=int, default=None, metavar="N", help="py-spy the server during the N-stream step"
    )
    parser.add_argument(
        "--secure-at",
        type=_streams,
        default=None,
        metavar="N,...",
        help="at these N, also run a server with TLS and an API key on every call (default 200; none with --quick)",
    )
    parser.add_argument(
        "--skip-live", action="store_true", help="without live recognition on the default recogniser (1, 2, 4 streams)"
    )
    parser.add_argument("--live-only", action="store_true", help="only live recognition on the default recogniser")
    parser.add_argument("--skip-speech", action="store_true", help="without the speech-output part")
    parser.add_argument(
        "--skip-scale", action="store_true", help="without the scale part (--processes 1 vs 2, nginx, metrics)"
    )
    parser.add_argument("--scale-only", action="store_true", help="only the scale part")
    parser.add_argument(
        "--scale-streams", type=_streams, default=None, help="N of the processes comparison (default 150,250,350,450)"
    )
    parser.add_argument("--speech-only", action="store_true", help="only the speech-output part")
    parser.add_argument(
        "--skip-simultaneous", action="store_true", help="without simultaneous against consecutive interpretation"
    )
    parser.add_argument(
        "--simultaneous-only", action="store_true", help="only simultaneous against consecutive interpretation"
    )
    parser.add_argument(
        "--simultaneous-recognizer",
        default="whisper",
        choices=("whisper", "pocketsphinx"),
        help="the embedded recogniser of the simultaneous part (default whisper)",
    )
    parser.add_argument(
        "--simultaneous-levels",
        default="",
        help="latency levels measured besides the default, comma-separated (low,accurate)",
    )
    parser.add_argument(
        "--skip-simultaneous-speech",
        action="store_true",
        help="without the simultaneous phases with speech output, echo suppression on and off (embedded path)",
    )
    parser.add_argument(
        "--simultaneous-paths",
        default="embedded,fakes",
        help="which paths of the simultaneous part run, comma-separated (default embedded,fakes)",
    )
    parser.add_argument("--skip-resume", action="store_true", help="without the resumption part")
    parser.add_argument("--resume-only", action="store_true", help="only the resumption part")
    parser.add_argument(
        "--web-streams", type=int, default=None, help="streams of the web gateway part (default 50; 0 skips it)"
    )
    parser.add_argument("--web-only", action="store_true", help="only the web gateway part")
    parser.add_argument("--skip-echo", action="store_true", help="without the echo-suppression part")
    parser.add_argument(
        "--echo-only", action="store_true", help="only the echo-suppression part (the room at real-time pace)"
    )
    parser.add_argument(
        "--skip-echo-simultaneous",
        action="store_true",
        help="the echo part without its simultaneous-mode rooms (the speech played as it comes)",
    )
    parser.add_argument("--skip-expenses", action="store_true", help="without the receipts part")
    parser.add_argument("--expenses-only", action="store_true", help="only the receipts part (OCR accuracy, CPU)")
    parser.add_argument("--receipts", type=int, default=None, help="receipts the expenses part reads (default 40)")
    parser.add_argument(
        "--receipt-engine", default="embedded", help="reader of the expenses part: embedded (default), tesseract"
    )
    parser.add_argument(
        "--baseline",
        default="",
        metavar="TREE",
        help="a checkout of an earlier commit (git worktree add --detach DIR COMMIT): its server runs each cloud N "
        "right after this one's, so before and after are compared in one run",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; exit status 0 even when targets are missed (the table says which)."""
    args = parse_args(argv)
    started = time.monotonic()
    work_dir = args.out.parent / "work"
    results: dict[str, Any] = {"machine": _machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    log = lambda text: print(f"[{time.monotonic() - started:5.0f} s] {text}", file=sys.stderr, flush=True)  # noqa: E731
    if args.asr_only:
        args.skip_cloud = True
    if args.live_only:
        args.skip_cloud = args.skip_offline = args.skip_speech = args.skip_resume = args.skip_scale = True
    if args.speech_only:
        args.skip_cloud = args.skip_offline = True
    if args.resume_only:
        args.skip_scale = True
    if args.scale_only:
        args.skip_resume = True
    if args.web_only:
        args.skip_cloud = args.skip_offline = args.skip_speech = args.skip_resume = args.skip_scale = True
    if args.resume_only or args.scale_only:
        args.skip_cloud = args.skip_offline = args.skip_speech = True
    if args.expenses_only:
        args.skip_cloud = args.skip_offline = args.skip_speech = args.skip_resume = args.skip_scale = True
        args.skip_live = True
    if args.echo_only:
        args.skip_cloud = args.skip_offline = args.skip_speech = args.skip_resume = args.skip_scale = True
        args.skip_live = args.skip_expenses = args.skip_simultaneous = True
        args.web_streams = 0
    if args.asr_only or args.speech_only or args.resume_only or args.scale_only or args.live_only or args.web_only:
        args.skip_expenses = True
    if args.simultaneous_only:
        args.skip_cloud = args.skip_offline = args.skip_speech = args.skip_resume = args.skip_scale = True
        args.skip_live = args.skip_expenses = True
        args.web_streams = 0
    if (
        args.asr_only
        or args.speech_only
        or args.resume_only
        or args.scale_only
        or args.live_only
        or args.web_only
        or args.expenses_only
    ):
        args.skip_simultaneous = True
    if (
        args.asr_only
        or args.speech_only
        or args.resume_only
        or args.scale_only
        or args.live_only
        or args.web_only
        or args.expenses_only
        or args.simultaneous_only
    ):
        args.skip_echo = True
    if not args.skip_cloud:
        cloud = CloudOptions(
            streams=args.streams or ((20,) if args.quick else (10, 100, 200, 500)),
            seconds=args.seconds or (6.0 if args.quick else 20.0),
            behind_bound_ms=args.behind_ms,
            speech_latency_ms=args.speech_latency_ms,
            ttft_ms=args.ttft_ms,
            tokens_per_s=args.tokens_per_s,
            profile_at=args.profile,
            server_processes=args.server_processes,
            direct_only=args.direct_only,
            secure_at=args.secure_at if args.secure_at is not None else (() if args.quick else (200,)),
            baseline=args.baseline,
        )
        if not args.skip_sweep:
            results["cloud"] = run_cloud(cloud, work_dir / "cloud", log)
        if not args.direct_only:
            results["openai_client"] = run_openai_client(
                work_dir / "openai-client",
                log,
                rounds=2 if args.quick else 5,
                translations=100 if args.quick else 200,
                ttft_ms=args.ttft_ms,
                tokens_per_s=args.tokens_per_s,
            )
        if args.store and not args.direct_only:
            streams = args.store_streams or (20 if args.quick else 200)
            record = RecordOptions(streams=streams, stores=args.store)
            results["record"] = run_record(cloud, record, work_dir / "record", log)
    if not args.skip_offline and not args.asr_only:
        offline = OfflineOptions(sentences=3, capacity_streams_per_worker=2) if args.quick else OfflineOptions()
        results["offline"] = run_offline(offline, work_dir / "offline", log)
    if not args.skip_offline and not args.skip_asr:
        engines = tuple(e.strip() for e in args.asr_engines.split(",") if e.strip())
        asr = (
            AsrOptions(engines, voices=("hts",), paced_voices=("hts",), capacity_sentences=3, capacity_max_streams=4)
            if args.quick
            else AsrOptions(engines)
        )
        results["asr"] = run_asr(asr, work_dir / "asr", log)
    if not args.skip_live and (args.live_only or not (args.asr_only or args.speech_only)):
        live = (
            LiveOptions(streams=(1, 2), short_sentences=3, long_sentences=1, two_way_turns=4)
            if args.quick
            else LiveOptions()
        )
        results["live"] = run_live(live, work_dir / "live", log)
    if not args.skip_speech and (args.speech_only or not args.asr_only):
        speech = (
            SpeechOptions(sentences=3, translate_runs=2, fake_streams=3, fake_seconds=6.0, rtf_rounds=1)
            if args.quick
            else SpeechOptions()
        )
        results["speech"] = run_speech(speech, work_dir / "speech", log)
    if not args.skip_simultaneous:
        paths = {p.strip() for p in args.simultaneous_paths.split(",")}
        levels = tuple(v.strip() for v in args.simultaneous_levels.split(",") if v.strip())
        simultaneous = SimultaneousOptions(
            embedded="embedded" in paths,
            fakes="fakes" in paths,
            embedded_recognizer=args.simultaneous_recognizer,
            extra_levels=levels,
            spoken=not args.skip_simultaneous_speech,
        )
        if args.quick:
            simultaneous = replace(simultaneous, sentences=3, fake_utterances=2, fake_streams=1)
        results["simultaneous"] = run_simultaneous(simultaneous, work_dir / "simultaneous", log)
    if not args.skip_resume and (args.resume_only or not (args.asr_only or args.speech_only)):
        resume = ResumeOptions(streams=3, sentences=8, detached=20) if args.quick else ResumeOptions()
        results["resume"] = run_resume(resume, work_dir / "resume", log)
    if not args.skip_scale and (args.scale_only or not (args.asr_only or args.speech_only)):
        scale_cloud = CloudOptions(
            seconds=args.seconds or (6.0 if args.quick else 12.0),
            behind_bound_ms=args.behind_ms,
            ttft_ms=args.ttft_ms,
            tokens_per_s=args.tokens_per_s,
        )
        scale = (
            ScaleOptions(streams=args.scale_streams or (20,), balancer_streams=20, metrics_streams=20)
            if args.quick
            else ScaleOptions(streams=args.scale_streams or ScaleOptions.streams)
        )
        results["scale"] = run_scale(scale_cloud, scale, work_dir / "scale", log)
    web_streams = args.web_streams if args.web_streams is not None else (10 if args.quick else 50)
    if web_streams and (
        args.web_only
        or not (args.asr_only or args.speech_only or args.resume_only or args.scale_only or args.expenses_only)
    ):
        web_cloud = CloudOptions(
            seconds=args.seconds or (6.0 if args.quick else 20.0), behind_bound_ms=args.behind_ms, ttft_ms=args.ttft_ms
        )
        results["web"] = run_web(web_cloud, web_streams, work_dir / "web", log)
    if not args.skip_expenses:
        receipts = ExpensesOptions(args.receipts or (6 if args.quick else 40), args.receipt_engine)
        results["expenses"] = run_expenses(receipts, log)
    if not args.skip_echo:
        echo = EchoOptions(simultaneous=not args.skip_echo_simultaneous)
        if args.quick:
            echo = replace(echo, sentences=3)
        results["echo"] = run_echo(echo, work_dir / "echo", log)
    results["targets"] = targets(results) + echo_targets(results.get("echo"))
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(results, args.out)
    render(results)
    if "web" in results:
        print(render_web(results["web"]))
    if "expenses" in results:
        print("\n".join(render_expenses(results["expenses"])))
    if "echo" in results:
        print(render_echo(results["echo"]))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
