"""A caller vouched for by another process (a WebSocket's resume relayed to the session's owner): what it may not do.

The vouch itself (``api/relayed_callers.py``): it carries the caller whole,
opens once, only where it was sent, within its time, and nothing forged or
sealed under another key opens. Then a server with API keys, as the owner of
a session, reached over gRPC with a vouch the test makes with the server's
secret (as another process of the deployment would): it resumes that
session, and nothing else (no new session, no other session, no other
method, not for a revoked key). The relay between two real processes is in
``tests/test_resume_deploy.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import stub_for
from tests.support.fake_speech import FakeSpeech
from tests.test_resume import CHUNK, on_the_fake, resumable_config
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import relayed_callers
from tongyeok_server.api.relayed_callers import RELAYED_CALLER_HEADER, RelayedCallers
from tongyeok_server.app import TongyeokServer
from tongyeok_server.auth.api_keys import hash_key, new_key
from tongyeok_server.auth.authenticator import Refusal
from tongyeok_server.auth.caller import Caller, CallerKind, Quota, Scope
from tongyeok_server.auth.single_use import SingleUse
from tongyeok_server.gateway.tickets import StreamTickets
from tongyeok_server.session.resume_token import new_secret

HERE = "127.0.0.1:7001"  # the advertise address of the server under test (nothing listens there)
CALLER = Caller(
    "key:traveller",
    CallerKind.API_KEY,
    frozenset({Scope.INTERPRET, Scope.TRANSCRIPTS}),
    Quota(3, 10, 1.5, None),
    credential="sha256:abc",
    legacy_id="",
)


def header(value: str) -> list[tuple[str, str]]:
    return [(RELAYED_CALLER_HEADER, value)]


def refused(relays: RelayedCallers, value: str) -> str:
    with pytest.raises(Refusal) as info:
        relays.caller(header(value))
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    return info.value.message


def test_a_vouch_carries_the_caller_once_only_where_it_was_sent_and_only_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret()
    relays = RelayedCallers(secret, (HERE, "unix:/run/p0.sock"))
    assert relays.caller([("authorization", "Bearer x")]) is None  # no vouch: the call authenticates as usual

    value = relays.vouch(CALLER, HERE, "s-1")
    caller = relays.caller(header(value))
    assert caller == Caller(
        CALLER.id, CALLER.kind, CALLER.scopes, CALLER.quota, credential="sha256:abc", relayed_for="s-1"
    )
    assert "already used" in refused(relays, value)  # replay

    assert "another server" in refused(relays, relays.vouch(CALLER, "127.0.0.1:7002", "s-1"))
    assert relays.caller(header(relays.vouch(CALLER, "unix:/run/p0.sock", "s-1"))) is not None

    altered = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    assert "forged or altered" in refused(relays, altered)
    assert "forged or altered" in refused(relays, RelayedCallers(new_secret(), (HERE,)).vouch(CALLER, HERE, "s-1"))
    ticket = StreamTickets(secret, SingleUse("ticket", 90)).mint(CALLER, "").value  # same secret, another key
    assert "forged or altered" in refused(relays, ticket)

    monkeypatch.setattr(relayed_callers, "TTL_S", -1.0)
    assert "expired" in refused(relays, relays.vouch(CALLER, HERE, "s-1"))
    with pytest.raises(Refusal):
        relays.caller([*header(value), *header(value)])


def test_processes_of_one_supervisor_take_a_vouch_once_between_them(tmp_path: Path) -> None:
    secret = new_secret()
    first, second = (RelayedCallers(secret, (HERE,), str(tmp_path)) for _ in range(2))
    value = first.vouch(CALLER, HERE, "s-1")
    assert first.caller(header(value)) is not None
    assert "already used" in refused(second, value)


# -- the owner of a session, reached with a vouch -------------------------------------------------------


@pytest.fixture
def owner(
    server_factory: Callable[..., TongyeokServer], speech_fake: FakeSpeech, tmp_path: Path
) -> Iterator[tuple[TongyeokServer, str, Path]]:
    key = new_key()
    keys = tmp_path / "keys"
    keys.write_text(f"traveller {hash_key(key)} interpret\n")
    server = on_the_fake(server_factory, speech_fake, resume_window_s=60.0, api_keys=str(keys), advertise_address=HERE)
    yield server, key, keys


def _call(stub: Any, requests: list[pb.InterpretRequest], metadata: list[tuple[str, str]]) -> Any:
    stop = threading.Event()

    def feed() -> Iterator[pb.InterpretRequest]:
        yield from requests
        while not stop.wait(0.05):
            yield pb.InterpretRequest(audio=bytes(CHUNK))

    call = stub.Interpret(feed(), timeout=30, metadata=metadata)
    call.stop = stop
    return call


def _first(stub: Any, requests: list[pb.InterpretRequest], metadata: list[tuple[str, str]]) -> Any:
    """The stream's first event, or its error."""
    call = _call(stub, requests, metadata)
    try:
        return next(iter(call))
    except grpc.RpcError as error:
        return error
    finally:
        call.stop.set()
        call.cancel()


def test_the_owner_lets_a_vouched_caller_resume_its_session_and_nothing_else(owner) -> None:
    server, key, keys = owner
    assert server.security.authenticator is not None
    caller = server.security.authenticator.authenticate([("authorization", f"Bearer {key}")])
    relays = server.resumption.relays
    channel, stub = stub_for(server)
    with channel:
        call = _call(stub, [resumable_config()], [("authorization", f"Bearer {key}")])
        started = next(iter(call)).session_started
        call.stop.set()
        call.cancel()  # the stream breaks; the session waits for a resume
        resume = pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=started.resume_token))

        def vouched(session_id: str = started.session_id) -> list[tuple[str, str]]:
            return header(relays.vouch(caller, HERE, session_id))

        new_session = _first(stub, [resumable_config()], vouched())
        assert new_session.code() == grpc.StatusCode.PERMISSION_DENIED and "may only resume" in new_session.details()
        other_session = _first(stub, [resume], vouched("another-session"))
        assert other_session.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only the session it was relayed for" in other_session.details()
        with pytest.raises(grpc.RpcError) as other_method:
            stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10, metadata=vouched())
        assert other_method.value.code() == grpc.StatusCode.UNAUTHENTICATED  # a vouch opens Interpret only

        resumed = _first(stub, [resume], vouched())
        assert resumed.WhichOneof("event") == "session_resumed", resumed
        assert resumed.session_resumed.session_id == started.session_id

        keys.write_text("")  # the key is revoked: a vouch made before for it is refused as the key would be
        server.security.reload()
        revoked = _first(stub, [resume], vouched())
        assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in revoked.details()
