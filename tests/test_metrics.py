"""Prometheus metrics on ``--metrics-port``: they add up to what the callers saw, and say nothing private.

A real server with the Google engine against the fake recogniser and the
OpenAI engine against the fake OpenAI (deterministic results), scraped over
HTTP as Prometheus would.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import stub_for
from tests.support import fake_speech
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech, word_for_id
from tests.support.metrics import Samples, free_port, scrape
from tests.support.tokens import AUDIENCE, ISSUER, Signer, write_jwks
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.app import TongyeokServer
from tongyeok_server.auth.api_keys import hash_key, new_key

UTTERANCES = [[1, 2, 3, 4], [5, 6, 7], [19, 20, 21, 22]]
TARGETS = ("ko", "es")


@pytest.fixture
def cloud_server(
    server_factory: Callable[..., TongyeokServer],
    speech_fake: FakeSpeech,
    openai_fake: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., TongyeokServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-metrics-key")

    def start(**overrides: Any) -> TongyeokServer:
        return server_factory(
            recognizer="google",
            google_endpoint=speech_fake.address,
            google_insecure=True,
            google_project="test-project",
            translator="openai",
            openai_base_url=openai_fake.base_url,
            **{"metrics_port": free_port(), **overrides},
        )

    return start


def audio() -> bytes:
    return fake_speech.synthesize(UTTERANCES)


def requests(data: bytes) -> Iterator[pb.InterpretRequest]:
    yield config(sources=("en-US",), targets=TARGETS, interim=True)
    yield from audio_requests(data, 3200)


def test_metrics_add_up_to_what_the_callers_saw(cloud_server, speech_fake: FakeSpeech) -> None:
    server = cloud_server()
    port = server.observability.metrics_port
    assert scrape(port).value("tongyeok_streams_open") == 0
    data = audio()
    seen: list[list[tuple[str, Any]]] = []
    channel, stub = stub_for(server)
    with channel:
        # Two streams in full; the second meets an outage the engine retries (a notice).
        seen.append(events_of(stub.Interpret(requests(data), timeout=30)))
        speech_fake.fail_once(grpc.StatusCode.UNAVAILABLE, after_audio_s=2.0)
        seen.append(events_of(stub.Interpret(requests(data), timeout=30)))
        # A refused config, and a stream the recogniser ends with an error.
        with pytest.raises(grpc.RpcError) as refused:
            events_of(stub.Interpret(iter([config(sources=())]), timeout=30))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        speech_fake.refuse_all()
        with pytest.raises(grpc.RpcError) as denied:
            events_of(stub.Interpret(requests(data), timeout=30))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        speech_fake.clear_faults()
        # A caller that goes away (after a second of silence: nothing written to it that it did not read).
        release = threading.Event()

        def held() -> Iterator[pb.InterpretRequest]:
            yield from requests(bytes(32000))
            release.wait(30)

        call = stub.Interpret(held(), timeout=30)
        assert next(call).WhichOneof("event") == "session_started"
        open_now = scrape(port).value("tongyeok_streams_open")
        call.cancel()
        release.set()
    assert open_now == 1
    assert _eventually(lambda: scrape(port).value("tongyeok_streams_ended_total") == 4)

    m = scrape(port)
    assert m.value("tongyeok_streams_open") == 0
    assert m.value("tongyeok_streams_started_total", caller="anonymous") == 4
    assert m.value("tongyeok_streams_ended_total", outcome="ok", code="OK") == 2
    assert m.value("tongyeok_streams_ended_total", outcome="error", code="PERMISSION_DENIED") == 1
    assert m.value("tongyeok_streams_ended_total", outcome="cancelled", code="CANCELLED") == 1
    assert m.value("tongyeok_streams_refused_total", code="INVALID_ARGUMENT") == 1
    assert m.value("tongyeok_engine_errors_total", engine="recognizer", code="PERMISSION_DENIED") == 1
    assert m.value("tongyeok_notices_total", code="RECOGNIZER_RETRYING") == len(
        [n for events in seen for n in of_kind(events, "notice") if n.code == pb.NOTICE_CODE_RECOGNIZER_RETRYING]
    )
    assert m.value("tongyeok_notices_total", code="RECOGNIZER_RETRYING") >= 1

    interims = sum(len(of_kind(events, "interim_transcript")) for events in seen)
    finals = sum(len(of_kind(events, "final_transcript")) for events in seen)
    completes = sum(len(of_kind(events, "translation_complete")) for events in seen)
    assert finals == 2 * len(UTTERANCES) and completes == finals * len(TARGETS)
    assert m.value("tongyeok_transcripts_total", kind="interim") == interims
    assert m.value("tongyeok_transcripts_total", kind="final") == finals
    assert m.value("tongyeok_translations_total") == completes
    # Every transcript written to a caller has its added latency, every translation its first token.
    assert m.value("tongyeok_event_added_latency_seconds_count", kind="final") == finals
    assert m.value("tongyeok_event_added_latency_seconds_count", kind="interim") == interims
    assert m.value("tongyeok_final_to_first_token_seconds_count") == completes
    assert 0 < m.value("tongyeok_event_added_latency_seconds_sum") < 5.0
    # Audio: the two whole streams, the cancelled one's second, and what the refused one got in.
    whole = 2 * len(data) / 32000
    assert (
        whole + 0.5
        <= m.value("tongyeok_audio_received_seconds_total", caller="anonymous")
        <= whole + 1 + len(data) / 32000
    )

    # Nothing said in the meetings is in the metrics.
    for utterance in UTTERANCES:
        assert " ".join(word_for_id(w)[0] for w in utterance) not in m.text
    assert _names_follow_conventions(m)


def test_callers_are_named_by_key_id_within_a_bound_never_by_token(cloud_server, tmp_path: Path) -> None:
    keys = {f"backend-{i}": new_key() for i in range(3)}
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("".join(f"{name} {hash_key(key)} interpret\n" for name, key in keys.items()))
    signer = Signer("k1")
    server = cloud_server(
        api_keys=str(keys_file),
        jwt_jwks=str(write_jwks(tmp_path / "jwks.json", signer)),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        metrics_callers=2,  # the third key counts as "other"
        caller_max_streams=0,
    )
    tokens = [*keys.values(), signer.token(subject="alice"), signer.token(subject="bob")]
    channel, stub = stub_for(server)
    with channel:
        for token in tokens:
            events_of(stub.Interpret(iter([config()]), timeout=30, metadata=[("authorization", f"Bearer {token}")]))
        with pytest.raises(grpc.RpcError) as refused:
            events_of(stub.Interpret(iter([config()]), timeout=30, metadata=[("authorization", "Bearer nope")]))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError):
            events_of(stub.Interpret(iter([config()]), timeout=30))
    m = scrape(server.observability.metrics_port)
    assert m.labels("tongyeok_streams_started_total", "caller") == {"key:backend-0", "key:backend-1", "other", "jwt"}
    assert m.value("tongyeok_streams_started_total", caller="jwt") == 2
    assert m.value("tongyeok_auth_refusals_total", reason="unknown_key", code="UNAUTHENTICATED") == 1
    assert m.value("tongyeok_auth_refusals_total", reason="missing", code="UNAUTHENTICATED") == 1
    for secret in [*tokens, "alice", "bob"]:
        assert secret not in m.text


def test_a_caller_over_its_limit_is_counted_by_limit(cloud_server, tmp_path: Path) -> None:
    key = new_key()
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"crm {hash_key(key)} interpret per_minute=1\n")
    server = cloud_server(api_keys=str(keys_file))
    metadata = [("authorization", f"Bearer {key}")]
    channel, stub = stub_for(server)
    with channel:
        events_of(stub.Interpret(iter([config()]), timeout=30, metadata=metadata))
        with pytest.raises(grpc.RpcError) as over:
            events_of(stub.Interpret(iter([config()]), timeout=30, metadata=metadata))
    assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    m = scrape(server.observability.metrics_port)
    assert m.value("tongyeok_limit_refusals_total", limit="per_minute", caller="key:crm") == 1
    assert m.value("tongyeok_streams_refused_total", code="RESOURCE_EXHAUSTED") == 1


def test_without_metrics_port_nothing_is_attached(cloud_server) -> None:
    server = cloud_server(metrics_port=0)
    assert server.observability.metrics is None and server.observability.metrics_port == 0
    assert not server.observability.extensions
    assert server.servicer._recognizer is server.recognizer  # not wrapped: no cost per event


def _names_follow_conventions(m: Samples) -> bool:
    """tongyeok_ prefix, snake case, counters end in _total, seconds are base units."""
    names = {n for n, _, _ in m.samples if n.startswith("tongyeok_")}
    assert names, "no tongyeok metric"
    for name in names:
        assert re.fullmatch(r"tongyeok_[a-z0-9_]+", name), name
        assert "milliseconds" not in name and "_ms" not in name, name
    return True


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()
