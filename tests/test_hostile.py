"""Hostile and malformed traffic: random bytes, truncated messages, oversized messages, odd text.

Every request that is not what the method takes must end with
INVALID_ARGUMENT (or the size status) and a message a person can act on;
the server stays healthy and its log has no traceback.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import stub_for
from tests.support.calls import config
from tongyeok_client.proto import interpreter_pb2 as pb

SEED = 20261201
PER_RPC = 220


def byte_strings(valid: bytes, n: int) -> list[bytes]:
    """Random byte strings and truncations of a valid message, reproducibly."""
    rng = random.Random(SEED)
    out = [valid[:cut] for cut in range(1, len(valid))]
    while len(out) < n:
        out.append(rng.randbytes(rng.randint(1, 300)))
    return out[:n]


def decodes(message_type: Any, data: bytes) -> bool:
    try:
        message_type.FromString(data)
    except Exception:
        return False
    return True


@pytest.fixture
def raw_channel(offline_server):
    channel, _ = stub_for(offline_server)
    with channel:
        yield channel


@pytest.fixture(autouse=True)
def still_serving(offline_server):
    """After each test, whatever it sent: the health service says SERVING and the Interpreter still serves.

    (A test of its own ran after the others only in file order, and proved nothing run alone.)
    """
    yield
    channel, stub = stub_for(offline_server)
    with channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        )
        assert stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10).recognizer.name
        started = next(iter(stub.Interpret(iter([config()]), timeout=30)))
        assert started.WhichOneof("event") == "session_started"


def assert_no_traceback(caplog) -> None:
    """No traceback, and nothing above DEBUG per malformed call (a client must not be able to fill the log)."""
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "refused" in r.getMessage()]
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Traceback" not in record.getMessage()
        assert "Exception deserializing" not in record.getMessage()


def test_fuzzed_list_languages_requests(raw_channel, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    call = raw_channel.unary_unary("/tongyeok.v1.Interpreter/ListLanguages")
    valid = pb.ListLanguagesRequest().SerializeToString() + b"\x08\x01"  # an unknown field: still valid
    codes = []
    for data in byte_strings(valid, PER_RPC):
        try:
            answer = call(data, timeout=10)
            assert decodes(pb.ListLanguagesRequest, data), data  # unknown fields are ignored, as protobuf says
            assert pb.ListLanguagesResponse.FromString(answer).recognizer.name
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (data, e)
            assert not decodes(pb.ListLanguagesRequest, data)
            assert "is not a valid tongyeok.v1.ListLanguagesRequest" in str(e.details())
            codes.append(e.code())
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) > PER_RPC // 2
    assert_no_traceback(caplog)


def test_fuzzed_translate_text_requests(raw_channel, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    call = raw_channel.unary_stream("/tongyeok.v1.Interpreter/TranslateText")
    valid = pb.TranslateTextRequest(
        text="We accept the offer.", source_language_code="en", target_language_codes=["es"]
    ).SerializeToString()
    for data in byte_strings(valid, PER_RPC):
        try:
            list(call(data, timeout=10))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (data, e)
            assert e.details()
        else:
            # Only bytes that decode to a valid request may succeed.
            request = pb.TranslateTextRequest.FromString(data)
            assert request.text.strip() and request.target_language_codes, request
    assert_no_traceback(caplog)


def test_fuzzed_interpret_streams(raw_channel, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    call = raw_channel.stream_stream("/tongyeok.v1.Interpreter/Interpret")
    valid_config = config().SerializeToString()
    for data in byte_strings(valid_config, PER_RPC):
        try:
            list(call(iter([data]), timeout=30))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (data, e)
            if not decodes(pb.InterpretRequest, data):
                assert "message 1" in str(e.details()) and "is not a valid tongyeok.v1.InterpretRequest" in str(
                    e.details()
                )
        else:
            assert pb.InterpretRequest.FromString(data).WhichOneof("request") == "config"
    # Garbage after a valid config names the message.
    with pytest.raises(grpc.RpcError) as later:
        audio = pb.InterpretRequest(audio=b"\x00" * 3200).SerializeToString()
        list(call(iter([valid_config, audio, b"\xff\xff\xff\xff"]), timeout=30))
    assert later.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message 3 (4 bytes) is not a valid tongyeok.v1.InterpretRequest" in str(later.value.details())
    assert_no_traceback(caplog)


def test_message_size_limit_and_status_agree_with_the_proto(raw_channel) -> None:
    call = raw_channel.stream_stream("/tongyeok.v1.Interpreter/Interpret")
    one_mib = pb.InterpretRequest(audio=b"\x00" * (1 << 20)).SerializeToString()
    assert len(one_mib) == (1 << 20) + 4
    responses = list(call(iter([config().SerializeToString(), one_mib]), timeout=60))
    assert pb.InterpretResponse.FromString(responses[0]).WhichOneof("event") == "session_started"
    too_big = pb.InterpretRequest(audio=b"\x00" * ((1 << 20) + 2)).SerializeToString()
    with pytest.raises(grpc.RpcError) as refused:
        list(call(iter([config().SerializeToString(), too_big]), timeout=60))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in str(refused.value.details())


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (
            pb.TranslateTextRequest(text="안녕하세요", source_language_code="ko", target_language_codes=["es"]),
            "source_language_code: the apertium translator cannot translate from ko; it translates from: en, es",
        ),
        (
            pb.TranslateTextRequest(text="\x00\x00\x00", source_language_code="en", target_language_codes=["es"]),
            "text contains the control character U+0000 at position 0",
        ),
        (
            pb.TranslateTextRequest(text=" \n\t ", source_language_code="en", target_language_codes=["es"]),
            "text is empty: send the text to translate",
        ),
        (
            pb.TranslateTextRequest(
                text="Hello.",
                source_language_code="en",
                target_language_codes=["es"],
                translation_options=pb.TranslationOptions(glossary=[pb.GlossaryEntry(source_term="x" * 201)]),
            ),
            "translation_options.glossary[0].source_term has 201 characters; at most 200",
        ),
        (
            pb.TranslateTextRequest(
                text="Hello.", source_language_code="en", target_language_codes=["es"], context=["Hi."] * 51
            ),
            "context has 51 sentences; at most 50",
        ),
        (
            pb.TranslateTextRequest(
                text="Hello.", source_language_code="en", target_language_codes=["es"], context=["x" * 1001]
            ),
            "context[0] has 1001 characters; at most 1000",
        ),
    ],
    ids=["unsupported-source", "nul-only", "whitespace-only", "long-glossary-term", "too-much-context", "long-context"],
)
def test_translate_text_names_the_field_at_fault(offline_stub, request_, needle) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(offline_stub.TranslateText(request_, timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in str(info.value.details())


def test_translate_text_says_which_requested_options_the_engine_ignores(offline_stub) -> None:
    plain = list(
        offline_stub.TranslateText(
            pb.TranslateTextRequest(text="Hello.", source_language_code="en", target_language_codes=["es"]), timeout=10
        )
    )
    assert plain[0].WhichOneof("event") == "started"
    assert list(plain[0].started.ignored_options) == []
    styled = list(
        offline_stub.TranslateText(
            pb.TranslateTextRequest(
                text="Hello.",
                source_language_code="en",
                target_language_codes=["es"],
                translation_options=pb.TranslationOptions(style=pb.TRANSLATION_STYLE_BUSINESS),
            ),
            timeout=10,
        )
    )
    assert [o.split(":")[0] for o in styled[0].started.ignored_options] == ["translation_options.style"]
