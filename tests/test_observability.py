"""Operating the server: traces, JSON logs, metrics of several processes, the health port, --processes auto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import running_server, stub_for
from tests.support import fake_speech, server_loop
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech, word_for_id
from tests.support.metrics import Samples, free_port, scrape
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.app import TongyeokServer
from tongyeok_server.errors import StartError
from tongyeok_server.observability import logs
from tongyeok_server.observability.exporter import MultiprocessDirectory
from tongyeok_server.settings import (
    Settings,
    SettingsError,
    from_args,
    load_secret_files,
    usable_cores,
)

UTTERANCES = [[1, 2, 3, 4], [5, 6, 7]]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSpeech, FakeOpenAI]]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-observability")
    with FakeSpeech() as speech, FakeOpenAI() as openai:
        yield speech, openai


def cloud(speech: FakeSpeech, openai: FakeOpenAI) -> dict[str, Any]:
    return {
        "recognizer": "google",
        "google_endpoint": speech.address,
        "google_insecure": True,
        "google_project": "test-project",
        "translator": "openai",
        "openai_base_url": openai.base_url,
    }


def interpret(stub: pb_grpc.InterpreterStub, utterances: list[list[int]] = UTTERANCES) -> list[tuple[str, Any]]:
    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(sources=("en-US",), targets=("ko",), interim=True)
        yield from audio_requests(fake_speech.synthesize(utterances), 3200)

    return events_of(stub.Interpret(requests(), timeout=30))


# -- tracing -------------------------------------------------------------------------


def test_traces_an_rpc_its_recogniser_stream_and_each_translation(fakes) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = {"host": "127.0.0.1", "port": 0, "grace_period_s": 2.0, **cloud(*fakes)}
    with running_server(**settings) as plain:
        assert plain.observability.tracing is None  # off unless asked for
    server = server_loop.start(TongyeokServer(Settings.of(**settings), tracer_provider=provider))
    try:
        channel, stub = stub_for(server)
        with channel:
            events = interpret(stub)
            health = health_pb2_grpc.HealthStub(channel)
            assert (
                health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                == health_pb2.HealthCheckResponse.SERVING
            )
    finally:
        server_loop.stop(server, 2.0)
    assert len(of_kind(events, "translation_complete")) == len(UTTERANCES)
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    (rpc,) = by_name["/tongyeok.v1.Interpreter/Interpret"]
    (recognize,) = by_name["recognize"]
    translations = by_name["translate"]
    assert not any("Health" in name for name in by_name), "health checks are not traced"
    assert recognize.parent is not None and recognize.parent.span_id == rpc.context.span_id
    assert len(translations) == len(UTTERANCES)
    for span in translations:
        assert span.parent is not None and span.parent.span_id == recognize.context.span_id
        assert span.context.trace_id == rpc.context.trace_id
        assert span.attributes["tongyeok.target_language"] == "ko"
        assert span.attributes["tongyeok.tokens"] > 0
        assert [e.name for e in span.events] == ["first_token"]
    session_id = of_kind(events, "session_started")[0].session_id
    assert recognize.attributes["tongyeok.session_id"] == session_id
    # Spans name engines and languages, never what was said.
    said = [" ".join(word_for_id(w)[0] for w in u) for u in UTTERANCES]
    for span in spans:
        for value in (span.attributes or {}).values():
            assert not any(text in str(value) for text in said)


# -- JSON logs -------------------------------------------------------------------------


def test_json_log_lines_carry_fields() -> None:
    import logging

    record = logging.LogRecord(
        "tongyeok_server.api.servicer", logging.INFO, __file__, 1, "session %s end", ("s1",), None
    )
    record.__dict__.update({"event": "session_end", "session_id": "s1", "caller_id": "key:crm", "finals": 3})
    line = json.loads(logs.json_formatter("1").format(record))
    assert line["message"] == "session s1 end" and line["level"] == "INFO"
    assert line["logger"] == "tongyeok_server.api.servicer" and line["process_index"] == 1
    assert line["event"] == "session_end" and line["finals"] == 3 and line["caller_id"] == "key:crm"
    assert line["time"].endswith("+00:00")
    with pytest.raises(StartError, match="text or json"):
        logs.configure("INFO", None, "xml")


# -- several processes: metrics summed, JSON logs, the health port --------------------


def test_processes_share_their_metrics_log_json_and_answer_probes(fakes, tmp_path: Path) -> None:
    speech, openai = fakes
    port, metrics_port, health_port = free_port(), free_port(), free_port()
    metrics_dir = tmp_path / "prom"
    argv = [
        sys.executable, "-m", "tongyeok_server", "--processes", "2", "--host", "127.0.0.1", "--port", str(port),
        "--metrics-port", str(metrics_port), "--health-port", str(health_port), "--log-format", "json",
        "--grace-period", "5", "--google-endpoint", speech.address, "--google-insecure", "--google-project", "p",
        "--recognizer", "google", "--translator", "openai", "--openai-base-url", openai.base_url,
    ]  # fmt: skip
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    supervisor = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert _eventually(lambda: _status(health, "liveness") == "SERVING", 60), "the health port answers"
            assert _status(health, "") == "SERVING" and _status(health, "tongyeok.v1.Interpreter") == "SERVING"
        probe = [str(Path(sys.executable).with_name("tongyeok-health")), "--address", f"127.0.0.1:{health_port}"]
        assert subprocess.run([*probe, "--service", "liveness"], timeout=30).returncode == 0
        refused = subprocess.run([*probe, "--service", "nope"], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr
        seen = []
        for _ in range(4):  # a channel each: the kernel spreads connections over the two processes
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                seen.append(interpret(pb_grpc.InterpreterStub(channel)))  # type: ignore[no-untyped-call]
        m = scrape(metrics_port)
        assert m.value("tongyeok_streams_started_total") == 4
        assert m.value("tongyeok_streams_ended_total", outcome="ok") == 4
        assert m.value("tongyeok_streams_open") == 0
        assert m.value("tongyeok_transcripts_total", kind="final") == sum(
            len(of_kind(e, "final_transcript")) for e in seen
        )
        assert m.value("tongyeok_translations_total") == 4 * len(UTTERANCES)
        assert list(metrics_dir.glob("*.db")), "the processes write their values where the supervisor reads them"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    stderr = supervisor.stderr.read() if supervisor.stderr else ""
    assert not list(metrics_dir.glob("*.db")), "the supervisor clears the files at exit"
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert lines and all(line.startswith("{") for line in stderr.splitlines() if line.strip() and "chttp2" not in line)
    ends = [line for line in lines if line.get("event") == "session_end"]
    starts = [line for line in lines if line.get("event") == "session_start"]
    assert len(ends) == 4 and len(starts) == 4
    assert {line["session_id"] for line in ends} == {of_kind(e, "session_started")[0].session_id for e in seen}
    for line in ends:
        assert line["outcome"] == "ok" and line["caller_id"] == "anonymous" and line["finals"] == len(UTTERANCES)
        assert line["process_index"] in (0, 1) and line["audio_s"] > 0
    assert starts[0]["target_languages"] == ["ko"] and starts[0]["recognizer"] == "google"


def test_while_draining_readiness_is_off_and_liveness_on(fakes) -> None:
    speech, openai = fakes
    speech.finalise_delay_s = 2.0  # the sentence in progress takes its time: the drain lasts
    streams_before = len(speech.streams)
    health_port = free_port()
    server = TongyeokServer(
        Settings.of(
            host="127.0.0.1",
            port=0,
            grace_period_s=10.0,
            health_port=health_port,
            **cloud(speech, openai),
        )
    )
    server_loop.start(server)
    release = threading.Event()

    def held() -> Iterator[pb.InterpretRequest]:
        yield config(sources=("en-US",), targets=("ko",))
        words = fake_speech.synthesize([[1, 2, 3]])
        yield from audio_requests(words[: len(words) - 32000], 3200)  # no pause after it yet: no final
        release.wait(30)

    stopping = threading.Thread(target=server_loop.stop, args=(server,))
    with grpc.insecure_channel(f"127.0.0.1:{health_port}") as health_channel:
        health = health_pb2_grpc.HealthStub(health_channel)
        channel, stub = stub_for(server)
        with channel:
            call = stub.Interpret(held(), timeout=30)
            assert next(call).WhichOneof("event") == "session_started"
            assert _eventually(lambda: server.interpret.open_streams == 1, 10)
            # The sentence is in progress at the recogniser (audio sent after the drain begins is not taken).
            sent = len(fake_speech.synthesize([[1, 2, 3]])) - 32000
            assert _eventually(
                lambda: len(speech.streams) > streams_before and speech.streams[-1].audio_bytes >= sent, 10
            )
            stopping.start()
            assert _eventually(lambda: _status(health, "") == "NOT_SERVING", 5)
            assert _status(health, "tongyeok.v1.Interpreter") == "NOT_SERVING"
            assert _status(health, "liveness") == "SERVING", "a pod finishing its meetings is alive"
            with pytest.raises(grpc.RpcError) as ended:
                list(call)
            release.set()
    stopping.join(30)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_dead_process_stops_counting_as_open_but_its_totals_stay(tmp_path: Path) -> None:
    directory = MultiprocessDirectory({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")})
    script = (
        "import os\n"
        "from tongyeok_server.observability.metrics import Metrics\n"
        "m = Metrics(); m.streams_open.inc(); m.streams_started.labels('anonymous').inc()\n"
        "print(os.getpid())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory.path)}
    pids = [
        int(subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True).stdout)
        for _ in range(2)
    ]
    registry: CollectorRegistry = directory.registry()
    assert Samples(generate_latest(registry).decode()).value("tongyeok_streams_open") == 2
    directory.mark_dead(pids[0])
    m = Samples(generate_latest(registry).decode())
    assert m.value("tongyeok_streams_open") == 1
    assert m.value("tongyeok_streams_started_total") == 2
    directory.remove()
    assert not list(directory.path.glob("*.db"))


# -- --processes auto ------------------------------------------------------------------


def test_processes_auto_is_one_per_usable_core(tmp_path: Path) -> None:
    assert from_args(["--processes", "auto"]).server.processes == usable_cores()
    assert from_args([], {"TONGYEOK_PROCESSES": "auto"}).server.processes == usable_cores()
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # a Kubernetes limit of 1.5 CPUs: one process, never throttled
    assert usable_cores(str(cpu_max)) == 1
    cpu_max.write_text("max 100000\n")
    assert usable_cores(str(cpu_max)) == len(os.sched_getaffinity(0))
    with pytest.raises(SettingsError, match="--processes '0'"):
        from_args(["--processes", "0"])
    with pytest.raises(SettingsError, match="TONGYEOK_PROCESSES"):
        from_args([], {"TONGYEOK_PROCESSES": "many"})


def _status(health: Any, service: str) -> str:
    try:
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    except grpc.RpcError:
        return "unreachable"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def _eventually(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


# -- secrets mounted as files -------------------------------------------------------------


def test_a_secret_can_come_from_the_file_its_variable_names(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("sk-from-a-mounted-secret\n")
    env = {"OPENAI_API_KEY_FILE": str(key)}
    load_secret_files(env)
    assert env["OPENAI_API_KEY"] == "sk-from-a-mounted-secret"
    with pytest.raises(SettingsError, match="not both"):
        load_secret_files({"OPENAI_API_KEY_FILE": str(key), "OPENAI_API_KEY": "sk-other"})
    with pytest.raises(SettingsError, match="cannot read") as missing:
        load_secret_files({"PGPASSWORD_FILE": str(tmp_path / "nope")})
    assert "sk-" not in str(missing.value)
