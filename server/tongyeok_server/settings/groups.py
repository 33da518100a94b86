"""The service's settings groups: serving, logs and metrics, security, sessions, resumption, the record, the web.

Each package is handed its own group by the composition root
(``main``/``app``); a group holds only what that package reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import field_validator

from tongyeok_server.settings.fields import Group, option

# cgroup v2: "max 100000" (no quota) or "<quota> <period>" in microseconds.
CPU_MAX_FILE = "/sys/fs/cgroup/cpu.max"


def usable_cores(cpu_max_file: str = CPU_MAX_FILE) -> int:
    """Cores this process may use: its CPU affinity, lowered to a container's CPU quota (whole cores, at least 1).

    Kubernetes' CPU limit is a cgroup quota, which affinity does not show: a
    pod limited to 2 CPUs on a 32-core node would otherwise start 32
    processes. A fraction is rounded down, so the processes are never
    throttled by a quota smaller than they are.
    """
    cores = max(1, len(os.sched_getaffinity(0)))
    try:
        quota, period = Path(cpu_max_file).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, int(quota) // int(period))
    except (OSError, ValueError):
        pass  # no cgroup v2 file (cgroup v1, not Linux): affinity alone
    return max(1, cores)


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tongyeok")


class ServingSettings(Group):
    """The gRPC server: where it listens, how many streams and processes, keepalive, shutdown."""

    host: str = option("[::]", "address to listen on", min_length=1)
    port: int = option(50051, "port to listen on (0 picks a free one)", ge=0, le=65535)
    max_streams: int = option(1000, "concurrent Interpret streams before RESOURCE_EXHAUSTED", ge=1)
    # Deprecated: translations are tasks on the event loop since issue 18 (no thread pool to size).
    translation_threads: int = option(
        0, "deprecated and ignored: translations run on the event loop, no thread each", ge=0
    )
    processes: int = option(
        1,
        "server processes sharing the port (SO_REUSEPORT), to use more than one core, or auto "
        "(one per core this process may use, CPU quota included); each has its own engines, "
        "--max-streams and --offline-workers",
        ge=1,
        accepts="a number of processes of at least 1, or auto (one per core)",
    )
    grace_period_s: float = option(10.0, "seconds open streams get to finish on SIGTERM", ge=0)
    reflection: bool = option(True, "serve gRPC server reflection (for grpcurl)")
    health_port: int = option(
        0,
        "also serve the gRPC health service alone, in plaintext, on this port (0 = off): for "
        "Kubernetes probes when the main port speaks TLS",
        ge=0,
        le=65535,
    )
    runtime_dir: str = option("", "directory for the sockets between --processes (set by the supervisor)")
    keepalive_time_s: float = option(
        30.0, "ping a connection that has been quiet this long (dead-peer detection)", gt=0
    )
    keepalive_timeout_s: float = option(10.0, "close a connection whose ping goes unanswered", gt=0)
    min_client_ping_interval_s: float = option(
        10.0, "accept client keepalive pings this often (more often is too_many_pings)", gt=0
    )
    max_connection_age_s: float = option(
        3600.0,
        "ask clients to reconnect after this long (rebalancing); open streams get a grace "
        "longer than --max-stream-duration (0 = never)",
        ge=0,
    )

    @field_validator("processes", mode="before")
    @classmethod
    def _auto(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return usable_cores()
        return value


class ObservabilitySettings(Group):
    """Logs, metrics and traces."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = option("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["text", "json"] = option("text", "text (one line for a person) or json (one object per line)")
    metrics_port: int = option(
        0,
        "serve Prometheus metrics over HTTP (/metrics) on this port (0 = off); with --processes "
        "the first process serves the sum of all of them",
        ge=0,
        le=65535,
    )
    metrics_host: str = option("", "address the metrics port listens on (default: --host)")
    metrics_callers: int = option(100, "API-key callers named in per-caller metrics; later ones count as 'other'", ge=0)
    otel: bool = option(
        False,
        "OpenTelemetry traces of the RPCs and engine calls (needs tongyeok[otel]; exporter from "
        "the standard OTEL_* variables, OTLP by default)",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class SecuritySettings(Group):
    """TLS, who may call (API keys, JWTs), and how much each caller may use (``auth/``)."""

    tls_cert: str = option("", "PEM certificate chain; with --tls-key, serve TLS only")
    tls_key: str = option("", "PEM private key of --tls-cert")
    tls_client_ca: str = option("", "PEM CA bundle: require client certificates signed by it (mutual TLS)")
    api_keys: str = option("", "file of API key ids, SHA-256 hashes and scopes (see `tongyeok-keys`)")
    jwt_jwks: str = option("", "JWKS file of the public keys that sign callers' JWTs")
    jwt_issuer: str = option("", "the `iss` a JWT must carry")
    jwt_audience: str = option("", "the `aud` a JWT must carry")
    jwt_leeway_s: float = option(30.0, "seconds of clock skew allowed for exp and nbf", ge=0)
    jwt_max_lifetime_s: float = option(
        86400.0, "refuse a JWT valid for longer than this, from its iat or nbf to its exp (0 = no maximum)", ge=0
    )
    caller_max_streams: int = option(10, "concurrent streams per caller (0 = unlimited; an API key may override)", ge=0)
    caller_streams_per_minute: int = option(30, "new streams per caller per minute (0 = unlimited)", ge=0)
    caller_audio_hours_per_day: float = option(12.0, "hours of audio per caller per 24 hours (0 = unlimited)", ge=0)
    caller_scans_per_minute: int = option(
        30, "receipt scans per caller per minute (0 = unlimited; an API key may override)", ge=0
    )
    limits_storage: str = option(
        "memory://",
        "where per-minute/per-day counts (and used stream tickets) live: memory:// (per process) or redis://host:port",
        min_length=1,
    )


class SessionSettings(Group):
    """When a stream is ended for saying nothing, for saying nothing first, or for lasting too long."""

    idle_timeout_s: float = option(300.0, "end a stream that sends no audio for this long (0 = never)", ge=0)
    first_message_timeout_s: float = option(
        10.0,
        "end a stream whose first message (config or resume) has not come this long after it opened (0 = never)",
        ge=0,
    )
    max_stream_duration_s: float = option(4 * 3600.0, "end a stream after this long (0 = never)", ge=0)


class ResumeSettings(Group):
    """Resumption: how long a broken stream's session waits, its tokens' secret, the replicas that relay."""

    resume_window_s: float = option(
        120.0, "how long a session that asked for resumption outlives a broken stream (0 = never)", ge=0
    )
    resume_secret: str = option(
        "",
        "file with 32+ random bytes (raw or base64) that seals resume tokens; the same file on every "
        "replica lets a session resume on, or move to, any of them (default: a secret of this process's own)",
    )
    advertise_address: str = option(
        "",
        "HOST:PORT at which the other replicas reach this one, to relay a resume to it",
        pattern=r"^(.+:\d{1,5})?$",
        accepts="HOST:PORT",
    )
    peer_ca: str = option("", "PEM CA that signed the other replicas' certificates (relayed resumes, TLS)")
    peer_tls_name: str = option("", "the name the other replicas' certificates carry (default: the address)")


class StoreSettings(Group):
    """The meeting record (``store/``)."""

    store: str = option(
        "sqlite",
        "where meeting records are kept: sqlite (a file under --data-dir), sqlite:///PATH, "
        "postgresql://USER@HOST:PORT/DB (password in PGPASSWORD or ~/.pgpass, never in the URL), or none",
        min_length=1,
    )
    data_dir: str = option(
        help="directory of the server's files (the SQLite record)", default_factory=_default_data_dir, min_length=1
    )
    store_transcripts_default: bool = option(
        True, "keep a session's record when its config leaves store_transcript unset"
    )
    retention_days: int = option(
        30, "days a session's record (and audio) is kept before it is purged; 0 = forever", ge=0
    )
    store_audio: bool = option(False, "keep the callers' audio with the record (same retention and deletion)")
    store_buffer: int = option(
        20000, "record writes held in memory while the store is slow or down; past that, records lose events", ge=1
    )


class WebSettings(Group):
    """The web edge: the meeting page and the WebSocket gateway (``gateway/``)."""

    web_port: int = option(
        0,
        "serve the meeting page (/) and the WebSocket gateway (/v1/interpret) over HTTP on this port "
        "(0 = off); TLS with --tls-cert/--tls-key; with --processes every process shares it",
        ge=0,
        le=65535,
    )
    web_host: str = option("", "address the web port listens on (default: --host)")
    web_allowed_origins: str = option(
        "",
        "comma-separated origins (https://app.example.com) whose pages may use the gateway besides "
        "the server's own page; * for any",
    )


class SimultaneousSettings(Group):
    """Simultaneous interpretation: the level callers get by default, what each direction holds back, the budget."""

    simultaneous_latency: Literal["low", "balanced", "accurate"] = option(
        "balanced", "the latency level of simultaneous streams that leave it unset: low, balanced or accurate"
    )
    simultaneous_holdback: str = option(
        "",
        "stable words held back at the balanced level, per source language or direction, e.g. "
        "ko=2,en-ko=1 (default: 1 for verb-final sources such as Korean, 0 for the others)",
        accepts="SOURCE=WORDS or SOURCE-TARGET=WORDS, comma-separated, with language subtags (ko=2,en-ko=1)",
    )
    simultaneous_request_rate: float = option(
        1.5, "translation requests per second of speech, at most, for engines paid per request (openai)", gt=0
    )

    @field_validator("simultaneous_holdback")
    @classmethod
    def _holdback(cls, value: str) -> str:
        from tongyeok_server.simultaneous.pacing import parse_holdback

        parse_holdback(value)  # ValueError: the setting is refused with what it accepts
        return value
