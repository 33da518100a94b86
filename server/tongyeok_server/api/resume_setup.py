"""The resume desk of one server process, built from the settings.

Where this process is, as tokens name it: its replica (``--advertise-address``,
the address other replicas reach it at) and, under ``--processes N``, its own
socket in the supervisor's runtime directory (the processes share one public
port, so a resume may land on any of them). The secret that seals tokens is
``--resume-secret``; the supervisor of ``--processes`` makes one for its
processes when none is given; otherwise the process makes its own (then
only this process opens its tokens, and a session cannot move).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from tongyeok_server.api.forwarding import Forwarder
from tongyeok_server.api.relayed_callers import RelayedCallers
from tongyeok_server.api.resume import ResumeDesk
from tongyeok_server.errors import StartError
from tongyeok_server.session.resume_token import ResumeTokens, load_secret, new_secret
from tongyeok_server.settings import PROCESS_INDEX_ENV, ResumeSettings

log = logging.getLogger(__name__)


@dataclass
class ResumeSetup:
    """The desk, and the socket this process also listens on (``--processes``), if any."""

    desk: ResumeDesk
    process_socket: str  # "unix:/path" or ""
    forwarder: Forwarder | None
    secret: bytes  # the key that seals resume tokens (the web gateway derives its tickets' key from it)
    #: Vouches for the callers this process relays without a credential to pass on, and checks those relayed here.
    relays: RelayedCallers

    @classmethod
    def from_settings(cls, settings: ResumeSettings, tls: bool, runtime_dir: str = "") -> ResumeSetup:
        """Raises ``StartError`` with a message when the secret cannot be used.

        ``runtime_dir``: the --processes' shared directory, where this process listens for relayed resumes.
        """
        if settings.resume_secret:
            try:
                secret = load_secret(settings.resume_secret)
            except ValueError as e:
                raise StartError(f"--resume-secret: {e}") from None
        else:
            secret = new_secret()
        index = os.environ.get(PROCESS_INDEX_ENV)
        process_socket = ""
        if index is not None and runtime_dir:
            path = Path(runtime_dir) / f"p{index}.sock"
            path.unlink(missing_ok=True)
            process_socket = f"unix:{path}"
        relays = RelayedCallers(secret, (settings.advertise_address, process_socket), runtime_dir)
        forwarder = None
        if process_socket or settings.advertise_address:
            forwarder = Forwarder(*_peer_credentials(settings, tls), relays=relays)
        desk = ResumeDesk(
            settings.resume_window_s, ResumeTokens(secret), settings.advertise_address, process_socket, forwarder
        )
        return cls(desk, process_socket, forwarder, secret, relays)


def _peer_credentials(
    settings: ResumeSettings, tls: bool
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, str]]]:
    """How to reach the other replicas: as callers do (TLS when this server speaks it)."""
    if not tls:
        return None, []
    roots = Path(settings.peer_ca).read_bytes() if settings.peer_ca else None
    options = [("grpc.ssl_target_name_override", settings.peer_tls_name)] if settings.peer_tls_name else []
    return grpc.ssl_channel_credentials(roots), options
