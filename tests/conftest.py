"""Shared fixtures: servers on real ports with real engines, and test speech."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from tests.support import server_loop
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.speech import Speech, synthesize
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.app import TongyeokServer
from tongyeok_server.settings import Settings

# Short, common sentences: what a business traveller says, in words the
# CMU model and the eng-spa pair both know.
SENTENCES = [
    "Good morning everyone.",
    "We would like to discuss the contract today.",
    "The delivery date is next Friday.",
    "Thank you for your time.",
]


@pytest.fixture(scope="session", autouse=True)
def _private_data_home() -> Iterator[None]:
    """Servers the tests start as processes keep their default meeting record here, never in the user's home."""
    with tempfile.TemporaryDirectory(prefix="tongyeok-tests-data-") as home, pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", home)
        yield


@pytest.fixture
def speech_fake() -> Iterator[FakeSpeech]:
    """The fake Google Speech-to-Text, for the test (a module may override it with its own)."""
    with FakeSpeech() as fake:
        yield fake


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    """The fake OpenAI server, for the test (a module may override it with its own)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="session")
def speech() -> Speech:
    """Four sentences of synthesised English with pauses between them, 16 kHz mono."""
    return synthesize(SENTENCES)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the whole test run (each test makes its own database)."""
    with postgres_server() as server:
        yield server


@contextlib.contextmanager
def running_server(**overrides: Any) -> Iterator[TongyeokServer]:
    """A TongyeokServer on a free local port, on a loop thread of its own; engines and settings as overridden.

    ``recognizer=`` / ``translator=`` may be engine objects (used as they
    are) or names; ``extensions=`` a list of ``SessionExtension``s; other
    keywords are settings by name (``Settings.of``).
    """
    recognizer = overrides.pop("recognizer", None)
    translator = overrides.pop("translator", None)
    extensions = overrides.pop("extensions", None)
    # The meeting record is on by default (SQLite): in a directory of the test's own, never the user's.
    data_dir = tempfile.TemporaryDirectory(prefix="tongyeok-data-")
    # pocketsphinx, not the server's default (Whisper): ~100 MB a worker and no model load; the Whisper
    # tests have their own shared server (whisper_server).
    defaults = {
        "host": "127.0.0.1",
        "port": 0,
        "recognizer": "pocketsphinx",
        "offline_workers": 2,
        "grace_period_s": 5.0,
        "data_dir": data_dir.name,
    }
    settings = Settings.of(**{**defaults, **overrides})
    if isinstance(recognizer, str):
        settings = settings.replace(recognizer=recognizer)
        recognizer = None
    if isinstance(translator, str):
        settings = settings.replace(translator=translator)
        translator = None
    with data_dir:
        server = TongyeokServer(settings, recognizer=recognizer, translator=translator, extensions=extensions)
        server_loop.start(server)
        try:
            yield server
        finally:
            server_loop.stop(server, 2.0)


@pytest.fixture(scope="session")
def offline_server() -> Iterator[TongyeokServer]:
    """The embedded engines (pocketsphinx + Apertium), shared by the tests that only read from it."""
    with running_server() as server:
        yield server


@pytest.fixture(scope="session")
def whisper_server() -> Iterator[TongyeokServer]:
    """Whisper + Apertium, one worker process, shared by every Whisper test (a model load is seconds)."""
    with running_server(recognizer="whisper", offline_workers=1, whisper_streams_per_worker=2) as server:
        yield server


@pytest.fixture
def server_factory() -> Iterator[Callable[..., TongyeokServer]]:
    """Start servers with custom engines or settings; all stopped at the end of the test."""
    stack = contextlib.ExitStack()
    with stack:
        yield lambda **overrides: stack.enter_context(running_server(**overrides))


def stub_for(server: TongyeokServer) -> tuple[grpc.Channel, pb_grpc.InterpreterStub]:
    """A channel and stub to ``server``."""
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return channel, pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
def offline_stub(offline_server: TongyeokServer) -> Iterator[pb_grpc.InterpreterStub]:
    """A stub to the shared embedded-engine server."""
    channel, stub = stub_for(offline_server)
    with channel:
        yield stub


def non_pool_threads() -> list[str]:
    """Names of live threads other than the long-lived pools' idle workers."""
    return sorted(
        t.name for t in threading.enumerate() if not t.name.startswith(("offload", "translate", "ThreadPool"))
    )


def threads_started_since(before: list[str]) -> list[str]:
    """Threads alive now that were not in ``before`` (a snapshot of :func:`non_pool_threads`).

    Threads that were alive in ``before`` and ended since (another test's leftovers winding
    down) do not count: only a thread this test started and left running is a leak.
    """
    return sorted((Counter(non_pool_threads()) - Counter(before)).elements())
