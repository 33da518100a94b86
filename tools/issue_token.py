"""An example JWT issuer for the backend that lets its mobile app call Tongyeok.

The app never holds a long-lived secret: it asks its own backend (which
knows the user) for a short-lived token, and sends that to Tongyeok as the
bearer token. This script shows the two halves; in a real backend, the
``issue`` part is a few lines in the login or session endpoint.

    # once: a signing key (keep it on the backend) and the public JWKS (give it to the server)
    python tools/issue_token.py keygen --out-dir secrets/
    tongyeok-server --jwt-jwks secrets/jwks.json --jwt-issuer https://backend.example.com \\
                    --jwt-audience tongyeok --tls-cert ... --tls-key ...

    # per user session: a token for 15 minutes
    python tools/issue_token.py issue --key secrets/signing-key.pem --issuer https://backend.example.com \\
           --audience tongyeok --subject user-4711 --scope "interpret translate" --ttl 900

To rotate: ``keygen`` a new key into another directory, merge its key into
the JWKS the server reads (it re-reads the file when it changes), start
signing with the new key, and drop the old key from the JWKS once the last
token it signed has expired.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def keygen(out_dir: Path) -> tuple[Path, Path]:
    """Write ``signing-key.pem`` (private, ES256) and ``jwks.json`` (its public key) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    kid = uuid.uuid4().hex[:16]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private = out_dir / "signing-key.pem"
    private.touch(mode=0o600)
    private.write_bytes(pem)
    (out_dir / "signing-key.kid").write_text(kid + "\n")
    public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    jwks = out_dir / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk]}, indent=2) + "\n")
    return private, jwks


def issue(key_file: Path, issuer: str, audience: str, subject: str, scope: str, ttl_s: int) -> str:
    """A signed token for ``subject`` with ``scope`` (space-separated), valid for ``ttl_s`` seconds."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    kid_file = key_file.with_suffix(".kid")
    headers = {"kid": kid_file.read_text().strip()} if kid_file.exists() else None
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen", help="make a signing key and its public JWKS")
    k.add_argument("--out-dir", type=Path, required=True)
    i = sub.add_parser("issue", help="print a signed token")
    i.add_argument("--key", type=Path, required=True, help="signing-key.pem from keygen")
    i.add_argument("--issuer", required=True)
    i.add_argument("--audience", required=True)
    i.add_argument("--subject", required=True, help="the app user, e.g. a user id (never an e-mail in clear)")
    i.add_argument("--scope", default="interpret translate", help="space-separated scopes")
    i.add_argument("--ttl", type=int, default=900, help="seconds the token is valid (default 900)")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        private, jwks = keygen(args.out_dir)
        print(f"signing key (keep it secret, on the backend): {private}", file=sys.stderr)
        print(f"public JWKS (for tongyeok-server --jwt-jwks): {jwks}", file=sys.stderr)
        return 0
    print(issue(args.key, args.issuer, args.audience, args.subject, args.scope, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
