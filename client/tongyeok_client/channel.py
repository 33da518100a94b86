"""Opening a channel to a Tongyeok server: TLS, client certificates, the bearer token, keepalive."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

#: Keepalive suited to phones: a ping after 15 s without a frame from the server, the connection
#: given up 10 s later. The server accepts client pings every 10 s (``--min-client-ping-interval``),
#: so this rate never earns a ``too_many_pings``. Pings go on while a call is open even when no
#: data flows (a pause in the meeting), never on an idle channel.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 15_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),  # what gRPC 1.6x+ applies to an unanswered ping
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    # After a failed connection gRPC waits out a reconnect backoff of its own (from 1 s, growing to
    # 2 min) before it tries again: a resume would wait for that long after the network is back.
    # At most 1 s here: a resume waits for the channel (wait_for_ready) and lands within a second.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def channel_credentials(
    *,
    secure: bool = False,
    ca_file: str | Path | None = None,
    client_cert: str | Path | None = None,
    client_key: str | Path | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials for the given files (None: plaintext).

    ``ca_file`` (the server's CA, instead of the system roots), or a client
    certificate and key (mutual TLS), imply TLS; ``secure`` alone uses the
    system's root certificates.

    Raises:
        ValueError: a file cannot be read, or only one of certificate and key was given.

    """
    if (client_cert is None) != (client_key is None):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    if not (secure or ca_file or client_cert):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file, "CA file") if ca_file else None,
        private_key=_read(client_key, "client key") if client_key else None,
        certificate_chain=_read(client_cert, "client certificate") if client_cert else None,
    )


def open_channel(
    target: str, credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, int | str]] = ()
) -> grpc.Channel:
    """A channel to ``target`` with the project's keepalive (``options`` override it)."""
    given = {name for name, _ in options}
    merged = [*(o for o in KEEPALIVE_OPTIONS if o[0] not in given), *options]
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=merged)
    return grpc.insecure_channel(target, options=merged)


def bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization`` metadata for ``token`` (none without one)."""
    if not token:
        return ()
    token = token.strip()
    if any(c.isspace() for c in token):
        raise ValueError("the token contains whitespace; pass the API key or JWT alone, without 'Bearer'")
    return (("authorization", f"Bearer {token}"),)
