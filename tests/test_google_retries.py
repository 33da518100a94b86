"""A Google stream's failure accounting on its own: what follows each failed call, and what the caller is told."""

from __future__ import annotations

import asyncio

import grpc

from tongyeok_server.errors import ServiceError
from tongyeok_server.google.status import PLUGIN_FAILED, from_status
from tongyeok_server.recognition.base import RecognitionEvent, RecognizerNotice, RecognizerNoticeKind
from tongyeok_server.recognition.google_call import StreamPolicy
from tongyeok_server.recognition.google_retries import RetryBudget

FAST = StreamPolicy(max_retries=3, backoff_initial_s=0.001, backoff_max_s=0.002, quota_backoff_initial_s=0.003)
LANGS = ("ko-KR",)
UNAVAILABLE = from_status(grpc.StatusCode.UNAVAILABLE, "connection reset", LANGS)
LIMIT = from_status(grpc.StatusCode.OUT_OF_RANGE, "stream duration", LANGS)
DENIED = from_status(grpc.StatusCode.PERMISSION_DENIED, "project 1234 denied", LANGS)


def budget(policy: StreamPolicy = FAST) -> tuple[RetryBudget, list[RecognitionEvent]]:
    events: list[RecognitionEvent] = []
    return RetryBudget(policy, "session s1", events.append), events


def kinds(events: list[RecognitionEvent]) -> list[RecognizerNoticeKind]:
    return [e.kind for e in events if isinstance(e, RecognizerNotice)]


def test_retries_back_off_and_tell_the_caller_until_the_budget_is_spent() -> None:
    retries, events = budget()

    async def scenario() -> list[ServiceError | None]:
        return [await retries.recover(UNAVAILABLE, False, 1.5) for _ in range(FAST.max_retries + 1)]

    outcomes = asyncio.run(scenario())
    assert outcomes[:-1] == [None] * FAST.max_retries
    ending = outcomes[-1]
    assert ending is not None and ending.code is grpc.StatusCode.UNAVAILABLE
    assert f"after {FAST.max_retries} retries" in ending.message
    assert "connection reset" not in ending.message  # Google's words go to the log only
    assert kinds(events) == [RecognizerNoticeKind.RETRYING] * FAST.max_retries
    assert retries.retries == FAST.max_retries
    first = events[0]
    assert (
        isinstance(first, RecognizerNotice)
        and "attempt 1 of 3" in first.message
        and "no audio is lost" in first.message
    )


def test_a_result_or_a_planned_call_resets_the_count() -> None:
    retries, _ = budget()

    async def scenario() -> None:
        for _ in range(FAST.max_retries):
            assert await retries.recover(UNAVAILABLE, False, 0.0) is None
        retries.succeeded()  # a call ended as planned
        for _ in range(FAST.max_retries):
            assert await retries.recover(UNAVAILABLE, False, 0.0) is None
        # This call brought results before it failed: it counts as the first failure again.
        assert await retries.recover(UNAVAILABLE, True, 0.0) is None
        assert retries.failures == 1

    asyncio.run(scenario())


def test_google_s_stream_limit_renews_at_once_and_is_no_failure_after_results() -> None:
    retries, events = budget()

    async def scenario() -> None:
        for _ in range(FAST.max_retries * 2):
            assert await retries.recover(LIMIT, True, 2.25) is None

    asyncio.run(scenario())
    assert retries.failures == 0 and retries.retries == 0 and retries.restarts == FAST.max_retries * 2
    assert kinds(events) == [RecognizerNoticeKind.RESTARTED] * FAST.max_retries * 2
    notice = events[0]
    assert isinstance(notice, RecognizerNotice) and "2.2 s of audio resent" in notice.message


def test_a_limit_without_results_counts_and_a_refusal_ends_at_once() -> None:
    retries, events = budget()

    async def limits() -> ServiceError | None:
        outcome = None
        for _ in range(FAST.max_retries + 1):
            outcome = await retries.recover(LIMIT, False, 0.0)
        return outcome

    assert asyncio.run(limits()) is not None  # Google keeps ending its streams before any result
    assert retries.retries == 0  # renewed at once each time, no back-off

    refused, events = budget()
    ending = asyncio.run(refused.recover(DENIED, False, 0.0))
    assert ending is not None and ending.code is grpc.StatusCode.PERMISSION_DENIED
    assert "still after" not in ending.message and "1234" not in ending.message
    assert events == []


def test_a_credential_failure_is_rechecked_at_once_then_backed_off() -> None:
    plugin = from_status(grpc.StatusCode.UNAVAILABLE, f"{PLUGIN_FAILED}: RefreshError(...)", LANGS)
    retries, events = budget()

    async def scenario() -> None:
        assert await retries.recover(plugin, False, 0.0) is None
        assert retries.retries == 0 and events == []  # the next call renews the credential itself
        assert await retries.recover(plugin, False, 0.0) is None
        assert retries.retries == 1

    asyncio.run(scenario())
    assert kinds(events) == [RecognizerNoticeKind.RETRYING]


def test_google_s_quota_waits_longer() -> None:
    quota = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", LANGS)
    policy = StreamPolicy(backoff_initial_s=0.001, backoff_max_s=0.001, quota_backoff_initial_s=0.2)
    retries, events = budget(policy)
    assert asyncio.run(retries.recover(quota, False, 0.0)) is None
    notice = events[0]
    # 0.2 s +-20 %: the quota's back-off, not the outage's 1 ms.
    assert isinstance(notice, RecognizerNotice) and "retrying in 0.2 s" in notice.message
