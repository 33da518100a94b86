"""TLS and mutual TLS on a real port with generated certificates; certificates rotate without a restart."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.calls import audio_requests, config
from tests.support.certs import TestCA, serial_of
from tests.support.speech import Speech
from tests.support.waiting import wait_until
from tongyeok_client import InterpreterClient, TongyeokError
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.errors import StartError
from tongyeok_server.settings import SettingsError


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = TestCA(tmp_path / "pki", "test-ca")
    other = TestCA(tmp_path / "pki", "other-ca")
    server = ca.issue("server", file_stem="server")
    rotated = ca.issue("server", file_stem="server-rotated")
    client = ca.issue("phone-backend", client=True)
    stranger = other.issue("stranger", client=True)
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(server.cert, live / "tls.crt")
    shutil.copy(server.key, live / "tls.key")
    return {
        "ca": ca.cert,
        "cert": live / "tls.crt",
        "key": live / "tls.key",
        "rotated_cert": rotated.cert,
        "rotated_key": rotated.key,
        "client_cert": client.cert,
        "client_key": client.key,
        "stranger_cert": stranger.cert,
        "stranger_key": stranger.key,
        "other_ca": other.cert,
    }


def served_serial(port: int, ca: Path) -> int:
    """The serial of the certificate a new TLS connection to ``port`` is shown."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of(ssl.DER_cert_to_PEM_cert(der).encode())


def languages(port: int, **client: object) -> str:
    with InterpreterClient(f"127.0.0.1:{port}", timeout=10, **client) as c:  # type: ignore[arg-type]
        return c.list_languages().recognizer.name


def test_tls_serves_callers_that_trust_the_ca_and_refuses_plaintext(server_factory, pki) -> None:
    server = server_factory(tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    assert languages(server.port, ca_file=pki["ca"]) == "pocketsphinx"
    with pytest.raises(TongyeokError) as plaintext:
        languages(server.port)
    assert plaintext.value.code == grpc.StatusCode.UNAVAILABLE
    # A caller that does not trust the CA (system roots) is refused by its own TLS stack.
    with pytest.raises(TongyeokError) as untrusted:
        languages(server.port, ca_file=pki["other_ca"])
    assert untrusted.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_from_the_configured_ca(server_factory, pki) -> None:
    server = server_factory(tls_cert=str(pki["cert"]), tls_key=str(pki["key"]), tls_client_ca=str(pki["ca"]))
    assert (
        languages(server.port, ca_file=pki["ca"], client_cert=pki["client_cert"], client_key=pki["client_key"])
        == "pocketsphinx"
    )
    for client in (
        {"ca_file": pki["ca"]},  # no client certificate
        {"ca_file": pki["ca"], "client_cert": pki["stranger_cert"], "client_key": pki["stranger_key"]},
    ):
        with pytest.raises(TongyeokError) as refused:
            languages(server.port, **client)
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE, client


def test_a_rotated_certificate_reaches_new_connections_while_an_open_stream_goes_on(
    server_factory, pki, speech: Speech, caplog
) -> None:
    caplog.set_level(logging.INFO, "tongyeok_server")
    server = server_factory(tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    first = served_serial(server.port, pki["ca"])
    assert first == serial_of(pki["cert"].read_bytes())

    channel = grpc.secure_channel(f"127.0.0.1:{server.port}", grpc.ssl_channel_credentials(pki["ca"].read_bytes()))
    stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
    rotated = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config()
        pcm = speech.pcm()
        half = len(pcm) // 2 // 3200 * 3200
        yield from audio_requests(pcm[:half], 3200, pace_s=0.005)
        assert rotated.wait(20)
        yield from audio_requests(pcm[half:], 3200, pace_s=0.005)

    call = stub.Interpret(requests(), timeout=60)
    events = iter(call)
    assert next(events).WhichOneof("event") == "session_started"
    # Rotate as cert-manager does: new files moved over the old ones.
    for name, new in (("key", pki["rotated_key"]), ("cert", pki["rotated_cert"])):
        tmp = pki[name].with_suffix(".new")
        shutil.copy(new, tmp)
        os.replace(tmp, pki[name])
    assert served_serial(server.port, pki["ca"]) == serial_of(pki["rotated_cert"].read_bytes())
    rotated.set()
    kinds = [r.WhichOneof("event") for r in events]  # the open stream ends normally
    assert "final_transcript" in kinds
    assert call.code() == grpc.StatusCode.OK
    channel.close()
    assert "TLS certificate reloaded" in caplog.text


def test_a_half_written_rotation_keeps_the_old_certificate(server_factory, pki, caplog) -> None:
    server = server_factory(tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    before = served_serial(server.port, pki["ca"])
    # The new certificate arrives before its key: they do not match yet.
    shutil.copy(pki["rotated_cert"], pki["cert"])
    assert served_serial(server.port, pki["ca"]) == before
    assert "cannot be used yet" in caplog.text and "does not belong to the certificate" in caplog.text
    shutil.copy(pki["rotated_key"], pki["key"])
    assert served_serial(server.port, pki["ca"]) == serial_of(pki["rotated_cert"].read_bytes())


def test_reload_rereads_files_that_look_unchanged(server_factory, pki) -> None:
    """SIGHUP (``TongyeokServer.reload``) re-reads even when a copy kept size and mtime."""
    server = server_factory(tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    assert server.security.tls is not None
    reloads = server.security.tls.reloads
    server.reload()
    served_serial(server.port, pki["ca"])
    assert server.security.tls.reloads == reloads + 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"tls_cert": "x.crt"}, "--tls-cert and --tls-key go together"),
        ({"tls_client_ca": "ca.pem"}, "--tls-client-ca needs --tls-cert and --tls-key"),
    ],
)
def test_incomplete_tls_flags_stop_the_start_with_a_message(server_factory, flags, message) -> None:
    with pytest.raises(SettingsError, match=message):
        server_factory(**flags)


def test_unusable_tls_files_stop_the_start_with_a_message(server_factory, pki, tmp_path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(StartError, match="holds no PEM certificate"):
        server_factory(tls_cert=str(garbage), tls_key=str(pki["key"]))
    with pytest.raises(StartError, match="does not belong to the certificate"):
        server_factory(tls_cert=str(pki["cert"]), tls_key=str(pki["rotated_key"]))
    with pytest.raises(StartError, match="cannot read"):
        server_factory(tls_cert=str(tmp_path / "missing.crt"), tls_key=str(pki["key"]))


def test_plaintext_without_authentication_on_a_public_address_warns_loudly(server_factory, pki, caplog) -> None:
    server_factory(host="0.0.0.0")
    assert "PLAINTEXT with NO AUTHENTICATION" in caplog.text
    caplog.clear()
    server_factory(host="0.0.0.0", tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    server_factory(host="127.0.0.1")
    assert "PLAINTEXT" not in caplog.text


def test_unchanged_files_are_not_reloaded_at_each_handshake(pki) -> None:
    """The fetcher runs before every handshake; unchanged files keep the configuration gRPC has."""
    from tongyeok_server.auth.tls import ReloadingServerCredentials, TlsFiles

    creds = ReloadingServerCredentials(TlsFiles(pki["cert"], pki["key"]))
    assert creds._fetch() is not None  # the first handshake gets the configuration
    for _ in range(50):
        assert creds._fetch() is None
    assert creds.reloads == 0


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")  # the client we refuse
def test_failed_handshakes_are_counted_in_the_log_not_written_one_by_one(pki) -> None:
    # Issue 24: gRPC core wrote an INFO line per failed TLS handshake to the process's stderr, so anyone who
    # could reach the port could fill the log. The server's stderr now passes through a filter that counts them.
    from tests.support.servers import ServerProcess

    flags = ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]), "--store", "none", "--synthesizer", "none"]
    server = ServerProcess([*flags, "--offline-workers", "1"], name="tls-handshakes").wait_ready()
    try:
        # The garbage starts with a byte no TLS record starts with (0x16 would read as a handshake).
        attempts = {"plaintext HTTP/2": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "garbage": b"\x00" + os.urandom(199)}
        for _ in range(15):
            for data in attempts.values():
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                    raw.sendall(data)
                    raw.recv(1024)  # the server's alert or its close: the handshake has failed
        # TLS 1.0 does not get through (and counts); a good client still does. The good client comes last:
        # gRPC logs a failed handshake after the client has seen it fail, and a stop right after the last
        # failure could end the server before that line.
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port)) as raw:
            old.wrap_socket(raw)
        assert served_serial(server.port, pki["ca"])
    finally:
        assert server.stop() == 0

    def reports() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == "tls_handshakes_failed"]

    # The filter reports the rest when the last writer of the server's stderr has gone (its workers too).
    assert wait_until(lambda: sum(line["count"] for line in reports()) == 31, 30), reports()
    text, found = server.log_path.read_text(), reports()
    server.remove_log()
    assert "Handshake failed" not in text
    assert len(found) <= 3  # the first at once, the rest at most every 10 s and at the end
    assert "WRONG_VERSION_NUMBER" in found[-1]["reasons"]
