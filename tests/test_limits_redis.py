"""Per-caller limits shared by two server processes through a real Redis, and Redis gone mid-meeting.

Redis is Debian's ``redis-server`` on loopback (``tests/support/redis.py``),
one for the module; the two servers are ``tongyeok-server`` processes on the
fake Speech-to-Text, with one keys file, one ``--limits-storage``, one
``--resume-secret`` and a web port each (two replicas: a stream ticket
minted by one opens a socket on the other, once). Each test has a key of its
own, so their counts do not meet.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import fake_speech
from tests.support.calls import config
from tests.support.fake_speech import FakeSpeech
from tests.support.metrics import free_port
from tests.support.redis import RedisServer, redis_server
from tests.support.servers import ServerProcess
from tests.support.waiting import wait_until
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.auth.api_keys import hash_key, new_key

CHUNK = 3200  # 100 ms at 16 kHz
KEYS = {"minute": "per_minute=3", "day": "hours_per_day=0.001", "meeting": "", "tickets": ""}  # 0.001 h: 3.6 s of audio


@pytest.fixture(scope="module")
def speech_fake() -> Iterator[FakeSpeech]:
    with FakeSpeech() as fake:
        yield fake


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    made = {name: new_key() for name in KEYS}
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text("".join(f"{name} {hash_key(made[name])} interpret {KEYS[name]}\n" for name in KEYS))
    return path, made


@pytest.fixture(scope="module")
def web_ports() -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture(scope="module")
def pair(speech_fake, redis, keys, web_ports, tmp_path_factory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    secret = tmp_path_factory.mktemp("secret") / "resume-secret"
    secret.write_text("c2hhcmVkIGJ5IGJvdGggcmVwbGljYXMgb2YgdGhlIGxpbWl0cyB0ZXN0cw==")  # base64 of 38 bytes
    flags = [
        "--recognizer", "google", "--google-endpoint", speech_fake.address, "--google-insecure",
        "--google-project", "test-project", "--translator", "apertium", "--synthesizer", "none",
        "--store", "none", "--offline-workers", "1", "--api-keys", str(keys[0]), "--limits-storage", redis.url,
    ]  # fmt: skip
    flags += ["--resume-secret", str(secret)]
    servers = (
        ServerProcess([*flags, "--web-port", str(web_ports[0])], name="limits-a"),
        ServerProcess([*flags, "--web-port", str(web_ports[1])], name="limits-b"),
    )
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
            server.remove_log()


def bearer(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def healthy(server: ServerProcess) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
    return bool(status == health_pb2.HealthCheckResponse.SERVING)


class Meeting:
    """One stream on one server, read in a thread: its events as they come, and how it ended."""

    def __init__(self, server: ServerProcess, key: str, audio: bytes, pace_s: float = 0.0) -> None:
        self.events: list[Any] = []
        self.status: grpc.StatusCode | None = None
        self.details = ""
        self._channel = grpc.insecure_channel(server.address)
        stub = pb_grpc.InterpreterStub(self._channel)  # type: ignore[no-untyped-call]

        def requests() -> Iterator[pb.InterpretRequest]:
            yield config(interim=False)
            for i in range(0, len(audio), CHUNK):
                yield pb.InterpretRequest(audio=audio[i : i + CHUNK])
                if pace_s:
                    time.sleep(pace_s)
            yield pb.InterpretRequest(end=pb.EndOfAudio())

        self._call = stub.Interpret(requests(), timeout=120, metadata=bearer(key))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                self.events.append(response)
            self.status = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.status, self.details = error.code(), str(error.details())

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    def notices(self) -> list[int]:
        return [n.code for n in self.of("notice")]

    def wait(self, timeout_s: float = 60) -> Meeting:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the stream did not end"
        self._channel.close()
        return self


def test_new_streams_per_minute_are_one_limit_across_two_servers(pair, keys) -> None:
    a, b = pair
    key = keys[1]["minute"]
    for server in (a, b, a):
        assert Meeting(server, key, b"").wait().status == grpc.StatusCode.OK
    refused = Meeting(b, key, b"").wait()
    assert refused.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "key:minute opened 3 streams in the last minute, its limit of 3 new streams per minute" in refused.details


def test_the_days_audio_is_one_limit_across_two_servers(pair, keys) -> None:
    a, b = pair
    key = keys[1]["day"]
    assert Meeting(a, key, bytes(25 * CHUNK)).wait().status == grpc.StatusCode.OK  # 2.5 s of the 3.6 s
    over = Meeting(b, key, bytes(20 * CHUNK), pace_s=0.01).wait()  # 2 s more: over after 1.1 s
    assert over.status == grpc.StatusCode.RESOURCE_EXHAUSTED, over.details
    assert "its limit of 0.001 h per day" in over.details
    refused = Meeting(a, key, b"").wait()
    assert refused.status == grpc.StatusCode.RESOURCE_EXHAUSTED and "0.001 h per day" in refused.details


def test_a_meeting_goes_on_with_redis_stopped_and_frozen_and_is_told_so(pair, keys, redis) -> None:
    # The documented choice: limits fail open to each server while Redis cannot be reached, with one
    # warning for the operator and a notice for every open stream of a limited caller.
    a, b = pair
    key = keys[1]["meeting"]
    utterances = [[1 + (4 * i + k) % 60 for k in range(4)] for i in range(14)]
    meeting = Meeting(a, key, fake_speech.synthesize(utterances), pace_s=0.05)  # ~2x real time
    assert wait_until(lambda: len(meeting.of("final_transcript")) >= 2, 30)
    local, shared = pb.NOTICE_CODE_LIMITS_LOCAL, pb.NOTICE_CODE_LIMITS_SHARED

    redis.stop()
    assert wait_until(lambda: meeting.notices() == [local], 10), meeting.notices()
    finals_then = len(meeting.of("final_transcript"))
    other = Meeting(b, key, bytes(10 * CHUNK)).wait()  # a new stream is let in, counted by b alone
    assert other.status == grpc.StatusCode.OK and [n.code for n in other.of("notice")] == [local]
    assert healthy(a) and healthy(b)
    assert wait_until(lambda: len(meeting.of("final_transcript")) > finals_then, 20)  # the meeting goes on

    redis.start()
    assert wait_until(lambda: meeting.notices() == [local, shared], 15), meeting.notices()

    redis.freeze()  # a partition: connections open, no answer; each call waits at most its timeout
    try:
        assert wait_until(lambda: meeting.notices() == [local, shared, local], 10), meeting.notices()
        started = time.monotonic()
        assert healthy(a) and time.monotonic() - started < 1
    finally:
        redis.thaw()
    assert meeting.wait(90).status == grpc.StatusCode.OK, meeting.details
    assert [f.text for f in meeting.of("final_transcript")] == [
        " ".join(fake_speech.word_for_id(w)[0] for w in u) for u in utterances
    ]
    warnings = [line for line in a.log_lines() if line.get("event") == "limits_storage_unreachable"]
    assert len(warnings) == 2 and "redis://127.0.0.1" in warnings[0]["message"]
    assert any(line.get("event") == "limits_storage_restored" for line in a.log_lines())


# -- stream tickets: one use across the replicas that share Redis ------------------------------------------


async def _mint(http: aiohttp.ClientSession, port: int, key: str) -> str:
    async with http.post(f"http://127.0.0.1:{port}/v1/tickets", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["ticket"])


async def _open_socket(http: aiohttp.ClientSession, port: int, ticket: str) -> tuple[int, str]:
    """A socket with ``ticket``: a config, then ``end`` once the session started; how it closed."""
    first = {"audioFormat": {"encoding": "AUDIO_ENCODING_LINEAR16", "sampleRateHertz": 16000, "channelCount": 1},
             "sourceLanguageCodes": ["en-US"], "targetLanguageCodes": ["es"]}  # fmt: skip
    async with http.ws_connect(f"http://127.0.0.1:{port}/v1/interpret", params={"ticket": ticket}) as ws:
        await ws.send_str(json.dumps(first))
        error = ""
        async for msg in ws:
            data = json.loads(msg.data)
            if "sessionStarted" in data:
                await ws.send_str('{"end": {}}')
            error = data.get("error", {}).get("message", error)
        return int(ws.close_code or 0), error


def test_a_ticket_opens_one_socket_across_the_replicas_and_while_redis_is_away_once_per_replica(
    pair, keys, redis, web_ports
) -> None:
    a, b = web_ports
    key = keys[1]["tickets"]

    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            ticket = await _mint(http, a, key)
            assert await _open_socket(http, a, ticket) == (1000, "")
            code, error = await _open_socket(http, b, ticket)  # copied to the other replica within its minute
            assert code == 4016 and "already used" in error, error  # UNAUTHENTICATED

            redis.stop()  # the documented bound while Redis is away: single use holds within each replica
            try:
                ticket = await _mint(http, b, key)
                assert await _open_socket(http, b, ticket) == (1000, "")  # new meetings and reconnects go on
                code, error = await _open_socket(http, b, ticket)
                assert code == 4016 and "already used" in error, error
                assert await _open_socket(http, a, ticket) == (1000, ""), "a replica that cannot ask Redis"
            finally:
                redis.start()

    asyncio.run(run())
