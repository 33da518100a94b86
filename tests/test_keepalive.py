"""Keepalive on real sockets: a dead peer is noticed, clients that ping at the allowed rate are welcome."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest

from tests.support.calls import config
from tests.support.tcp_proxy import proxy_to
from tests.support.waiting import wait_until
from tongyeok_client.channel import KEEPALIVE_OPTIONS
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.auth.server_security import keepalive_options
from tongyeok_server.settings import Settings


def quiet_stream(stub: pb_grpc.InterpreterStub, seconds: float) -> grpc.StatusCode:
    """An Interpret stream that sends its config and then nothing for ``seconds``; how it ended."""
    done = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config()
        done.wait(seconds)

    call = stub.Interpret(requests(), timeout=seconds + 30)
    try:
        for _ in call:
            pass
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_our_clients_ping_rate_is_one_the_server_accepts() -> None:
    client = dict(KEEPALIVE_OPTIONS)
    server = dict(keepalive_options(Settings().server, Settings().session.max_stream_duration_s))
    assert client["grpc.keepalive_time_ms"] >= server["grpc.http2.min_ping_interval_without_data_ms"]
    # And a connection asked to go (rebalancing) lets the longest stream finish first.
    assert server["grpc.max_connection_age_grace_ms"] > Settings().session.max_stream_duration_s * 1000


@pytest.mark.parametrize(("ping_ms", "expected"), [(3500, grpc.StatusCode.OK), (1000, grpc.StatusCode.UNAVAILABLE)])
def test_pings_within_the_allowed_rate_are_welcome_faster_ones_are_too_many(
    server_factory, ping_ms: int, expected: grpc.StatusCode
) -> None:
    """Scaled down: the server accepts a ping every 3 s; a client at 3.5 s is fine, one at 1 s is sent away.

    (gRPC's client never pings more often than once a second, whatever it is told.)
    """
    server = server_factory(min_client_ping_interval_s=3.0, idle_timeout_s=0)
    options = [
        ("grpc.keepalive_time_ms", ping_ms),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel:
        # The config is all the data there is: then only pings cross the connection.
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        code = quiet_stream(stub, seconds=8.0)
    if expected == grpc.StatusCode.OK:
        assert code == grpc.StatusCode.OK  # half-closed after 8 s, ended normally
    else:
        assert code == grpc.StatusCode.UNAVAILABLE  # GOAWAY too_many_pings


def test_a_silent_dead_peer_is_noticed_and_its_session_released(server_factory) -> None:
    """The phone's network goes away without a FIN (a lift): server pings go unanswered, the stream ends."""
    server = server_factory(keepalive_time_s=0.5, keepalive_timeout_s=0.5, idle_timeout_s=0)
    # The client does not ping: only the server can notice.
    with (
        proxy_to(server.port) as proxy,
        grpc.insecure_channel(f"127.0.0.1:{proxy.port}", options=[("grpc.keepalive_time_ms", 2**31 - 1)]) as ch,
    ):
        stub = pb_grpc.InterpreterStub(ch)  # type: ignore[no-untyped-call]
        release = threading.Event()

        def requests() -> Iterator[pb.InterpretRequest]:
            yield config()
            release.wait(30)

        call = stub.Interpret(requests(), timeout=60)
        assert next(iter(call)).WhichOneof("event") == "session_started"
        assert server.interpret.open_streams == 1
        proxy.stall()
        # keepalive_time + keepalive_timeout is 1 s; the bound is loose for a busy machine.
        assert wait_until(lambda: server.interpret.open_streams == 0, 20), "the dead peer's session is still open"
        release.set()
        call.cancel()
