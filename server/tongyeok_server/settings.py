"""Server settings, from command-line flags with environment-variable defaults.

Every flag ``--some-thing`` has an environment variable
``TONGYEOK_SOME_THING``; a flag wins over the variable. Credentials are never
flags (they would show in ``ps``): Google uses Application Default
Credentials, OpenAI the ``OPENAI_API_KEY`` variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Set by the supervisor of --processes in each server process it starts: that process serves, it does not supervise.
PROCESS_INDEX_ENV = "TONGYEOK_PROCESS_INDEX"


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "tongyeok")


# cgroup v2: "max 100000" (no quota) or "<quota> <period>" in microseconds.
CPU_MAX_FILE = "/sys/fs/cgroup/cpu.max"


def usable_cores(cpu_max_file: str = CPU_MAX_FILE) -> int:
    """Cores this process may use: its CPU affinity, lowered to a container's CPU quota (whole cores, at least 1).

    Kubernetes' CPU limit is a cgroup quota, which affinity does not show: a
    pod limited to 2 CPUs on a 32-core node would otherwise start 32
    processes. A fraction is rounded down, so the processes are never
    throttled by a quota smaller than they are.
    """
    cores = _default_workers()
    try:
        quota, period = Path(cpu_max_file).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, int(quota) // int(period))
    except (OSError, ValueError):
        pass  # no cgroup v2 file (cgroup v1, not Linux): affinity alone
    return max(1, cores)


def _processes(raw: str) -> int:
    if raw.strip().lower() == "auto":
        return usable_cores()
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: a number of processes, or auto (one per core)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r}: at least 1 process, or auto (one per core)")
    return value


_PARSERS = {"processes": _processes}


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server can be told at start-up."""

    host: str = field(default="[::]", metadata={"help": "address to listen on"})
    port: int = field(default=50051, metadata={"help": "port to listen on (0 picks a free one)"})
    recognizer: str = field(
        default="whisper", metadata={"help": "speech engine: whisper (embedded), pocketsphinx or google"}
    )
    translator: str = field(default="apertium", metadata={"help": "translation engine: apertium or openai"})
    max_streams: int = field(default=1000, metadata={"help": "concurrent Interpret streams before RESOURCE_EXHAUSTED"})
    # Deprecated: translations are tasks on the event loop since issue 18 (no thread pool to size).
    translation_threads: int = field(
        default=0, metadata={"help": "deprecated and ignored: translations run on the event loop, no thread each"}
    )
    processes: int = field(
        default=1,
        metadata={
            "help": "server processes sharing the port (SO_REUSEPORT), to use more than one core, or auto "
            "(one per core this process may use, CPU quota included); each has its own engines, "
            "--max-streams and --offline-workers",
            "parse": "processes",
        },
    )
    grace_period_s: float = field(default=10.0, metadata={"help": "seconds open streams get to finish on SIGTERM"})
    log_level: str = field(default="INFO", metadata={"help": "DEBUG, INFO, WARNING or ERROR"})
    reflection: bool = field(default=True, metadata={"help": "serve gRPC server reflection (for grpcurl)"})
    # Embedded (offline) recognition.
    offline_workers: int = field(
        default_factory=_default_workers,
        metadata={"help": "embedded recogniser (pocketsphinx, whisper) worker processes (default: one per core)"},
    )
    offline_streams_per_worker: int = field(
        default=3, metadata={"help": "concurrent streams one pocketsphinx worker serves in real time"}
    )
    pocketsphinx_second_pass: str = field(
        default="narrowband",
        metadata={"help": "re-decode each sentence with batch CMN: narrowband (streams under 16 kHz), always or never"},
    )
    # Whisper (embedded, multilingual; issue 13).
    whisper_model: str = field(
        default="", metadata={"help": "CTranslate2 Whisper model directory (default: the packaged Whisper base)"}
    )
    whisper_model_sha256: str = field(
        default="", metadata={"help": "SHA-256 of --whisper-model's model.bin, checked at load"}
    )
    whisper_device: str = field(default="cpu", metadata={"help": "where Whisper runs: cpu, cuda or auto"})
    whisper_threads: int = field(default=1, metadata={"help": "cores one whisper worker decodes on"})
    whisper_streams_per_worker: int = field(
        default=2, metadata={"help": "concurrent streams one whisper worker serves in real time"}
    )
    # Google Cloud Speech-to-Text v2.
    google_project: str = field(default="", metadata={"help": "Google Cloud project (default: GOOGLE_CLOUD_PROJECT)"})
    google_location: str = field(
        default="global", metadata={"help": "Speech-to-Text location, e.g. global, eu, us-central1"}
    )
    google_recognizer: str = field(default="_", metadata={"help": "recognizer id ('_' is the implicit one)"})
    google_model: str = field(default="long", metadata={"help": "Speech-to-Text model, e.g. long, short, chirp_2"})
    google_endpoint: str = field(
        default="", metadata={"help": "API endpoint override host:port (default from location)"}
    )
    google_insecure: bool = field(
        default=False, metadata={"help": "plaintext channel to --google-endpoint, no credentials (tests)"}
    )
    # Issue 15: a private endpoint or a TLS-inspecting proxy signs with its own CA.
    google_ca_file: str = field(
        default="", metadata={"help": "PEM file of the CA(s) to trust for the Google endpoint (default: system roots)"}
    )
    # OpenAI (or any OpenAI-compatible server).
    openai_model: str = field(default="gpt-4o-mini", metadata={"help": "chat model used for translation"})
    openai_base_url: str = field(default="", metadata={"help": "API base URL (default: OPENAI_BASE_URL or OpenAI's)"})
    openai_timeout_s: float = field(default=30.0, metadata={"help": "seconds before a translation request times out"})
    openai_max_retries: int = field(default=2, metadata={"help": "retries of a failed or cut translation"})

    # Security: TLS, keepalive, authentication, per-caller limits (auth/).
    tls_cert: str = field(default="", metadata={"help": "PEM certificate chain; with --tls-key, serve TLS only"})
    tls_key: str = field(default="", metadata={"help": "PEM private key of --tls-cert"})
    tls_client_ca: str = field(
        default="", metadata={"help": "PEM CA bundle: require client certificates signed by it (mutual TLS)"}
    )
    api_keys: str = field(
        default="", metadata={"help": "file of API key ids, SHA-256 hashes and scopes (see `tongyeok-keys`)"}
    )
    jwt_jwks: str = field(default="", metadata={"help": "JWKS file of the public keys that sign callers' JWTs"})
    jwt_issuer: str = field(default="", metadata={"help": "the `iss` a JWT must carry"})
    jwt_audience: str = field(default="", metadata={"help": "the `aud` a JWT must carry"})
    jwt_leeway_s: float = field(default=30.0, metadata={"help": "seconds of clock skew allowed for exp and nbf"})
    jwt_max_lifetime_s: float = field(
        default=86400.0,
        metadata={"help": "refuse a JWT valid for longer than this, from its iat or nbf to its exp (0 = no maximum)"},
    )
    caller_max_streams: int = field(
        default=10, metadata={"help": "concurrent streams per caller (0 = unlimited; an API key may override)"}
    )
    caller_streams_per_minute: int = field(
        default=30, metadata={"help": "new streams per caller per minute (0 = unlimited)"}
    )
    caller_audio_hours_per_day: float = field(
        default=12.0, metadata={"help": "hours of audio per caller per 24 hours (0 = unlimited)"}
    )
    caller_scans_per_minute: int = field(
        default=30, metadata={"help": "receipt scans per caller per minute (0 = unlimited; an API key may override)"}
    )
    limits_storage: str = field(
        default="memory://",
        metadata={"help": "where per-minute/per-day counts live: memory:// (per process) or redis://host:port"},
    )
    keepalive_time_s: float = field(
        default=30.0, metadata={"help": "ping a connection that has been quiet this long (dead-peer detection)"}
    )
    keepalive_timeout_s: float = field(default=10.0, metadata={"help": "close a connection whose ping goes unanswered"})
    min_client_ping_interval_s: float = field(
        default=10.0, metadata={"help": "accept client keepalive pings this often (more often is too_many_pings)"}
    )
    max_connection_age_s: float = field(
        default=3600.0,
        metadata={
            "help": "ask clients to reconnect after this long (rebalancing); open streams get a grace "
            "longer than --max-stream-duration"
        },
    )

    # Sessions: idle and duration limits, resume (session/).
    idle_timeout_s: float = field(
        default=300.0, metadata={"help": "end a stream that sends no audio for this long (0 = never)"}
    )
    first_message_timeout_s: float = field(
        default=10.0,
        metadata={"help": "end a stream whose first message (config or resume) has not come this long after it opened"},
    )
    max_stream_duration_s: float = field(
        default=4 * 3600.0, metadata={"help": "end a stream after this long (0 = never)"}
    )
    resume_window_s: float = field(
        default=120.0,
        metadata={"help": "how long a session that asked for resumption outlives a broken stream (0 = never)"},
    )
    resume_secret: str = field(
        default="",
        metadata={
            "help": "file with 32+ random bytes (raw or base64) that seals resume tokens; the same file on every "
            "replica lets a session resume on, or move to, any of them (default: a secret of this process's own)"
        },
    )
    advertise_address: str = field(
        default="",
        metadata={"help": "HOST:PORT at which the other replicas reach this one, to relay a resume to it"},
    )
    peer_ca: str = field(
        default="", metadata={"help": "PEM CA that signed the other replicas' certificates (relayed resumes, TLS)"}
    )
    peer_tls_name: str = field(
        default="", metadata={"help": "the name the other replicas' certificates carry (default: the address)"}
    )
    runtime_dir: str = field(
        default="", metadata={"help": "directory for the sockets between --processes (set by the supervisor)"}
    )

    # The meeting record (store/).
    store: str = field(
        default="sqlite",
        metadata={
            "help": "where meeting records are kept: sqlite (a file under --data-dir), sqlite:///PATH, "
            "postgresql://USER@HOST:PORT/DB (password in PGPASSWORD or ~/.pgpass, never in the URL), or none"
        },
    )
    data_dir: str = field(
        default_factory=_default_data_dir, metadata={"help": "directory of the server's files (the SQLite record)"}
    )
    store_transcripts_default: bool = field(
        default=True, metadata={"help": "keep a session's record when its config leaves store_transcript unset"}
    )
    retention_days: int = field(
        default=30, metadata={"help": "days a session's record (and audio) is kept before it is purged; 0 = forever"}
    )
    store_audio: bool = field(
        default=False, metadata={"help": "keep the callers' audio with the record (same retention and deletion)"}
    )
    store_buffer: int = field(
        default=20000,
        metadata={
            "help": "record writes held in memory while the store is slow or down; past that, records lose events"
        },
    )

    # Expenses from receipts (expenses/; issue 22).
    receipt_engine: str = field(
        default="embedded",
        metadata={
            "help": "receipt reader: embedded (Tesseract kor+eng, RapidOCR for Latin when installed), tesseract, "
            "rapidocr (Latin only), documentai or openai"
        },
    )
    receipt_threads: int = field(
        default_factory=_default_workers,
        metadata={"help": "receipts the embedded reader reads at once (default: one per core)"},
    )
    receipt_languages: str = field(default="kor+eng", metadata={"help": "Tesseract languages for receipts"})
    expense_rates: str = field(
        default="",
        metadata={"help": "exchange-rates file for reports (`USD KRW 1385.20` per line; re-read when it changes)"},
    )
    documentai_processor: str = field(
        default="",
        metadata={"help": "Document AI expense processor: projects/P/locations/L/processors/ID[/processorVersions/V]"},
    )
    documentai_endpoint: str = field(
        default="", metadata={"help": "Document AI host:port (default: LOCATION-documentai.googleapis.com)"}
    )
    openai_vision_model: str = field(
        default="gpt-4o-mini", metadata={"help": "OpenAI model that reads receipts (vision, structured output)"}
    )

    # Speech output (synthesis/).
    synthesizer: str = field(
        default="embedded",
        metadata={"help": "speech output engine: embedded (Piper + espeak-ng), espeak, piper, openai, google or none"},
    )
    synthesis_threads: int = field(
        default_factory=_default_workers,
        metadata={"help": "clauses the embedded neural voice (Piper) synthesizes at once (default: one per core)"},
    )
    openai_tts_model: str = field(default="gpt-4o-mini-tts", metadata={"help": "OpenAI speech model"})
    openai_tts_voice: str = field(default="coral", metadata={"help": "OpenAI voice 'default' selects"})
    openai_tts_instructions: str = field(
        default="Speak as a calm, professional conference interpreter: clear, even pace, warm and neutral tone.",
        metadata={"help": "how the OpenAI voice should sound (models that take instructions)"},
    )
    openai_tts_base_url: str = field(
        default="", metadata={"help": "speech API base URL (default: --openai-base-url, then OpenAI's)"}
    )
    google_tts_location: str = field(
        default="global", metadata={"help": "Text-to-Speech location: global, us, eu, asia-southeast1 ..."}
    )
    google_tts_voice: str = field(
        default="Chirp3-HD-Charon",
        metadata={"help": "Google voice 'default' selects in each locale, without the locale (streaming: Chirp3-HD)"},
    )
    google_tts_endpoint: str = field(
        default="",
        metadata={
            "help": "Text-to-Speech host:port (default: the location's); --google-insecure/--google-ca-file apply"
        },
    )

    # Observability and operation: metrics, log format, tracing, health port (observability/; issue 14).
    metrics_port: int = field(
        default=0,
        metadata={
            "help": "serve Prometheus metrics over HTTP (/metrics) on this port (0 = off); with --processes "
            "the first process serves the sum of all of them"
        },
    )
    metrics_host: str = field(default="", metadata={"help": "address the metrics port listens on (default: --host)"})
    metrics_callers: int = field(
        default=100,
        metadata={"help": "API-key callers named in per-caller metrics; later ones count as 'other'"},
    )
    log_format: str = field(
        default="text", metadata={"help": "text (one line for a person) or json (one object per line)"}
    )
    otel: bool = field(
        default=False,
        metadata={
            "help": "OpenTelemetry traces of the RPCs and engine calls (needs tongyeok[otel]; exporter from "
            "the standard OTEL_* variables, OTLP by default)"
        },
    )
    # The web edge: a WebSocket gateway and the meeting page (gateway/; issue 21).
    web_port: int = field(
        default=0,
        metadata={
            "help": "serve the meeting page (/) and the WebSocket gateway (/v1/interpret) over HTTP on this port "
            "(0 = off); TLS with --tls-cert/--tls-key; with --processes every process shares it"
        },
    )
    web_host: str = field(default="", metadata={"help": "address the web port listens on (default: --host)"})
    web_allowed_origins: str = field(
        default="",
        metadata={
            "help": "comma-separated origins (https://app.example.com) whose pages may use the gateway besides "
            "the server's own page; * for any"
        },
    )
    health_port: int = field(
        default=0,
        metadata={
            "help": "also serve the gRPC health service alone, in plaintext, on this port (0 = off): for "
            "Kubernetes probes when the main port speaks TLS"
        },
    )

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerSettings:
        """Parse flags, falling back to ``TONGYEOK_*`` variables, then defaults."""
        env = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(
            prog="tongyeok-server",
            description="Tongyeok real-time interpretation server.",
            epilog="Every flag can also be set as TONGYEOK_<FLAG> in the environment, e.g. TONGYEOK_PORT=50051.",
        )
        defaults = cls()
        for f in fields(cls):
            flag = "--" + f.name.removesuffix("_s").replace("_", "-")
            var = "TONGYEOK_" + f.name.removesuffix("_s").upper()
            default = getattr(defaults, f.name)
            kind: Callable[[str], Any] = _PARSERS.get(f.metadata.get("parse", ""), type(default))
            raw = env.get(var)
            if raw is not None:
                default = _parse_bool(raw, var) if kind is bool else _from_env(kind, raw, var)
            help_text = f"{f.metadata.get('help', '')} [{var}, default {default}]"
            if kind is bool:
                parser.add_argument(
                    flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
                )
            else:
                parser.add_argument(flag, dest=f.name, type=kind, default=default, help=help_text)
        ns = parser.parse_args(argv)
        settings = cls(**vars(ns))
        if not settings.google_project:
            settings = _replace(settings, google_project=env.get("GOOGLE_CLOUD_PROJECT", ""))
        if not settings.openai_base_url:
            settings = _replace(settings, openai_base_url=env.get("OPENAI_BASE_URL", ""))
        return settings


def _from_env(kind: Callable[[str], Any], raw: str, var: str) -> Any:
    try:
        return kind(raw)
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise SystemExit(f"{var}={raw!r}: {e}") from None


# Credentials the server reads from the environment, which may instead name a file holding them
# (``OPENAI_API_KEY_FILE=/run/secrets/openai/api-key``): a Kubernetes or Docker secret mounted as
# a file stays out of the pod spec, ``docker inspect`` and the process's initial environment.
SECRET_VARIABLES = ("OPENAI_API_KEY", "PGPASSWORD")


def load_secret_files(environ: MutableMapping[str, str] | None = None) -> None:
    """Set each of ``SECRET_VARIABLES`` from the file its ``_FILE`` variable names; ``SystemExit`` on a problem."""
    env = os.environ if environ is None else environ
    for var in SECRET_VARIABLES:
        path = env.get(f"{var}_FILE", "")
        if not path:
            continue
        if env.get(var):
            raise SystemExit(f"tongyeok-server: set {var} or {var}_FILE, not both")
        try:
            value = Path(path).read_text().strip()
        except OSError as e:
            raise SystemExit(f"tongyeok-server: {var}_FILE={path}: cannot read it ({e.strerror})") from None
        if not value:
            raise SystemExit(f"tongyeok-server: {var}_FILE={path} is empty")
        env[var] = value


def _parse_bool(raw: str, var: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SystemExit(f"{var}={raw!r}: expected true or false")


def _replace(settings: ServerSettings, **changes: object) -> ServerSettings:
    from dataclasses import replace

    return replace(settings, **changes)  # type: ignore[arg-type]
