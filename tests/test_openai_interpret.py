"""Sessions with ``--translator openai``: the gRPC server, the real openai client and the fake OpenAI server.

Speech comes from the fake Google Speech-to-Text server (``--recognizer google``),
whose audio carries its words, so finals in Korean and English are
deterministic; the fake OpenAI server's translation is derived from the
request (``fake_translation``), so every token can be checked.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
import pytest

from tests.conftest import stub_for
from tests.support import fake_speech
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.fake_openai import FakeOpenAI, fake_translation
from tests.support.fake_speech import KOREAN_BASE, FakeSpeech, word_for_id
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.app import TongyeokServer

KO_1 = [KOREAN_BASE + i for i in range(3)]  # 안녕하세요 만나서 반갑습니다
EN_1 = [1, 2, 3, 4]  # good morning thank you
KO_2 = [KOREAN_BASE + 9, KOREAN_BASE + 10]  # 제안서를 검토해
EN_2 = [19, 20, 21]  # please review this


def words(ids: Iterable[int]) -> str:
    return " ".join(word_for_id(i)[0] for i in ids)


@pytest.fixture
def server(
    server_factory: Callable[..., TongyeokServer],
    openai_fake: FakeOpenAI,
    speech_fake: FakeSpeech,
    monkeypatch: pytest.MonkeyPatch,
) -> TongyeokServer:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-interpret-key")
    return server_factory(
        recognizer="google",
        google_endpoint=speech_fake.address,
        google_insecure=True,
        google_project="test-project",
        translator="openai",
        openai_base_url=openai_fake.base_url,
        openai_max_retries=2,
    )


@pytest.fixture
def stub(server: TongyeokServer) -> Iterator[pb_grpc.InterpreterStub]:
    channel, stub = stub_for(server)
    with channel:
        yield stub


def interpret(
    stub: pb_grpc.InterpreterStub, utterances: list[list[int]], *, sources: tuple[str, ...], targets: tuple[str, ...]
) -> list[tuple[str, Any]]:
    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(sources=sources, targets=targets, interim=False)
        yield from audio_requests(fake_speech.synthesize(utterances), 3200)

    return events_of(stub.Interpret(requests(), timeout=30))


def translations(events: list[tuple[str, Any]]) -> dict[tuple[int, str], str]:
    """(utterance id, target) -> the text a caller shows: tokens since the last reset."""
    shown: dict[tuple[int, str], str] = defaultdict(str)
    for kind, e in events:
        if kind == "translation_token":
            shown[(e.utterance_id, e.target_language_code)] += e.text
        elif kind == "translation_reset":
            shown[(e.utterance_id, e.target_language_code)] = ""
    return dict(shown)


# -- TranslateText -----------------------------------------------------------


def test_translate_text_three_targets_in_parallel_labelled(
    stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI
) -> None:
    openai_fake.ttft_s, openai_fake.tokens_per_s = 0.3, 20
    text = "we are glad to meet the team today"
    targets = ["ko", "ja", "es"]
    start = time.monotonic()
    responses = list(
        stub.TranslateText(
            pb.TranslateTextRequest(text=text, source_language_code="en", target_language_codes=targets), timeout=10
        )
    )
    elapsed = time.monotonic() - start
    started = responses.pop(0)
    assert started.WhichOneof("event") == "started", started
    assert list(started.started.target_language_codes) == targets
    assert started.started.translator.name == "openai" and not started.started.ignored_options
    tokens: dict[str, str] = defaultdict(str)
    complete: dict[str, str] = {}
    for r in responses:
        kind = r.WhichOneof("event")
        assert kind in {"translation_token", "translation_complete"}, r
        if kind == "translation_token":
            tokens[r.translation_token.target_language_code] += r.translation_token.text
        else:
            complete[r.translation_complete.target_language_code] = r.translation_complete.text
    for target in targets:
        assert tokens[target] == fake_translation(text, target)
        assert complete[target] == fake_translation(text, target)
    # In parallel: three at once on the fake, and about the time of one.
    assert openai_fake.max_active == 3
    one = 0.3 + 9 / 20
    assert elapsed < 2 * one, elapsed


def test_translate_text_options_reach_the_model(stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI) -> None:
    options = pb.TranslationOptions(
        style=pb.TRANSLATION_STYLE_BUSINESS,
        glossary=[
            pb.GlossaryEntry(source_term="Tongyeok"),
            pb.GlossaryEntry(source_term="proposal", target_term="제안서", target_language_code="ko"),
        ],
    )
    request = pb.TranslateTextRequest(
        text="please review the Tongyeok proposal",
        source_language_code="en",
        target_language_codes=["ko"],
        translation_options=options,
        context=["We met last week in Seoul."],
    )
    list(stub.TranslateText(request, timeout=10))
    (req,) = openai_fake.requests
    assert "합쇼체" in req.system_prompt
    assert 'Keep "Tongyeok" exactly as written' in req.system_prompt
    assert 'Render "proposal" as "제안서".' in req.system_prompt
    assert "We met last week in Seoul." in req.user_prompt
    assert req.user_prompt.endswith("<sentence>please review the Tongyeok proposal</sentence>")


def test_translate_text_cut_stream_sends_a_reset(stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI) -> None:
    text = "the price includes delivery support and training"
    openai_fake.cut(after_chunks=3)
    responses = list(
        stub.TranslateText(
            pb.TranslateTextRequest(text=text, source_language_code="en", target_language_codes=["ko"]), timeout=10
        )
    )
    assert responses.pop(0).WhichOneof("event") == "started"
    kinds = [r.WhichOneof("event") for r in responses]
    reset_at = kinds.index("translation_reset")
    assert kinds[:reset_at] == ["translation_token"] * 3
    assert "broke off" in responses[reset_at].translation_reset.reason
    after = "".join(
        r.translation_token.text for r in responses[reset_at:] if r.WhichOneof("event") == "translation_token"
    )
    assert after == fake_translation(text, "ko")
    assert responses[-1].translation_complete.text == fake_translation(text, "ko")


def test_translate_text_one_target_failing_is_a_notice(stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI) -> None:
    openai_fake.fail(401, times=None, target="ja")
    text = "let us schedule a call"
    responses = list(
        stub.TranslateText(
            pb.TranslateTextRequest(text=text, source_language_code="en", target_language_codes=["ko", "ja"]),
            timeout=10,
        )
    )
    notices = [r.notice for r in responses if r.WhichOneof("event") == "notice"]
    assert len(notices) == 1
    assert notices[0].code == pb.NOTICE_CODE_TRANSLATION_FAILED
    assert notices[0].target_language_code == "ja"
    assert "HTTP 401" in notices[0].message and "OPENAI_API_KEY" in notices[0].message
    assert "sk-" not in notices[0].message
    completes = [r.translation_complete for r in responses if r.WhichOneof("event") == "translation_complete"]
    assert [(c.target_language_code, c.text) for c in completes] == [("ko", fake_translation(text, "ko"))]


# -- Interpret -----------------------------------------------------------------


def test_two_way_korean_english_each_final_into_the_other(
    stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI
) -> None:
    utterances = [KO_1, EN_1, KO_2, EN_2]
    events = interpret(stub, utterances, sources=("ko-KR", "en-US"), targets=("ko-KR", "en-US"))
    finals = of_kind(events, "final_transcript")
    assert [(f.language_code, f.text) for f in finals] == [
        ("ko-KR", words(KO_1)),
        ("en-US", words(EN_1)),
        ("ko-KR", words(KO_2)),
        ("en-US", words(EN_2)),
    ]
    expected = {}
    for f in finals:
        target = "en-US" if f.language_code == "ko-KR" else "ko-KR"
        expected[(f.utterance_id, target)] = fake_translation(f.text, target)
    assert translations(events) == expected
    completes = {(c.utterance_id, c.target_language_code): c.text for c in of_kind(events, "translation_complete")}
    assert completes == expected
    # Each request went the right way, with the earlier sentences as context.
    assert openai_fake.wait_idle()
    by_sentence = {r.sentence: r for r in openai_fake.requests}
    assert "from Korean into American English" in by_sentence[words(KO_1)].system_prompt
    assert "from American English into Korean" in by_sentence[words(EN_1)].system_prompt
    last = by_sentence[words(EN_2)].user_prompt
    assert words(KO_1) in last and words(EN_1) in last and words(KO_2) in last


def test_three_targets_in_parallel_tokens_labelled(stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI) -> None:
    openai_fake.ttft_s, openai_fake.tokens_per_s = 0.2, 50
    events = interpret(stub, [EN_1, EN_2], sources=("en-US",), targets=("ko", "ja", "es"))
    finals = of_kind(events, "final_transcript")
    assert len(finals) == 2
    expected = {(f.utterance_id, t): fake_translation(f.text, t) for f in finals for t in ("ko", "ja", "es")}
    assert translations(events) == expected
    # The three languages of one sentence were streamed at the same time.
    assert openai_fake.max_active >= 3
    for f in finals:
        assert set(f.target_language_codes) == {"ko", "ja", "es"}


def test_permanent_failure_is_a_notice_and_the_session_goes_on(
    stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_fake.fail(500, times=None, match=words(EN_1), message="the model is down")
    events = interpret(stub, [EN_1, EN_2], sources=("en-US",), targets=("ko",))
    (started,) = of_kind(events, "session_started")
    finals = of_kind(events, "final_transcript")
    assert [f.text for f in finals] == [words(EN_1), words(EN_2)]
    (notice,) = of_kind(events, "notice")
    assert notice.code == pb.NOTICE_CODE_TRANSLATION_FAILED
    assert notice.utterance_id == finals[0].utterance_id
    assert notice.target_language_code == "ko"
    assert "HTTP 500" in notice.message
    # The upstream's words and address are for the server's log: once, at WARNING, with the session.
    assert "the model is down" not in notice.message and str(openai_fake.port) not in notice.message
    (logged,) = [r for r in caplog.records if r.levelname == "WARNING" and "the model is down" in r.getMessage()]
    assert logged.getMessage().startswith(f"session {started.session_id}: translation of utterance 1 into ko failed")
    assert f"127.0.0.1:{openai_fake.port}" in logged.getMessage()
    # Recognition and the next sentence's translation went on.
    completes = of_kind(events, "translation_complete")
    assert [(c.utterance_id, c.text) for c in completes] == [
        (finals[1].utterance_id, fake_translation(words(EN_2), "ko"))
    ]
    # Retried within the bound, then given up: 1 + openai_max_retries requests.
    assert sum(r.sentence == words(EN_1) for r in openai_fake.requests) == 3


def test_cut_stream_becomes_a_translation_reset(stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI) -> None:
    openai_fake.cut(after_chunks=2, match=words(EN_1))
    events = interpret(stub, [EN_1], sources=("en-US",), targets=("ko",))
    (final,) = of_kind(events, "final_transcript")
    (reset,) = of_kind(events, "translation_reset")
    assert reset.utterance_id == final.utterance_id and reset.target_language_code == "ko"
    kinds = [k for k, _ in events]
    i = kinds.index("translation_reset")
    assert kinds[i - 2 : i] == ["translation_token", "translation_token"]
    assert translations(events) == {(final.utterance_id, "ko"): fake_translation(final.text, "ko")}
    (complete,) = of_kind(events, "translation_complete")
    assert complete.text == fake_translation(final.text, "ko")


def test_caller_going_away_closes_the_http_stream(stub: pb_grpc.InterpreterStub, openai_fake: FakeOpenAI) -> None:
    openai_fake.tokens_per_s = 1  # a translation that would take 5 s
    audio = fake_speech.synthesize([EN_1])
    done = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(sources=("en-US",), targets=("ko",), interim=False)
        yield from audio_requests(audio, 3200)
        done.wait(10)  # keep the stream open, as a live caller does

    call = stub.Interpret(requests(), timeout=30)
    try:
        for response in call:
            if response.WhichOneof("event") == "translation_token":
                break
        cancelled_at = time.monotonic()
        call.cancel()
    finally:
        done.set()
    assert openai_fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=3.0)
    (req,) = openai_fake.requests
    assert req.outcome == "disconnected"
    assert req.ended_at - cancelled_at < 1.0
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
