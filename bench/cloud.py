"""The cloud-engine sweep: Tongyeok with the Google and OpenAI engines on the fakes, against the direct path.

For each N: the same N streams of the fake's word audio are sent (1) straight
to the fake recogniser, then (2) through a freshly started ``tongyeok-server``
(``--recognizer google --translator openai``), each by load-generator
processes. Events are matched by (stream, kind, audio end offset) across the
two runs; the difference is what Tongyeok adds.

Both phases also record where the machine's CPU went in their steady window
(server, fake recogniser, fake OpenAI, load generators, the bench itself and
the rest of the box), so a missed target can be told apart from a full box.
``direct_only`` runs only phase (1): the ceiling of the fakes and load
generators on this machine.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import stats
from bench.measure import CpuSampler, Sampler, run_loadgen
from bench.procs import LOOPBACK, Child, Children, free_port, python, server_command, wait_for_grpc, wait_for_tcp
from bench.profile import profile_process
from tests.support import fake_speech
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

SOURCES = ["en-US"]
TARGETS = ["ko"]


@dataclass(frozen=True)
class CloudOptions:
    """How the sweep runs."""

    streams: tuple[int, ...] = (10, 100, 200, 500)
    seconds: float = 20.0
    chunk_ms: int = 100
    behind_bound_ms: float = 200.0
    speech_latency_ms: float = 0.0
    ttft_ms: float = 100.0
    tokens_per_s: float = 50.0
    streams_per_loadgen: int = 250
    profile_at: int | None = None  # py-spy the server at this N
    server_processes: int = 1  # tongyeok-server --processes
    profile_s: float = 8.0
    direct_only: bool = False  # only the direct path (no server): what the fakes and load generators manage
    secure_at: tuple[int, ...] = ()  # at these N, also through a server with TLS and an API key on every call
    store: str = "none"  # tongyeok-server --store (the meeting record; bench/record.py compares backends)
    extra_args: tuple[str, ...] = ()  # more tongyeok-server flags (bench/scale.py: --metrics-port)
    # A checkout of an earlier commit: its server runs each N right after this one's, so before and after
    # are compared in one run on the same (shared, noisy) machine (bench/report_engines.py).
    baseline: str = ""


@dataclass(frozen=True)
class Fakes:
    """The fake recogniser and fake OpenAI, running."""

    speech: Child
    openai: Child
    speech_port: int
    openai_port: int

    @property
    def speech_address(self) -> str:
        return f"{LOOPBACK}:{self.speech_port}"

    @property
    def pids(self) -> dict[str, int]:
        return {"fake_speech": self.speech.pid, "fake_openai": self.openai.pid}


def start_fakes(children: Children, options: CloudOptions, work_dir: Path) -> Fakes:
    """Start both fakes in processes of their own and wait until they answer."""
    speech_port, openai_port = free_port(), free_port()
    fake = children.start(
        "fake-speech",
        [
            python(), "-m", "tests.support.fake_speech", "--port", str(speech_port),
            "--latency-ms", str(options.speech_latency_ms),
        ],
        work_dir,
    )  # fmt: skip
    openai = children.start(
        "fake-openai",
        [
            python(), "-m", "tests.support.fake_openai", "--port", str(openai_port),
            "--ttft-ms", str(options.ttft_ms), "--tokens-per-s", str(options.tokens_per_s),
        ],
        work_dir,
    )  # fmt: skip
    wait_for_grpc(fake, f"{LOOPBACK}:{speech_port}", 30)
    wait_for_tcp(openai, openai_port, 30)
    return Fakes(fake, openai, speech_port, openai_port)


def through_server(children: Children, options: CloudOptions, n: int, fakes: Fakes, work_dir: Path) -> dict[str, Any]:
    """Start a server on ``fakes``, run the N-stream phase through it, stop it (it writes its record out)."""
    with serving(children, options, n, fakes, work_dir) as (server, address):
        return phase(children, options, n, "tongyeok", address, work_dir, server, fakes.pids)


@contextlib.contextmanager
def serving(
    children: Children, options: CloudOptions, n: int, fakes: Fakes, work_dir: Path
) -> Iterator[tuple[Child, str]]:
    """A server on ``fakes``, warmed up, for one or more phases; yields it and its address; stops it."""
    port = free_port()
    server = _start_server(children, options, n, port, fakes.speech_port, fakes.openai_port, work_dir)
    try:
        yield server, f"{LOOPBACK}:{port}"
    finally:
        children.stop(server, grace_s=15)


def run_cloud(options: CloudOptions, work_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the sweep; returns the JSON-able results (one entry per N)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"options": options.__dict__ | {"streams": list(options.streams)}, "runs": []}
    with Children() as children:
        started = start_fakes(children, options, work_dir)
        fake, openai, speech_address = started.speech, started.openai, started.speech_address
        speech_port, openai_port, fakes = started.speech_port, started.openai_port, started.pids
        for n in options.streams:
            log(f"cloud: {n} streams, direct path (the floor) ...")
            direct = phase(children, options, n, "direct", speech_address, work_dir, None, fakes)
            through: dict[str, Any] | None = None
            if not options.direct_only:
                log(f"cloud: {n} streams through tongyeok-server ...")
                server_port = free_port()
                server = _start_server(children, options, n, server_port, speech_port, openai_port, work_dir)
                try:
                    through = phase(
                        children, options, n, "tongyeok", f"{LOOPBACK}:{server_port}", work_dir, server, fakes
                    )
                finally:
                    children.stop(server, grace_s=5)
            run = analyse(options, n, direct, through)
            if options.baseline and not options.direct_only:
                log(f"cloud: {n} streams through the baseline's tongyeok-server ({options.baseline}) ...")
                env = baseline_env(options.baseline)
                server_port = free_port()
                server = _start_server(children, options, n, server_port, speech_port, openai_port, work_dir, env=env)
                try:
                    before = phase(
                        children, options, n, "baseline", f"{LOOPBACK}:{server_port}", work_dir, server, fakes
                    )
                finally:
                    children.stop(server, grace_s=5)
                run["baseline"] = analyse(options, n, direct, before)
            if n in options.secure_at and not options.direct_only:
                log(f"cloud: {n} streams through tongyeok-server with TLS and API keys ...")
                security = _security_material(work_dir / "security")
                server_port = free_port()
                server = _start_server(children, options, n, server_port, speech_port, openai_port, work_dir, security)
                try:
                    secure = phase(
                        children, options, n, "tongyeok", f"{LOOPBACK}:{server_port}", work_dir, server, fakes, security
                    )
                finally:
                    children.stop(server, grace_s=5)
                run["secure"] = analyse(options, n, direct, secure)
            results["runs"].append(run)
        for child in (openai, fake):
            children.stop(child)
    return results


def _security_material(directory: Path) -> dict[str, str]:
    """A CA, a server certificate and an API key (with its keys file), as a deployment would have them."""
    from tests.support.certs import TestCA
    from tongyeok_server.auth.api_keys import hash_key, new_key

    ca = TestCA(directory, "bench-ca")
    cert = ca.issue("server")
    key = new_key()
    keys = directory / "keys.txt"
    keys.write_text(f"bench {hash_key(key)} interpret,translate streams=0 per_minute=0 hours_per_day=0\n")
    return {"ca": str(ca.cert), "cert": str(cert.cert), "key": str(cert.key), "api_keys": str(keys), "token": key}


def _start_server(
    children: Children,
    options: CloudOptions,
    n: int,
    port: int,
    speech_port: int,
    openai_port: int,
    work_dir: Path,
    security: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Child:
    argv = [
        server_command(),
        "--host", LOOPBACK, "--port", str(port),
        "--recognizer", "google", "--google-endpoint", f"{LOOPBACK}:{speech_port}", "--google-insecure",
        "--translator", "openai", "--openai-base-url", f"http://{LOOPBACK}:{openai_port}/v1",
        "--max-streams", str(max(1000, n + 50)), "--processes", str(options.server_processes), "--log-level", "WARNING",
        "--store", options.store, "--data-dir", str(work_dir / f"data-{n}"),
    ]  # fmt: skip
    if security is not None:
        argv += ["--tls-cert", security["cert"], "--tls-key", security["key"], "--api-keys", security["api_keys"]]
    argv += list(options.extra_args)
    name = f"server-{n}" + ("-secure" if security else "") + ("-baseline" if env else "")
    server = children.start(name, argv, work_dir, env={"OPENAI_API_KEY": "bench-not-a-secret", **(env or {})})
    wait_for_grpc(server, f"{LOOPBACK}:{port}", 60, ca=security["ca"] if security else None)
    _warm_up(f"{LOOPBACK}:{port}", security)
    return server


def baseline_env(tree: str) -> dict[str, str]:
    """The environment that makes ``tongyeok-server`` run the code of the checkout ``tree``.

    ``PYTHONPATH`` entries come before the editable install's finder, so the
    same virtual environment serves the baseline's packages.
    """
    root = Path(tree).resolve()
    if not (root / "server" / "tongyeok_server").is_dir():
        raise SystemExit(f"--baseline {tree}: not a Tongyeok checkout (no server/tongyeok_server)")
    return {"PYTHONPATH": f"{root / 'server'}:{root / 'client'}"}


def _warm_up(address: str, security: dict[str, str] | None = None) -> None:
    """One short stream (recognition and a translation), so lazy imports and first connections are not counted."""
    audio = fake_speech.synthesize([[1, 2, 3]])
    requests = [
        pb.InterpretRequest(
            config=pb.InterpretConfig(
                audio_format=pb.AudioFormat(
                    encoding=pb.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000, channel_count=1
                ),
                source_language_codes=SOURCES,
                target_language_codes=TARGETS,
                interim_results=True,
                store_transcript=False,  # the record's rows are the measured streams' alone
            )
        ),
        *(pb.InterpretRequest(audio=audio[i : i + 3200]) for i in range(0, len(audio), 3200)),
    ]
    if security is None:
        channel = grpc.insecure_channel(address)
        metadata = None
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(Path(security["ca"]).read_bytes()))
        metadata = [("authorization", f"Bearer {security['token']}")]
    with channel:
        for _ in pb_grpc.InterpreterStub(channel).Interpret(  # type: ignore[no-untyped-call]
            iter(requests), timeout=30, metadata=metadata
        ):
            pass


def phase(
    children: Children,
    options: CloudOptions,
    n: int,
    target: str,
    address: str,
    work_dir: Path,
    server: Child | None,
    fakes: dict[str, int],
    security: dict[str, str] | None = None,
) -> dict[str, Any]:
    sampler = Sampler(server.pid).start() if server is not None else None
    cpu = CpuSampler()
    for role, pid in fakes.items():
        cpu.watch(role, pid, tree=False)  # no children: spare the bench a scan of /proc per reading
    if server is not None:
        cpu.watch("server", server.pid)
    cpu.watch("bench", os.getpid(), tree=False)  # this process: sampling, waiting, profiling
    cpu.start()
    idle = sampler.read() if sampler is not None else None
    # Streams open over a ramp (a burst of 500 opens at once is not what a service sees).
    ramp_s = min(3.0, 0.01 * n + 0.2)
    start_at = time.monotonic() + 3.0  # the load generators import grpc and google-cloud-speech first
    spec = {
        "target": target,
        "address": address,
        "streams": n,
        "start_at": start_at,
        "ramp_s": ramp_s,
        "chunk_ms": options.chunk_ms,
        "paced": True,
        "audio": {"kind": "words", "seconds": options.seconds},
        "sources": SOURCES,
        "targets": TARGETS,
        "interim": True,
        "streams_per_channel": 50,
        "timeout_s": options.seconds + 60,
        "drain_timeout_s": 20.0,
    }
    if security is not None:
        spec |= {"tls_ca": security["ca"], "token": security["token"]}
    # The steady window: every stream open, none finished yet.
    margin = min(1.0, options.seconds * 0.2)  # short runs (the smoke test) still get a window
    window = (start_at + ramp_s + margin, start_at + options.seconds - 1.5 * margin)
    profile: dict[str, Any] | None = None
    profiler: threading.Thread | None = None
    if server is not None and options.profile_at == n:

        def run_profile() -> None:
            nonlocal profile
            time.sleep(max(0.0, window[0] - time.monotonic()))
            profile = profile_process(
                server.pid, min(options.profile_s, window[1] - window[0]), work_dir / f"profile-{n}"
            )

        profiler = threading.Thread(target=run_profile, name="bench-profile", daemon=True)
        profiler.start()
    processes = math.ceil(n / options.streams_per_loadgen)
    try:
        streams, loadgen_cpu = run_loadgen(
            children, spec, processes, work_dir, f"loadgen-{target}-{n}", options.seconds + 120, cpu
        )
    finally:
        cpu.stop()
        if sampler is not None:
            sampler.stop()
        if profiler is not None:
            profiler.join(options.profile_s + 30)
    cpu_window = cpu.window(*window)
    out: dict[str, Any] = {
        "streams": streams,
        "loadgen_cpu_s": loadgen_cpu,
        "loadgen_processes": processes,
        "machine_busy": None if cpu_window is None else cpu_window["machine"] / cpu_window["cores"],
        "cpu": cpu_window,
        "window_s": window[1] - window[0],
        "profile": profile,
    }
    if sampler is not None:
        out["server_idle"] = None if idle is None else {"rss": idle.rss, "threads": idle.threads}
        out["server_window"] = sampler.window(*window)
    return out


def analyse(options: CloudOptions, n: int, direct: dict[str, Any], through: dict[str, Any] | None) -> dict[str, Any]:
    """Figures for one N from the two phases' raw results (``through`` is ``None`` in a direct-only run)."""
    floor: dict[tuple[int, str, int], float] = {}
    for stream in direct["streams"]:
        for kind, offset, latency in stream["events"]:
            floor[(stream["index"], kind, offset)] = latency
    added: dict[str, list[float]] = {"interim": [], "final": []}
    absolute: dict[str, list[float]] = {"interim": [], "final": []}
    floor_abs: dict[str, list[float]] = {"interim": [], "final": []}
    for (_, kind, _), latency in floor.items():
        floor_abs[kind].append(latency)
    unpaired = 0
    through_streams = [] if through is None else through["streams"]
    for stream in through_streams:
        for kind, offset, latency in stream["events"]:
            absolute[kind].append(latency)
            base = floor.get((stream["index"], kind, offset))
            if base is None:
                unpaired += 1
            else:
                added[kind].append(latency - base)
    token = [ms - options.ttft_ms for s in through_streams for ms in s["first_token_ms"]]
    expected_finals = max((len(s["finals"]) for s in direct["streams"]), default=0)

    def result_delay_ms(stream: dict[str, Any]) -> float:
        """The stream's worst result delay: a transcript after the chunk that completes it, beyond the
        fake's own latency, or a first translation token after its final, beyond the fake's TTFT."""
        transcripts = [latency - options.speech_latency_ms for _, _, latency in stream["events"]]
        tokens = [ms - options.ttft_ms for ms in stream["first_token_ms"]]
        return max(transcripts + tokens, default=0.0)

    def pace(streams: list[dict[str, Any]]) -> dict[str, Any]:
        # Keeping pace is both ways: audio sent on schedule, and results coming back on
        # schedule. A server that takes every chunk on time but answers seconds later
        # (its loop saturated, queues growing) has fallen behind just the same.
        lateness = [v for s in streams for v in s["lateness_ms"]]
        delays = [result_delay_ms(s) for s in streams]
        behind = [
            s["index"]
            for s, delay in zip(streams, delays, strict=True)
            if s["status"] != "OK"
            or (max(s["lateness_ms"], default=0.0) > options.behind_bound_ms)
            or delay > options.behind_bound_ms
            or len(s["finals"]) < expected_finals
        ]
        return {
            "lateness_ms": stats.summary(lateness),
            "worst_result_delay_ms": stats.summary(delays),
            "streams_behind": len(behind),
            "statuses": sorted({s["status"] for s in streams}),
            "kept_pace": not behind,
        }

    through = through or {}
    server_window = through.get("server_window") or {}
    idle = through.get("server_idle") or {}
    cpu_cores = server_window.get("cpu_cores")
    rss_peak = server_window.get("rss_peak")
    return {
        "streams": n,
        "direct_only": not through,
        "added_ms": {kind: stats.summary(v) for kind, v in added.items()},
        "tongyeok_ms": {kind: stats.summary(v) for kind, v in absolute.items()},
        "direct_ms": {kind: stats.summary(v) for kind, v in floor_abs.items()},
        "first_token_added_ms": stats.summary(token),
        "unpaired_events": unpaired,
        "finals_expected_per_stream": expected_finals,
        "finals_received": sum(len(s["finals"]) for s in through_streams),
        "translations_complete": sum(s["translations_complete"] for s in through_streams),
        "pace": pace(through_streams) if through else None,
        "direct_pace": pace(direct["streams"]),
        "server_cpu_cores": cpu_cores,
        "server_cpu_ms_per_stream_s": None if cpu_cores is None else round(cpu_cores * 1000 / n, 3),
        "server_rss_idle_mb": None if not idle else round(idle["rss"] / 2**20, 1),
        "server_rss_mb": None if rss_peak is None else round(rss_peak / 2**20, 1),
        "server_rss_per_stream_mb": None
        if rss_peak is None or not idle
        else round((rss_peak - idle["rss"]) / 2**20 / n, 3),
        "server_threads": server_window.get("threads_peak"),
        "server_threads_idle": idle.get("threads"),
        "machine_busy_tongyeok": through.get("machine_busy"),
        "machine_busy_direct": direct["machine_busy"],
        "loadgen_cpu_s": {"direct": direct["loadgen_cpu_s"], "tongyeok": through.get("loadgen_cpu_s")},
        "loadgen_processes": direct["loadgen_processes"],
        "fake_speech_cpu_cores": {
            "direct": _role(direct, "fake_speech"),
            "tongyeok": _role(through, "fake_speech"),
        },
        # Where the machine's CPU went in each phase's steady window (cores, and ms per stream-second).
        "cpu": {"direct": _cpu_split(direct, n), "tongyeok": _cpu_split(through, n) if through else None},
        "profile": through.get("profile"),
    }


ROLES = ("server", "fake_speech", "fake_openai", "loadgen", "bench")


def _role(phase: dict[str, Any], role: str) -> float | None:
    window = phase.get("cpu") or {}
    value = (window.get("roles") or {}).get(role)
    return None if value is None else float(value)


def _cpu_split(phase: dict[str, Any], n: int) -> dict[str, Any] | None:
    """Cores per role in a phase's steady window, the rest of the machine (``other``), and ms per stream-second."""
    window = phase.get("cpu")
    if not window:
        return None
    cores: dict[str, float | None] = {role: _role(phase, role) for role in ROLES}
    cores["other"] = window["other"]
    cores["machine"] = window["machine"]
    return {
        "cores": {k: None if v is None else round(v, 3) for k, v in cores.items()},
        "ms_per_stream_s": {k: None if v is None else round(v * 1000 / n, 3) for k, v in cores.items()},
        "machine_cores": window["cores"],
        "window_s": round(window["seconds"], 2),
    }
