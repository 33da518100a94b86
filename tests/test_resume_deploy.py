"""Wherever a reconnect lands, the session resumes: another process, another replica behind nginx, a drain.

Over gRPC and over the web gateway's WebSocket (with API keys on: the relay
vouches for a caller whose ticket cannot be passed on).

Servers run as ``tongyeok-server`` processes (as deployed), with the fake
Speech-to-Text in this process, and the balancer is a real nginx with the
configuration in deploy/nginx (``tests/support/nginx.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psutil
import pytest
from google.protobuf import json_format

from tests.support import fake_speech
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech
from tests.support.nginx import free_port, nginx_in_front_of
from tests.support.tcp_proxy import proxy_to
from tests.support.waiting import wait_until
from tests.test_resume import CHUNK, Meeting, chunks_of, resumable_config, sentence, words
from tongyeok_client import FinalTranscript, SessionResumed
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.auth.api_keys import hash_key, new_key


class Server:
    """``tongyeok-server`` in a process of its own, its log in a file."""

    def __init__(self, log: Path, port: int, *flags: str, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tongyeok_server", "--host", "127.0.0.1", "--port", str(port), *flags],
            stderr=self._file,
            env={**os.environ, **(env or {})},
        )

    def listening(self, processes: int = 1) -> bool:
        owners = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children()]
        count = 0
        for proc in owners:
            with contextlib.suppress(psutil.Error):
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in proc.net_connections()):
                    count += 1
        return count >= processes

    def text(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


def engine_flags(speech: FakeSpeech, translator: str = "apertium", openai: FakeOpenAI | None = None) -> list[str]:
    flags = [
        "--recognizer", "google", "--google-endpoint", speech.address, "--google-insecure",
        "--google-project", "test-project", "--translator", translator, "--resume-window", "60",
        "--grace-period", "8", "--offline-workers", "1",
    ]  # fmt: skip
    if openai is not None:
        flags += ["--openai-base-url", openai.base_url]
    return flags


# A connection of its own for every call: gRPC would otherwise reuse an open connection to the same
# address, so every resume would land on the process (or replica) the last call went to.
FRESH_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def resume_and_take(address: str, token: str, last: int, audio: bytes, *, end: bool, affinity: str = "") -> list[Any]:
    """One resumed stream on a fresh connection: resume, resend from where asked, read; cancel unless ``end``."""
    resend: list[int] = []
    answered = threading.Event()
    stop = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=token, last_sequence_number=last))
        if not answered.wait(30):
            return
        # Resent from the last final's end (0.5 s into a 0.8 s pause): 2.4 s hold the next sentence and the
        # fake's 0.5 s endpoint, so its final comes from the audio, not from the 2 s idle rule, whose wall
        # clock a busy machine stretches mid-sentence (a sentence split in two), and not the one after it.
        part = audio[resend[0] :] if end else audio[resend[0] : resend[0] + 24 * CHUNK]
        yield from (pb.InterpretRequest(audio=c) for c in chunks_of(part))
        if end:
            yield pb.InterpretRequest(end=pb.EndOfAudio())
        else:
            stop.wait(30)

    metadata = [("x-tongyeok-affinity", affinity)] if affinity else None
    responses: list[Any] = []
    with grpc.insecure_channel(address, options=FRESH_CONNECTION) as channel:
        call = pb_grpc.InterpreterStub(channel).Interpret(requests(), timeout=60, metadata=metadata)  # type: ignore[no-untyped-call]
        finals = 0
        for response in call:
            responses.append(response)
            kind = response.WhichOneof("event")
            if kind == "session_resumed":
                resend.append(response.session_resumed.resend_from_byte)
                answered.set()
            if kind == "final_transcript":
                finals += 1
                if not end and finals >= 1:
                    break
        call.cancel()
        stop.set()
    return responses


def start_session(address: str, audio: bytes) -> tuple[str, list[Any]]:
    """Open a resumable session, send the first sentences, break it after the first final."""
    stop = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield resumable_config()
        yield from (pb.InterpretRequest(audio=c) for c in chunks_of(audio[: 40 * CHUNK]))
        stop.wait(30)

    responses = []
    with grpc.insecure_channel(address, options=FRESH_CONNECTION) as channel:
        call = pb_grpc.InterpreterStub(channel).Interpret(requests(), timeout=60)  # type: ignore[no-untyped-call]
        for response in call:
            responses.append(response)
            if response.WhichOneof("event") == "final_transcript":
                break
        call.cancel()
        stop.set()
    return responses[0].session_started.resume_token, responses


def check_whole(responses: list[Any], utterances: list[list[int]]) -> None:
    numbered = [r for r in responses if r.sequence_number]
    numbers = [r.sequence_number for r in numbered]
    assert numbers == list(range(1, len(numbers) + 1)), numbers  # each event once, in order
    finals = [r.final_transcript for r in numbered if r.WhichOneof("event") == "final_transcript"]
    assert [f.text for f in finals] == [words(u) for u in utterances]
    assert [f.utterance_id for f in finals] == list(range(1, len(utterances) + 1))


def meeting_until_a_resume_is_relayed(address: str, servers: list[Server]) -> None:
    """A meeting broken after each final until a resume is relayed to the session's owner, then ended: whole.

    Each attempt has a connection and an affinity of its own; one that lands
    on the owner uses up a sentence, so with 16 a relay is missed 1 in 65536.
    """
    utterances = [sentence(i) for i in range(16)]
    audio = fake_speech.synthesize(utterances)
    token, responses = start_session(address, audio)

    def relayed() -> bool:
        return any("relaying the resume there" in s.text() for s in servers)

    for attempt in range(20):
        last = max(r.sequence_number for r in responses)
        responses += resume_and_take(address, token, last, audio, end=False, affinity=f"phone-{attempt}")
        if relayed():
            break
    assert relayed(), "\n".join(s.text() for s in servers)
    last = max(r.sequence_number for r in responses)
    responses += resume_and_take(address, token, last, audio, end=True)
    check_whole(responses, utterances)


def test_a_resume_landing_on_another_process_is_relayed_to_the_one_that_holds_the_session(
    speech_fake, tmp_path
) -> None:
    port = free_port()
    server = Server(tmp_path / "server.log", port, "--processes", "2", *engine_flags(speech_fake))
    try:
        assert wait_until(lambda: server.listening(2), 90), server.text()
        # New connections land on either process (SO_REUSEPORT).
        meeting_until_a_resume_is_relayed(f"127.0.0.1:{port}", [server])
    finally:
        server.stop()


class WebCaller:
    """A program on the web gateway: a fresh ticket for each socket, frames as ``InterpretResponse``s."""

    def __init__(self, http: aiohttp.ClientSession, port: int, key: str) -> None:
        self._http = http
        self._base = f"http://127.0.0.1:{port}"
        self._key = key
        self.responses: list[pb.InterpretResponse] = []

    async def open(self, first: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:
        async with self._http.post(f"{self._base}/v1/tickets", headers={"Authorization": f"Bearer {self._key}"}) as r:
            ticket = (await r.json())["ticket"]
        ws = await self._http.ws_connect(f"{self._base}/v1/interpret", params={"ticket": ticket})
        await ws.send_str(json.dumps(first))
        return ws

    async def read_until(self, ws: aiohttp.ClientWebSocketResponse, kind: str) -> pb.InterpretResponse | None:
        """The next event of ``kind`` (None when the socket closes first)."""
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                assert "error" not in data, data
                response = json_format.ParseDict(data, pb.InterpretResponse())
                self.responses.append(response)
                if response.WhichOneof("event") == kind:
                    return response
        return None


async def web_meeting_until_a_resume_is_relayed(port: int, key: str, server: Server) -> list[Any]:
    """``meeting_until_a_resume_is_relayed`` over WebSockets: each break is a socket closed without ``end``."""
    utterances = [sentence(i) for i in range(16)]
    audio = fake_speech.synthesize(utterances)
    config = json.loads(json_format.MessageToJson(resumable_config()))
    async with aiohttp.ClientSession() as http:
        caller = WebCaller(http, port, key)
        ws = await caller.open(config)
        started = await caller.read_until(ws, "session_started")
        assert started is not None
        for chunk in chunks_of(audio[: 40 * CHUNK]):
            await ws.send_bytes(chunk)
        assert await caller.read_until(ws, "final_transcript") is not None
        await ws.close()  # no `end`: a broken stream, the session waits for a resume

        async def resumed_socket() -> tuple[aiohttp.ClientWebSocketResponse, int]:
            last = max(r.sequence_number for r in caller.responses)
            token = started.session_started.resume_token
            ws = await caller.open({"resume": {"resumeToken": token, "lastSequenceNumber": str(last)}})
            answer = await caller.read_until(ws, "session_resumed")
            assert answer is not None, "the resume was refused"
            return ws, answer.session_resumed.resend_from_byte

        for _ in range(20):
            ws, resend = await resumed_socket()
            for chunk in chunks_of(audio[resend : resend + 20 * CHUNK]):
                await ws.send_bytes(chunk)
            assert await caller.read_until(ws, "final_transcript") is not None
            await ws.close()
            if "relaying the resume there" in server.text():
                break
        assert "relaying the resume there" in server.text(), server.text()
        ws, resend = await resumed_socket()
        rest = audio[resend:]
        for i in range(0, len(rest), 10 * CHUNK):  # a second a frame: well under the gateway's 200 frames/s
            await ws.send_bytes(rest[i : i + 10 * CHUNK])
        await ws.send_str('{"end": {}}')
        assert await caller.read_until(ws, "no such event") is None
        assert ws.close_code == 1000, ws.close_code
    check_whole(caller.responses, utterances)
    return caller.responses


def test_a_websocket_resume_landing_on_another_process_is_relayed_with_api_keys_on(speech_fake, tmp_path) -> None:
    # The socket's caller proved itself with a single-use ticket, which cannot go along to the session's
    # process: the process it landed on vouches for it under the supervisor's shared secret.
    key = new_key()
    keys = tmp_path / "keys"
    keys.write_text(f"traveller {hash_key(key)} interpret\n")
    port, web_port = free_port(), free_port()
    flags = ["--processes", "2", "--web-port", str(web_port), "--api-keys", str(keys), *engine_flags(speech_fake)]
    server = Server(tmp_path / "server.log", port, *flags)
    try:
        assert wait_until(lambda: server.listening(2), 90), server.text()
        asyncio.run(web_meeting_until_a_resume_is_relayed(web_port, key, server))
    finally:
        server.stop()
    assert "Traceback" not in server.text() and "refused" not in server.text(), server.text()


@pytest.fixture
def replicas(speech_fake, tmp_path) -> Iterator[tuple[list[Server], int]]:
    secret = tmp_path / "resume-secret"
    secret.write_text("c2hhcmVkIGJ5IGV2ZXJ5IHJlcGxpY2Egb2YgdGhpcyB0ZXN0IGRlcGxveW1lbnQ=")  # 47 bytes, base64
    ports = [free_port(), free_port()]
    servers = [
        Server(
            tmp_path / f"replica-{i}.log",
            port,
            *engine_flags(speech_fake),
            "--advertise-address",
            f"127.0.0.1:{port}",
            "--resume-secret",
            str(secret),
        )
        for i, port in enumerate(ports)
    ]
    try:
        for s in servers:
            assert wait_until(s.listening, 90), s.text()
        with nginx_in_front_of(ports) as nginx_port:
            yield servers, nginx_port
    finally:
        for s in servers:
            s.stop()


def test_a_resume_landing_on_another_replica_behind_nginx_is_relayed(replicas) -> None:
    servers, nginx_port = replicas
    # Each resume with its own affinity hashes anywhere.
    meeting_until_a_resume_is_relayed(f"127.0.0.1:{nginx_port}", servers)


def test_a_replica_drained_mid_meeting_hands_the_session_to_the_other(speech_fake, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-drain-key")
    secret = tmp_path / "resume-secret"
    secret.write_bytes(os.urandom(32))
    with FakeOpenAI() as openai:
        ports = [free_port(), free_port()]
        servers = [
            Server(
                tmp_path / f"replica-{i}.log",
                port,
                *engine_flags(speech_fake, "openai", openai),
                "--advertise-address",
                f"127.0.0.1:{port}",
                "--resume-secret",
                str(secret),
                env={"OPENAI_API_KEY": "sk-test-drain-key"},
            )
            for i, port in enumerate(ports)
        ]
        try:
            for s in servers:
                assert wait_until(s.listening, 90), s.text()
            with nginx_in_front_of(ports) as nginx_port, proxy_to(nginx_port) as proxy:
                utterances = [sentence(i) for i in range(10)]
                meeting = Meeting(f"127.0.0.1:{proxy.port}", utterances, speed=2.0).start()
                assert wait_until(lambda: len(meeting.of(FinalTranscript)) >= 3, 60)
                session_id = meeting.events[0].session_id
                (owner,) = [s for s in servers if f"session {session_id} start" in s.text()]
                other = next(s for s in servers if s is not owner)
                owner.process.send_signal(signal.SIGTERM)  # a rolling update takes this replica down
                meeting.wait(120)
                assert owner.process.wait(30) == 0
        finally:
            for s in servers:
                s.stop()
    meeting.check_nothing_lost()
    (resumed,) = meeting.of(SessionResumed)
    assert resumed.moved
    assert f"session {session_id} continues here" in other.text()
    # Context went along: the first sentence translated on the other replica was sent with the one before it.
    finals = meeting.of(FinalTranscript)
    moved_at_s = resumed.resend_from_byte / 32000  # 16 kHz, 2 bytes a sample
    k = len([f for f in finals if f.audio_end_s <= moved_at_s + 0.01])
    assert 0 < k < len(utterances)
    first_there = next(r for r in openai.requests if r.sentence == words(utterances[k]) and r.outcome == "completed")
    user = first_there.body["messages"][-1]["content"]
    assert "<context>" in user and words(utterances[k - 1]) in user
