"""The OpenAI translator over the wire: the real openai client against the fake OpenAI server.

The engine is async on the caller's loop; each test drives it on one loop of
its own (``asyncio.Runner``), as the server does on its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc
import pytest

from tests.support.fake_openai import FakeOpenAI, Rule, fake_tokens, fake_translation
from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.settings import OpenAISettings, Settings, TranslationSettings, from_args
from tongyeok_server.translation import openai_engine, openai_sse
from tongyeok_server.translation.base import (
    ContextSentence,
    GlossaryTerm,
    Style,
    TokenDelta,
    TranslationChunk,
    TranslationOptions,
    TranslationRequest,
    TranslationRestart,
    TranslationStream,
)
from tongyeok_server.translation.openai_engine import OpenAITranslator

SECRET = "sk-test-0123456789abcdefSECRET"
T = TypeVar("T")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


_made: list[OpenAITranslator] = []
_runner: list[asyncio.Runner] = []


@pytest.fixture(autouse=True)
def _loop() -> Iterator[None]:
    """One event loop per test, as the server has one; every translator a test made is closed on it."""
    with asyncio.Runner() as runner:
        _runner.append(runner)
        try:
            yield
        finally:
            while _made:
                runner.run(_made.pop().close())
            _runner.clear()


def run(work: Awaitable[T]) -> T:
    """Run ``work`` on the test's loop."""
    return _runner[0].run(work)  # type: ignore[arg-type]


def make_translator(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, *, max_retries: int = 2, timeout_s: float = 10.0
) -> OpenAITranslator:
    """Build it the way the server does (``create``), with a short back-off for speed."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = Settings.of(
        translator="openai",
        openai_model="gpt-test",
        openai_base_url=fake.base_url,
        openai_max_retries=max_retries,
        openai_timeout_s=timeout_s,
    )
    translator = openai_engine.create(settings.translation, settings.openai)
    translator.backoff_s = 0.02
    _made.append(translator)
    return translator


@pytest.fixture
def translator(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> OpenAITranslator:
    return make_translator(fake, monkeypatch)


async def _collect(stream: TranslationStream) -> list[TranslationChunk]:
    async with contextlib.aclosing(stream) as chunks:
        return [chunk async for chunk in chunks]


def collect(stream: TranslationStream) -> list[TranslationChunk]:
    """Every chunk of ``stream`` (on the test's loop); a failure raises."""
    return run(_collect(stream))


def translate(translator: OpenAITranslator, text: str, source: str = "en", target: str = "ko", **kw: Any) -> str:
    return final_text(collect(translator.translate(TranslationRequest(text, source, target, **kw))))


def final_text(chunks: list[TranslationChunk]) -> str:
    """What a caller ends up showing: tokens after the last restart."""
    text = ""
    for c in chunks:
        text = "" if isinstance(c, TranslationRestart) else text + c.text
    return text


def assert_no_secret(message: str) -> None:
    assert SECRET not in message
    assert "sk-" not in message
    assert "0123456789" not in message


# -- the happy path -------------------------------------------------------


def test_tokens_stream_in_order_as_they_are_written(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.ttft_s, fake.tokens_per_s = 0.05, 40
    text = "we would like to discuss the delivery schedule today"
    arrivals: list[tuple[float, str]] = []
    start = time.monotonic()

    async def read() -> None:
        async for chunk in translator.translate(TranslationRequest(text, "en", "ko")):
            assert isinstance(chunk, TokenDelta)
            arrivals.append((time.monotonic() - start, chunk.text))

    run(read())
    assert [t for _, t in arrivals] == fake_tokens(text, "ko")
    assert "".join(t for _, t in arrivals) == fake_translation(text, "ko")
    # Streamed, not buffered: the first token arrived long before the last.
    first, last = arrivals[0][0], arrivals[-1][0]
    assert last - first > 0.15, arrivals
    assert first < 0.5 * last, arrivals
    body = fake.requests[0].body
    assert body["stream"] is True
    assert body["model"] == "gpt-test"
    assert body["temperature"] <= 0.3
    assert fake.requests[0].headers["authorization"] == f"Bearer {SECRET}"


def test_request_carries_style_glossary_and_context(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    options = TranslationOptions(
        style=Style.BUSINESS,
        glossary=(
            GlossaryTerm("Tongyeok"),  # keep as is
            GlossaryTerm("견적서", "quotation", "en"),
            GlossaryTerm("견적서", "presupuesto", "es"),  # another target: must not be sent
        ),
        context_sentences=2,
    )
    context = (
        ContextSentence("This sentence is too old to be sent.", "en"),
        ContextSentence("Good morning, Director Kim.", "en", "좋은 아침입니다, 김 이사님."),
        ContextSentence("네, 반갑습니다. 견적서를 보내 드렸습니다.", "ko-KR"),
    )
    text = "가격이 너무 높습니다"
    chunks = collect(translator.translate(TranslationRequest(text, "ko-KR", "en-US", options, context)))
    assert final_text(chunks) == fake_translation(text, "en-US")

    (req,) = fake.requests
    system, user = req.system_prompt, req.user_prompt
    assert [m["role"] for m in req.body["messages"]] == ["system", "user"]
    # Direction and style.
    assert "from Korean into American English" in system
    assert "Target language: American English (en-US)" in system
    assert "business interpreter" in system and "cushion" in system
    assert "Korean source" in system and "억 = 100 million" in system
    # Glossary as explicit rules, only for this target.
    assert 'Keep "Tongyeok" exactly as written' in system
    assert 'Render "견적서" as "quotation".' in system
    assert "presupuesto" not in system
    # Context: the last two sentences, with translations, before the sentence.
    assert "too old" not in user
    assert "[en] Good morning, Director Kim.\n  (translated: 좋은 아침입니다, 김 이사님.)" in user
    assert "[ko-KR] 네, 반갑습니다. 견적서를 보내 드렸습니다." in user
    assert user.index("</context>") < user.index(f"<sentence>{text}</sentence>")
    assert "Output only the American English translation of the text inside <sentence>" in system


@pytest.mark.parametrize(
    ("style", "expected", "absent"),
    [
        (Style.BUSINESS, "합쇼체", "해요체"),
        (Style.NEUTRAL, "해요체", "cushion"),
        (Style.LITERAL, "Style: literal", "cushion"),
    ],
)
def test_each_style_reaches_the_model(
    fake: FakeOpenAI, translator: OpenAITranslator, style: Style, expected: str, absent: str
) -> None:
    options = TranslationOptions(style=style)
    collect(translator.translate(TranslationRequest("the price is too high", "en", "ko", options)))
    system = fake.requests[0].system_prompt
    assert expected in system
    assert absent not in system


def test_context_can_be_turned_off(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    options = TranslationOptions(context_sentences=0)
    context = (ContextSentence("earlier sentence", "en", "이전 문장"),)
    collect(translator.translate(TranslationRequest("next one", "en", "ko", options, context)))
    assert fake.requests[0].user_prompt == "<sentence>next one</sentence>"


def test_sentences_reuse_one_connection(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    """Each body is read to its end, so the connection goes back to the pool: no new handshake per sentence."""
    texts = [f"sentence {i} of the meeting" for i in range(5)]
    for text in texts:
        chunks = collect(translator.translate(TranslationRequest(text, "en", "ko")))
        assert final_text(chunks) == fake_translation(text, "ko")
    assert fake.wait_idle()
    assert [r.outcome for r in fake.requests] == ["completed"] * len(texts)
    assert fake.connections == 1
    assert len({r.client_port for r in fake.requests}) == 1


# -- transient failures, retried -----------------------------------------


def test_429_is_retried_then_succeeds(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.fail(429, times=2, retry_after_s=0.05)
    start = time.monotonic()
    chunks = collect(translator.translate(TranslationRequest("hello there", "en", "ko")))
    elapsed = time.monotonic() - start
    # No token came before the failures, so no restart is needed.
    assert chunks == [TokenDelta(t) for t in fake_tokens("hello there", "ko")]
    assert fake.wait_idle()
    assert [r.outcome for r in fake.requests] == ["error 429", "error 429", "completed"]
    assert elapsed >= 0.1  # the server's Retry-After was honoured
    # Our own retries replace the SDK's: every attempt is a fresh request.
    assert all(r.headers.get("x-stainless-retry-count", "0") == "0" for r in fake.requests)


def test_500_then_success(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.fail(503, times=1)
    chunks = collect(translator.translate(TranslationRequest("one two", "en", "ja")))
    assert final_text(chunks) == fake_translation("one two", "ja")
    assert len(fake.requests) == 2


def test_cut_stream_restarts_before_the_new_tokens(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    text = "please send the signed contract by friday"
    fake.cut(after_chunks=3)
    chunks = collect(translator.translate(TranslationRequest(text, "en", "ko")))
    expected = fake_tokens(text, "ko")
    restarts = [i for i, c in enumerate(chunks) if isinstance(c, TranslationRestart)]
    assert restarts == [3], chunks
    assert chunks[:3] == [TokenDelta(t) for t in expected[:3]]
    assert chunks[4:] == [TokenDelta(t) for t in expected]
    restart = chunks[3]
    assert isinstance(restart, TranslationRestart)
    assert "broke off" in restart.reason and "retrying" in restart.reason
    assert final_text(chunks) == fake_translation(text, "ko")
    assert fake.wait_idle()
    assert [r.outcome for r in fake.requests] == ["cut", "completed"]


def test_body_ending_without_finish_reason_counts_as_cut(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.cut(after_chunks=2, clean=True)
    chunks = collect(translator.translate(TranslationRequest("one two three", "en", "ko")))
    assert sum(isinstance(c, TranslationRestart) for c in chunks) == 1
    assert final_text(chunks) == fake_translation("one two three", "ko")
    assert fake.wait_idle()
    assert [r.outcome for r in fake.requests] == ["cut", "completed"]


def test_error_event_in_the_stream_is_retried_without_the_key(
    fake: FakeOpenAI, translator: OpenAITranslator, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenAI reports some failures after the 200 as an ``{"error": ...}`` event: a broken stream, retried."""
    text = "the second quarter looks better"
    fake.stream_error(after_chunks=2, message=f"The server had an error processing your request (key {SECRET})")
    with caplog.at_level(logging.INFO, logger="tongyeok_server"):
        chunks = collect(translator.translate(TranslationRequest(text, "en", "ko", session_id="s-test")))
    expected = fake_tokens(text, "ko")
    assert chunks[:2] == [TokenDelta(t) for t in expected[:2]]
    restart = chunks[2]
    assert isinstance(restart, TranslationRestart)
    # The caller hears the cause; the upstream's own words go to the log, without the key.
    assert restart.reason == "the translation stream broke off; retrying"
    (retry_line,) = [r.getMessage() for r in caplog.records if "retry 1 of" in r.getMessage()]
    assert retry_line.startswith("session s-test: ")
    assert "The server had an error processing your request" in retry_line
    assert_no_secret(retry_line)
    assert chunks[3:] == [TokenDelta(t) for t in expected]
    assert fake.wait_idle()
    assert [r.outcome for r in fake.requests] == ["stream error", "completed"]


def test_error_event_every_time_fails_after_the_retry_budget(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.stream_error(after_chunks=0, message="overloaded", times=None)
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("hello", "en", "ko")))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert info.value.message == "the translation stream broke off"
    assert "an error event: overloaded" in info.value.detail
    assert len(fake.requests) == 3


def test_malformed_event_counts_as_a_broken_stream(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.add_rule(Rule(cut_after=1, event="{not json"))
    chunks = collect(translator.translate(TranslationRequest("a b c", "en", "ko")))
    restarts = [c for c in chunks if isinstance(c, TranslationRestart)]
    assert len(restarts) == 1 and "broke off" in restarts[0].reason
    assert final_text(chunks) == fake_translation("a b c", "ko")
    assert len(fake.requests) == 2


def test_body_left_open_after_done_does_not_hold_the_translation(
    fake: FakeOpenAI, translator: OpenAITranslator
) -> None:
    """The rest of the body is waited for briefly (to reuse the connection), then the connection is dropped."""
    fake.add_rule(Rule(linger_s=3.0))
    start = time.monotonic()
    chunks = collect(translator.translate(TranslationRequest("one two three", "en", "ko")))
    assert time.monotonic() - start < 1.0
    assert chunks == [TokenDelta(t) for t in fake_tokens("one two three", "ko")]
    assert fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=2.0)
    assert len(fake.requests) == 1
    # The next sentence gets a new connection, and the one after reuses it.
    for _ in range(2):
        assert final_text(collect(translator.translate(TranslationRequest("four", "en", "ko")))) == "[ko] four"
    assert fake.wait_idle()
    assert fake.connections == 2


def test_sse_framing_line_ends_comments_and_multi_line_data(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    """Events framed with CRLF or CR, comments, other fields and multi-line data read as the SDK would read them."""
    fake.add_rule(
        Rule(
            raw_body=(
                ": keep-alive comment\r\n\r\n"
                'event: message\r\nid: 7\r\ndata: {"choices": [{"delta": {"content": "one"}}]}\r\n\r\n'
                'data: {"choices": [{"delta":\rdata: {"content": " two"}}]}\r\r'
                "retry: 100\n\n"
                'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
                "data: [DONE]\n\n"
            )
        )
    )
    assert collect(translator.translate(TranslationRequest("x", "en", "ko"))) == [TokenDelta("one"), TokenDelta(" two")]


def test_sse_splitting_does_not_depend_on_how_the_body_is_split() -> None:
    """Line endings LF, CRLF and CR, comments, other fields, multi-line data: split anywhere, even mid-CRLF."""
    body = (
        b": keep-alive comment\n\n"
        b'data: {"a": 1}\n\n'
        b'event: message\r\nid: 7\r\ndata:{"b":\r\ndata: 2}\r\n\r\n'
        b'data: {"c": 3}\r\r'
        b"retry: 100\n\n"  # no data: no event
        b"data: [DONE]\n\n"
        b'data: {"unfinished": true}\n'  # the body ends before the blank line: dropped
    )
    expected = ['{"a": 1}', '{"b":\n2}', '{"c": 3}', "[DONE]"]
    for i in range(len(body) + 1):
        for j in range(i, len(body) + 1):
            events = openai_sse.SSEEvents()
            got = [e for piece in (body[:i], body[i:j], body[j:]) for e in events.feed(piece)]
            assert got == expected, (i, j)


def test_cut_before_any_token_needs_no_restart(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.cut(after_chunks=0)
    chunks = collect(translator.translate(TranslationRequest("a b c", "en", "ko")))
    assert not any(isinstance(c, TranslationRestart) for c in chunks)
    assert final_text(chunks) == fake_translation("a b c", "ko")


def test_stall_mid_stream_times_out_and_is_retried(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    translator = make_translator(fake, monkeypatch, max_retries=1, timeout_s=0.3)
    fake.ttft_s = 1.0
    start = time.monotonic()
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("slow", "en", "ko")))
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "did not answer within 0.3 s" in info.value.message
    assert len(fake.requests) == 2
    assert time.monotonic() - start < 1.5


# -- permanent failures ----------------------------------------------------


@pytest.mark.parametrize(
    ("finish_reason", "code", "words"),
    [
        ("content_filter", grpc.StatusCode.INVALID_ARGUMENT, "content filter refused"),
        ("length", grpc.StatusCode.OUT_OF_RANGE, "cut at model 'gpt-test''s output limit"),
    ],
)
def test_an_answer_the_model_did_not_finish_fails_the_sentence_without_a_retry(
    fake: FakeOpenAI, translator: OpenAITranslator, finish_reason: str, code: grpc.StatusCode, words: str
) -> None:
    """Stopped by the content filter or the output limit: the partial text is not passed off as the translation."""
    text = "we would like to discuss the delivery schedule today"
    fake.add_rule(Rule(finish_reason=finish_reason, max_tokens=3, times=None))
    received: list[TranslationChunk] = []

    async def read() -> None:
        async for chunk in translator.translate(TranslationRequest(text, "en", "ko")):
            received.append(chunk)

    with pytest.raises(ServiceError) as info:
        run(read())
    assert info.value.code == code
    assert words in info.value.message
    assert received and all(isinstance(c, TokenDelta) for c in received)  # what came before the stop
    assert len(fake.requests) == 1  # the same sentence would get the same answer: no retry
    assert fake.wait_idle()
    assert fake.requests[0].outcome == "completed" and fake.connections == 1


def test_always_500_fails_after_the_retry_budget(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.fail(500, times=None, message="model overloaded")
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("hello", "en", "ko")))
    err = info.value
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert "HTTP 500" in err.message and "model overloaded" not in err.message
    assert f"127.0.0.1:{fake.port}: HTTP 500: model overloaded" == err.detail
    assert_no_secret(err.message)
    # 1 + openai_max_retries requests: the SDK's retries do not multiply ours.
    assert len(fake.requests) == 3


def test_always_cut_fails_after_restarts(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.cut(after_chunks=1, times=None)
    chunks: list[TranslationChunk] = []

    async def read() -> None:
        async for c in translator.translate(TranslationRequest("x y z", "en", "ko")):
            chunks.append(c)

    with pytest.raises(ServiceError) as info:
        run(read())
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert sum(isinstance(c, TranslationRestart) for c in chunks) == 2
    assert len(fake.requests) == 3


def test_wrong_key_is_not_retried_and_not_echoed(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.api_key = "the-right-key"
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("hello", "en", "ko")))
    err = info.value
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "HTTP 401" in err.message and "OPENAI_API_KEY" in err.message
    assert_no_secret(err.message)
    assert_no_secret(err.detail)
    assert_no_secret(repr(err))
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, grpc.StatusCode.INVALID_ARGUMENT), (404, grpc.StatusCode.FAILED_PRECONDITION)],
)
def test_client_errors_are_not_retried(
    fake: FakeOpenAI, translator: OpenAITranslator, status: int, code: grpc.StatusCode
) -> None:
    fake.fail(status, times=None, message=f"upstream says no; key {SECRET} was used")
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("hello", "en", "ko")))
    assert info.value.code == code
    assert f"HTTP {status}" in info.value.message
    assert "upstream says no" not in info.value.message
    assert "upstream says no" in info.value.detail
    assert_no_secret(info.value.message)
    assert_no_secret(info.value.detail)
    assert len(fake.requests) == 1


def test_retry_after_too_long_for_live_use_fails_at_once(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.fail(429, times=None, retry_after_s=60)
    start = time.monotonic()
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("hello", "en", "ko")))
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "60 s" in info.value.message
    assert len(fake.requests) == 1
    assert time.monotonic() - start < 1.0


def test_unreachable_server_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as gone:
        pass  # started and stopped: its port now refuses connections
    translator = make_translator(gone, monkeypatch, max_retries=1)
    with pytest.raises(ServiceError) as info:
        collect(translator.translate(TranslationRequest("hello", "en", "ko")))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert info.value.message == "could not reach the translation server"
    assert info.value.detail.startswith(f"127.0.0.1:{gone.port}: ")


# -- cancellation ----------------------------------------------------------


async def _read_until(
    stream: TranslationStream, stop: Callable[[list[TranslationChunk]], bool], *, delay: float = 0.0
) -> tuple[list[TranslationChunk], float]:
    """Iterate ``stream`` in a task, cancel that task once ``stop(received)`` (then after ``delay``).

    Returns the chunks received and when the cancel was called. The task is
    what a session's lane is: cancelling it must close the HTTP stream.
    """
    received: list[TranslationChunk] = []
    ready = asyncio.Event()

    async def consume() -> None:
        if stop(received):
            ready.set()
        async for chunk in stream:
            received.append(chunk)
            if stop(received):
                ready.set()

    task = asyncio.create_task(consume())
    await ready.wait()
    await asyncio.sleep(delay)
    called = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return received, called


def test_cancel_mid_stream_closes_the_http_stream(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.tokens_per_s = 2  # one token every 0.5 s: without a real close the reader would wait for the next
    stream = translator.translate(TranslationRequest("a b c d e f g h", "en", "ko"))
    received, called = run(_read_until(stream, lambda got: len(got) == 1))
    assert time.monotonic() - called < 0.4
    assert len(received) == 1, received  # the next token was 0.5 s away
    assert fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=2.0)
    (req,) = fake.requests
    assert req.outcome == "disconnected"
    # The server saw the disconnect promptly, not when it next wrote.
    assert req.ended_at - called < 0.45


def test_cancel_before_the_first_token_is_prompt(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.ttft_s = 5.0
    stream = translator.translate(TranslationRequest("hello", "en", "ko"))
    received, called = run(_read_until(stream, lambda got: True, delay=0.2))
    assert received == []
    assert time.monotonic() - called < 0.5
    assert fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=1.0)


def test_cancel_while_waiting_for_headers_closes_the_connection_at_once(
    fake: FakeOpenAI, translator: OpenAITranslator
) -> None:
    """A server that sends nothing, not even headers, until the model starts: the cancel does not wait for it."""
    fake.headers_delay_s = 5.0
    stream = translator.translate(TranslationRequest("hello", "en", "ko"))
    received, called = run(_read_until(stream, lambda got: True, delay=0.3))
    assert received == []
    assert time.monotonic() - called < 0.4
    assert fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=2.0)
    (req,) = fake.requests
    assert req.outcome == "disconnected"
    assert req.ended_at - called < 0.45  # seen by the server now, not in 5 s


def test_aclose_after_the_first_token_closes_the_http_stream(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    """A consumer that stops iterating and closes the stream (no task cancelled) closes the request too."""
    fake.tokens_per_s = 2

    async def first_then_close() -> float:
        stream = translator.translate(TranslationRequest("a b c d e f g h", "en", "ko"))
        async for chunk in stream:
            assert isinstance(chunk, TokenDelta)
            break
        left = time.monotonic()
        await stream.aclose()
        return left

    left = run(first_then_close())
    assert fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=2.0)
    assert fake.requests[0].ended_at - left < 0.45


def test_cancel_during_backoff_is_prompt(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.fail(503, times=None, retry_after_s=5)
    stream = translator.translate(TranslationRequest("hello", "en", "ko"))
    start = time.monotonic()
    received, _ = run(_read_until(stream, lambda got: True, delay=0.3))
    assert received == []
    assert time.monotonic() - start < 1.0
    assert len(fake.requests) == 1


def test_a_stream_never_iterated_sends_nothing(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    """Starting a translation is free until it is read: a stale one dropped early costs no request."""
    run(translator.translate(TranslationRequest("hello", "en", "ko")).aclose())
    assert fake.requests == []


def test_stale_partial_translations_are_cancelled_cheaply(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    """As a simultaneous interpreter would: translate a growing sentence, cancelling each stale request."""
    fake.ttft_s, fake.tokens_per_s = 0.2, 50
    words = ["we", "would", "like", "to", "discuss", "the", "delivery", "schedule", "today"]

    async def grow() -> list[TranslationChunk]:
        task: asyncio.Task[list[TranslationChunk]] | None = None
        for n in range(1, len(words) + 1):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            stream = translator.translate(TranslationRequest(" ".join(words[:n]), "en", "ko"))
            task = asyncio.create_task(_collect(stream))
            await asyncio.sleep(0.02)
        assert task is not None
        return await task

    chunks = run(grow())
    assert final_text(chunks) == fake_translation(" ".join(words), "ko")
    assert fake.wait_idle()
    outcomes = [r.outcome for r in fake.requests]
    assert outcomes[-1] == "completed" and set(outcomes[:-1]) <= {"disconnected"}, outcomes


# -- concurrency -----------------------------------------------------------


def test_concurrent_translations_run_in_parallel(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    fake.ttft_s, fake.tokens_per_s = 0.3, 20
    n = 12
    texts = [f"sentence number {i} for the meeting" for i in range(n)]
    targets = ["ko", "en", "ja", "es"]

    async def all_of_them() -> list[list[TranslationChunk]]:
        streams = []
        for i in range(n):
            target = targets[i % len(targets)]
            source = "en" if target != "en" else "ko"
            streams.append(_collect(translator.translate(TranslationRequest(texts[i], source, target))))
        return await asyncio.gather(*streams)

    start = time.monotonic()
    results = run(all_of_them())
    elapsed = time.monotonic() - start
    one = 0.3 + len(fake_tokens(texts[0], "ko")) / 20
    for i in range(n):
        assert final_text(results[i]) == fake_translation(texts[i], targets[i % len(targets)])
    assert fake.max_active == n
    assert elapsed < 2 * one, f"{n} translations took {elapsed:.2f} s; one takes {one:.2f} s"


def test_many_concurrent_streams_half_cancelled_share_one_client(
    fake: FakeOpenAI, translator: OpenAITranslator
) -> None:
    """Cancels racing readers on a shared connection pool: no errors, no leaks, the pool still works."""
    fake.ttft_s, fake.tokens_per_s = 0.05, 30
    n = 40

    async def one(i: int) -> str:
        stream = translator.translate(TranslationRequest(f"w{i} a b c d e f g h", "en", "ko"))
        if i % 4 == 3:  # in flight for sure: cancelled at its first token
            received, _ = await _read_until(stream, lambda got: len(got) == 1)
            return final_text(received)
        task = asyncio.create_task(_collect(stream))
        if i % 4 == 1:  # at any point, perhaps before the request is out
            await asyncio.sleep(0.05 + 0.3 * i / n)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return ""
        return final_text(await task)

    async def every() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(n)))

    outputs = run(every())
    for i in range(0, n, 2):
        assert outputs[i] == fake_translation(f"w{i} a b c d e f g h", "ko")
    for i in range(1, n, 2):
        assert fake_translation(f"w{i} a b c d e f g h", "ko").startswith(outputs[i])  # a prefix, then stopped
    assert fake.wait_idle()
    outcomes = [r.outcome for r in fake.requests]
    assert outcomes.count("completed") >= n // 2
    assert set(outcomes) <= {"completed", "disconnected"}
    assert outcomes.count("disconnected") >= n // 4
    assert translate(translator, "still works") == "[ko] works still"


def test_close_fails_the_running_translations_and_closes_their_streams(
    fake: FakeOpenAI, translator: OpenAITranslator
) -> None:
    """A translation cut by ``close()`` fails with UNAVAILABLE (never taken for a whole text); its consumer lives on."""
    fake.tokens_per_s = 2

    async def close_while_streaming() -> tuple[list[TranslationChunk], BaseException | None, bool]:
        received: list[TranslationChunk] = []
        stream = translator.translate(TranslationRequest("a b c d e f g h", "en", "ko"))

        async def consume() -> BaseException | None:
            try:
                async for chunk in stream:
                    received.append(chunk)
            except ServiceError as error:
                return error
            return None

        task = asyncio.create_task(consume())
        while not received:
            await asyncio.sleep(0.01)
        await translator.close()
        error = await asyncio.wait_for(task, 2.0)
        return received, error, task.cancelled()

    received, error, cancelled = run(close_while_streaming())
    assert not cancelled, "the engine's own cancel must not leak into its consumer's task"
    assert isinstance(error, ServiceError) and error.code == grpc.StatusCode.UNAVAILABLE
    assert "shut down" in error.message
    assert fake_translation("a b c d e f g h", "ko").startswith(final_text(received))
    assert fake.wait_for(lambda f: len(f.disconnects) == 1, timeout=2.0)
    with pytest.raises(ServiceError) as info:
        translate(translator, "too late")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    run(translator.close())  # idempotent
    assert len(fake.requests) == 1


def test_translations_start_no_thread(fake: FakeOpenAI, translator: OpenAITranslator) -> None:
    """The engine has no loop or thread of its own: translations run on the caller's loop."""
    before = {t.ident for t in threading.enumerate()}

    async def several() -> list[list[TranslationChunk]]:
        return await asyncio.gather(
            *(_collect(translator.translate(TranslationRequest(f"s {i}", "en", "ko"))) for i in range(8))
        )

    results = run(several())
    assert [final_text(r) for r in results] == [fake_translation(f"s {i}", "ko") for i in range(8)]
    # Host names are resolved on the loop's default executor (asyncio_N) and the fake serves each
    # connection on a thread of its own; nothing else.
    started = [t.name for t in threading.enumerate() if t.ident not in before]
    assert [n for n in started if not n.startswith("asyncio_") and "process_request_thread" not in n] == []


# -- construction ----------------------------------------------------------


def test_missing_key_fails_at_startup_saying_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(StartError) as info:
        openai_engine.create(TranslationSettings(translator="openai"), OpenAISettings())
    message = str(info.value)
    assert "OPENAI_API_KEY is not set" in message
    assert "--openai-base-url" in message


def test_description_and_languages(translator: OpenAITranslator, fake: FakeOpenAI) -> None:
    d = translator.description
    assert d.name == "openai"
    assert d.detail == "model gpt-test"  # callers see it: not the server's address
    assert_no_secret(d.detail)
    for pair in [("ko", "en"), ("en", "ko"), ("en", "es"), ("ja", "zh"), ("fr", "de")]:
        assert pair in translator.language_pairs()
        assert translator.supports(*pair)
    assert translator.supports("ko-KR", "en-US")
    assert translator.supports("zh-Hant-TW", "en")
    assert not translator.supports("en", "en-GB")
    assert not translator.supports("tlh", "en")
    assert translator.ignored_options(TranslationOptions(glossary=(GlossaryTerm("X"),))) == []


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI) -> None:
    """OPENAI_BASE_URL reaches the client through settings.from_args."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = from_args(["--translator", "openai"], {"OPENAI_BASE_URL": fake.base_url})
    translator = openai_engine.create(settings.translation, settings.openai)
    _made.append(translator)
    assert translate(translator, "hi") == "[ko] hi"
    assert len(fake.requests) == 1


def test_fake_runs_as_its_own_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark starts the fake as ``python -m tests.support.fake_openai``."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_openai", "--port", "0", "--ttft-ms", "50", "--tokens-per-s", "100"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake OpenAI listening on http://127.0.0.1:"), line
        base_url = line.split()[-1]

        class Remote:
            pass

        remote: Any = Remote()
        remote.base_url = base_url
        translator = make_translator(remote, monkeypatch)
        assert translate(translator, "over the wire") == fake_translation("over the wire", "ko")
    finally:
        proc.terminate()
        proc.wait(5)
