"""SessionRegistry on its own: a broken stream's session waits its window, then is finished and released."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc

from tongyeok_server.errors import ServiceError
from tongyeok_server.session.registry import Managed, SessionRegistry


@dataclass
class _Log:
    wakes: int = 0

    def wake(self) -> None:
        self.wakes += 1


@dataclass
class FakeSession:
    """What the registry uses of a session: its end, whether the caller is away, finishing with an error."""

    id: str
    ended: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    outcome: str = "open"
    away: list[bool] = field(default_factory=list)
    finished_with: ServiceError | None = None
    last_audio_at: float = 0.0
    log: _Log = field(default_factory=_Log)

    def caller_away(self, away: bool) -> None:
        self.away.append(away)

    def finish_with(self, error: ServiceError) -> None:
        # The last sentence is finalised and translated on the loop, then the session ends.
        self.finished_with = error
        asyncio.get_running_loop().call_soon(self.ended.set_result, None)


def registry(window_s: float) -> tuple[SessionRegistry, list[str]]:
    released: list[str] = []
    return SessionRegistry(window_s, lambda managed: released.append(managed.session.id)), released


def add(sessions: SessionRegistry, session_id: str, resumable: bool = True) -> tuple[Managed, FakeSession]:
    session = FakeSession(session_id)
    return sessions.add(session, resumable), session  # type: ignore[arg-type]


def test_a_session_not_resumed_within_its_window_is_finished_then_released() -> None:
    async def scenario() -> None:
        sessions, released = registry(0.05)
        managed, session = add(sessions, "s1")
        attachment = sessions.attach(managed, "peer-1")
        sessions.stream_ended(managed, attachment, delivered_end=False)
        assert session.away == [True] and "s1" in sessions and not released
        await asyncio.sleep(0.2)
        assert session.finished_with is not None
        assert session.finished_with.code is grpc.StatusCode.NOT_FOUND
        assert "resume window of 0.05 s" in session.finished_with.message
        assert session.outcome == "expired" and session.away == [True, False]
        assert released == ["s1"] and "s1" not in sessions
        assert sessions.why_ended("s1")[0] == "expired"  # type: ignore[index]

    asyncio.run(scenario())


def test_a_resume_within_the_window_keeps_it_and_cancels_the_expiry() -> None:
    async def scenario() -> None:
        sessions, released = registry(0.05)
        managed, session = add(sessions, "s1")
        sessions.stream_ended(managed, sessions.attach(managed, "peer-1"), delivered_end=False)
        sessions.attach(managed, "peer-2")  # the caller came back
        await asyncio.sleep(0.2)
        assert session.finished_with is None and not released and managed.resumes == 1
        assert managed.expiry is None and session.away == [True, False]

    asyncio.run(scenario())


def test_a_second_stream_supersedes_the_first_which_then_changes_nothing() -> None:
    async def scenario() -> None:
        sessions, released = registry(60)
        managed, session = add(sessions, "s1")
        first = sessions.attach(managed, "peer-1")
        second = sessions.attach(managed, "peer-2")
        assert first.superseded.is_set() and session.log.wakes == 1
        sessions.stream_ended(managed, first, delivered_end=False)  # the old stream's end is not the session's
        assert managed.attachment is second and managed.expiry is None and not released

    asyncio.run(scenario())


def test_without_resumption_or_after_its_end_a_session_is_released_with_its_stream() -> None:
    async def scenario() -> None:
        sessions, released = registry(60)
        plain, _ = add(sessions, "plain", resumable=False)
        sessions.stream_ended(plain, sessions.attach(plain, "p"), delivered_end=False)
        finished, _ = add(sessions, "finished")
        sessions.stream_ended(finished, sessions.attach(finished, "p"), delivered_end=True)
        assert released == ["plain", "finished"] and len(sessions) == 0
        no_window = SessionRegistry(0, lambda m: None)
        managed: Any = no_window.add(FakeSession("w"), True)  # type: ignore[arg-type]
        assert managed.resumable is False  # a window of 0 turns resumption off

    asyncio.run(scenario())


def test_a_detached_session_that_ends_by_itself_waits_out_its_window_for_a_resume() -> None:
    async def scenario() -> None:
        sessions, released = registry(0.1)
        managed, session = add(sessions, "s1")
        sessions.stream_ended(managed, sessions.attach(managed, "p"), delivered_end=False)
        session.outcome = "ok"
        session.ended.set_result(None)  # its last sentence finished while the caller was away
        await asyncio.sleep(0.01)
        assert not released, "a resume may still fetch its end"
        await asyncio.sleep(0.2)
        assert released == ["s1"] and session.finished_with is None
        assert sessions.why_ended("s1")[0] == "ok"  # type: ignore[index]

    asyncio.run(scenario())
