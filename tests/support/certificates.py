"""Test TLS material: a throw-away CA and a server certificate for 127.0.0.1 and localhost.

Made with ``cryptography`` (already installed with ``google-auth``), in
memory, once per test session: a fake that speaks TLS is what lets gRPC
send call credentials (it refuses to put a token on a plaintext channel), so
the real credential plugin runs against the fakes as it does against Google.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class LocalCertificates:
    """PEM bytes: the CA to trust, and the server's key and certificate (signed by it)."""

    ca_pem: bytes
    server_key_pem: bytes
    server_cert_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@functools.cache
def local_certificates() -> LocalCertificates:
    """A CA and a server certificate valid for ``127.0.0.1``, ``::1`` and ``localhost`` (made once)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("tongyeok test CA"))
        .issuer_name(_name("tongyeok test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return LocalCertificates(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        server_key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        server_cert_pem=cert.public_bytes(serialization.Encoding.PEM),
    )
