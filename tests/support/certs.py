"""Test PKI: CAs, server and client certificates, written as PEM files (made with ``cryptography``).

``local_certificates()`` is the one CA and server certificate the cloud
engines' fakes serve TLS with: gRPC puts call credentials only on a secure
channel, so the real credential plugin runs against the fakes as it does
against Google.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A key and its certificate, as PEM files."""

    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes]:
        """(certificate chain PEM, key PEM)."""
        return self.cert.read_bytes(), self.key.read_bytes()


class TestCA:
    """A certificate authority that issues server and client certificates into ``directory``."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / f"{name}.pem"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, client: bool = False, file_stem: str | None = None) -> Issued:
        """A certificate for ``common_name`` (a server for localhost/127.0.0.1/::1, or a client)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if client:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        stem = file_stem or f"{self.name}-{common_name}"
        issued = Issued(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return issued


def serial_of(pem: bytes) -> int:
    """The serial number of a PEM certificate."""
    return x509.load_pem_x509_certificate(pem).serial_number


@dataclass(frozen=True)
class LocalCertificates:
    """PEM bytes: the CA to trust, and the server's key and certificate (signed by it)."""

    ca_pem: bytes
    server_key_pem: bytes
    server_cert_pem: bytes


@functools.cache
def local_certificates() -> LocalCertificates:
    """A CA and a server certificate valid for ``127.0.0.1``, ``::1`` and ``localhost`` (made once per run)."""
    ca = TestCA(Path(tempfile.mkdtemp(prefix="tongyeok-test-ca-")), "local-ca")
    server = ca.issue("localhost")
    return LocalCertificates(ca.cert.read_bytes(), server.key.read_bytes(), server.cert.read_bytes())
