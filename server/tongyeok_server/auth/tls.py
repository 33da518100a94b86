"""Server TLS from PEM files, re-read when they change, without dropping open streams.

gRPC asks ``certificate_configuration_fetcher`` for the certificate before
every new TLS handshake; connections already open keep the certificate
they were made with. So a rotation (cert-manager replacing the Secret's
files, an operator's ``cp``) needs nothing but new files: the next
handshake checks the files' identity (inode, size, mtime: one ``stat``
each) and, if any changed, loads them. SIGHUP forces a reload even when
the files look the same. A half-written rotation (a key that does not
match its certificate, a truncated PEM) keeps the old certificate in
service and is retried at the next handshake, with one warning per
distinct problem.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tongyeok_server.auth.watched_files import FileConfigError, WatchedFiles


class TlsConfigError(FileConfigError):
    """The TLS files cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class TlsFiles:
    """Where the server's TLS material lives."""

    cert: Path
    key: Path
    client_ca: Path | None = None  # set: mutual TLS, client certificates required and verified


@dataclass(frozen=True)
class _Loaded:
    cert_chain: bytes
    key: bytes
    client_ca: bytes | None
    not_after: str


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TlsConfigError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def load(files: TlsFiles) -> _Loaded:
    """Read and check the files: PEM that parses, a key that matches the certificate."""
    chain = _read(files.cert, "certificate (--tls-cert)")
    key_pem = _read(files.key, "private key (--tls-key)")
    ca = _read(files.client_ca, "client CA (--tls-client-ca)") if files.client_ca else None
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError:
        raise TlsConfigError(f"{files.cert} (--tls-cert) holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsConfigError(
            f"{files.key} (--tls-key) holds no unencrypted PEM private key (encrypted keys are not supported)"
        ) from None
    leaf_public = (
        certs[0].public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf_public != key_public:
        raise TlsConfigError(f"the private key {files.key} does not belong to the certificate {files.cert}")
    if ca is not None:
        try:
            x509.load_pem_x509_certificates(ca)
        except ValueError:
            raise TlsConfigError(f"{files.client_ca} (--tls-client-ca) holds no PEM certificate") from None
    return _Loaded(chain, key_pem, ca, certs[0].not_valid_after_utc.isoformat())


class ReloadingServerCredentials:
    """``grpc.ServerCredentials`` whose certificate follows the files (see the module docstring)."""

    def __init__(self, files: TlsFiles) -> None:
        """Load the files now; raises ``TlsConfigError`` if they cannot be used."""
        self.files = files
        paths = [p for p in (files.cert, files.key, files.client_ca) if p is not None]
        mtls = f", client certificates required (CA {files.client_ca})" if files.client_ca else ""
        self._loaded = WatchedFiles(
            "TLS certificate",
            paths,
            lambda: load(files),
            lambda loaded: f"{files.cert}, valid until {loaded.not_after}{mtls}",
            # Checked at every handshake: a stat of two or three files, next to a TLS handshake's cost.
            check_interval_s=0.0,
        )
        self._served: _Loaded | None = None

    @property
    def reloads(self) -> int:
        """How many times a new certificate was taken into use."""
        return self._loaded.reloads

    def credentials(self) -> grpc.ServerCredentials:
        """The credentials to give ``add_secure_port``."""
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(self._loaded.current()),
            self._fetch,  # type: ignore[arg-type]  # None means "keep the current one" (gRPC's docs); the stub says otherwise
            require_client_authentication=self.files.client_ca is not None,
        )

    def request_reload(self) -> None:
        """Re-read the files at the next handshake even if they look unchanged (SIGHUP)."""
        self._loaded.request_reload()

    @staticmethod
    def _configuration(loaded: _Loaded) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(loaded.key, loaded.cert_chain)], loaded.client_ca)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: a new configuration, or None to keep the current one."""
        current = self._loaded.current()
        if current is self._served:
            return None
        self._served = current
        return self._configuration(current)

    def ssl_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` for HTTPS (the web gateway) that follows the files as the gRPC port does.

        Checked before every handshake (``sni_callback``, called on each
        ClientHello): when the files changed and load, the handshake and the
        ones after it use a context made from them.
        """
        files = self.files

        def build() -> ssl.SSLContext:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(files.cert, files.key)
            if files.client_ca is not None:
                context.load_verify_locations(cafile=str(files.client_ca))
                context.verify_mode = ssl.CERT_REQUIRED
            return context

        base = build()
        state = {"loaded": self._loaded.current(), "context": base}

        def on_hello(connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
            loaded = self._loaded.current()
            if loaded is not state["loaded"]:
                try:
                    state["context"] = build()
                    state["loaded"] = loaded
                except (OSError, ssl.SSLError):
                    pass  # a rotation half-written: the current certificate stays (WatchedFiles warned)
            if state["context"] is not base:
                connection.context = state["context"]  # type: ignore[assignment]

        base.sni_callback = on_hello
        return base
