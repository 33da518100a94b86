"""Everything the server's transport and edge need from ``auth/``, built from the settings.

``ServerSecurity.from_settings`` checks the flags and files at start-up
(a bad file ends the start with a message, not a traceback) and gives
``app.py`` the port credentials, the interceptors, the per-caller limits,
the keepalive options, and ``reload()`` for SIGHUP.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tongyeok_server.auth.api_keys import ApiKeyStore
from tongyeok_server.auth.authenticator import Authenticator
from tongyeok_server.auth.interceptor import AuthInterceptor, RelayedCaller
from tongyeok_server.auth.jwt_tokens import JwtSettings, JwtVerifier
from tongyeok_server.auth.limit_windows import describe as describe_storage
from tongyeok_server.auth.limits import CallerLimits, LimitDefaults
from tongyeok_server.auth.refusals import IGNORE, RefusalObserver
from tongyeok_server.auth.tls import ReloadingServerCredentials, TlsFiles
from tongyeok_server.auth.watched_files import FileConfigError
from tongyeok_server.errors import StartError
from tongyeok_server.settings import SecuritySettings, ServingSettings

log = logging.getLogger(__name__)

# Beyond the longest stream, so that a connection asked to go (max age) lets its meeting finish.
CONNECTION_AGE_GRACE_MARGIN_S = 60.0


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def keepalive_options(settings: ServingSettings, max_stream_duration_s: float) -> list[tuple[str, int]]:
    """Server options for phones on flaky networks and for balancers that rebalance.

    A dead peer is noticed within ``keepalive_time_s + keepalive_timeout_s``
    of its last sign of life (40 s by default). Client pings are accepted
    every ``min_client_ping_interval_s``, with or without calls in flight
    (our client pings less often). Connections are asked to go after
    ``max_connection_age_s``; streams on them get the longest stream's
    duration (``max_stream_duration_s``, 0 = none) to end.
    """
    grace = max_stream_duration_s + CONNECTION_AGE_GRACE_MARGIN_S if max_stream_duration_s else 0
    options = [
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout_s)),
        # gRPC 1.6x+ times out an unanswered ping with this one (default 60 s), not with keepalive_timeout_ms.
        ("grpc.http2.ping_timeout_ms", _ms(settings.keepalive_timeout_s)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(settings.min_client_ping_interval_s)),
        ("grpc.http2.max_pings_without_data", 0),  # the server's own pings are not limited by data flow
        ("grpc.http2.max_ping_strikes", 2),
    ]
    if settings.max_connection_age_s > 0:
        options.append(("grpc.max_connection_age_ms", _ms(settings.max_connection_age_s)))
        options.append(("grpc.max_connection_age_grace_ms", _ms(grace) if grace else 2**31 - 1))
    return options


def _is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class ServerSecurity:
    """The transport and edge security of one server (see the module docstring)."""

    tls: ReloadingServerCredentials | None
    authenticator: Authenticator | None
    limits: CallerLimits
    refusals: RefusalObserver = IGNORE

    @classmethod
    def from_settings(cls, settings: SecuritySettings, refusals: RefusalObserver = IGNORE) -> ServerSecurity:
        """Build from the flags (checked by ``settings/``); ``StartError`` with a message if their files are wrong.

        ``refusals`` hears about every refused call and limit (the metrics).
        """
        try:
            return cls(_tls(settings), _authenticator(settings), _limits(settings, refusals), refusals)
        except FileConfigError as e:
            raise StartError(f"{e}") from None

    def interceptors(self, relayed: RelayedCaller | None = None) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
        """The server interceptors (authentication, when on); ``relayed`` reads the callers other processes vouch for."""
        if self.authenticator is None:
            return []
        return [AuthInterceptor(self.authenticator, self.refusals, relayed)]

    def add_port(self, server: grpc.aio.Server, address: str) -> int:
        """Bind ``address`` with TLS when configured, plaintext otherwise; returns the port (0 if refused)."""
        if self.tls is not None:
            return server.add_secure_port(address, self.tls.credentials())
        return server.add_insecure_port(address)

    def reload(self) -> None:
        """Re-read certificates, API keys and JWKS at their next use (SIGHUP)."""
        if self.tls is not None:
            self.tls.request_reload()
        if self.authenticator is not None:
            self.authenticator.request_reload()
        log.info("reload requested: certificates and keys are re-read at their next use")

    def warn_if_exposed(self, host: str) -> None:
        """Say loudly when anyone who can reach the port may call, in plaintext."""
        if _is_loopback(host) or self.tls is not None or self.authenticator is not None:
            return
        log.warning(
            "SECURITY: listening on %s in PLAINTEXT with NO AUTHENTICATION: anyone who can reach this port can "
            "stream audio, spend the engines' quota and read what is said. For local use only; to expose it set "
            "--tls-cert/--tls-key and --api-keys and/or --jwt-jwks (README: Deploying safely), or listen on "
            "127.0.0.1.",
            host,
        )


def _tls(settings: SecuritySettings) -> ReloadingServerCredentials | None:
    if not settings.tls_cert:  # settings/ checked that --tls-key and --tls-client-ca come with it
        return None
    files = TlsFiles(
        Path(settings.tls_cert),
        Path(settings.tls_key),
        Path(settings.tls_client_ca) if settings.tls_client_ca else None,
    )
    return ReloadingServerCredentials(files)


def _authenticator(settings: SecuritySettings) -> Authenticator | None:
    keys = ApiKeyStore(Path(settings.api_keys)) if settings.api_keys else None
    verifier = None
    if settings.jwt_jwks:
        verifier = JwtVerifier(
            JwtSettings(
                Path(settings.jwt_jwks),
                settings.jwt_issuer,
                settings.jwt_audience,
                settings.jwt_leeway_s,
                settings.jwt_max_lifetime_s,
            )
        )
    if keys is None and verifier is None:
        return None
    return Authenticator(keys, verifier)


def _limits(settings: SecuritySettings, refusals: RefusalObserver) -> CallerLimits:
    defaults = LimitDefaults(
        settings.caller_max_streams,
        settings.caller_streams_per_minute,
        settings.caller_audio_hours_per_day,
        settings.caller_scans_per_minute,
    )
    try:
        limits = CallerLimits(defaults, settings.limits_storage, refusals)
    except Exception as e:  # the limits package raises its own ConfigurationError / ValueError types
        where = describe_storage(settings.limits_storage)  # the URI may carry a password
        raise StartError(f"--limits-storage {where}: {type(e).__name__}: {e}") from None
    limits.windows.check()
    return limits
