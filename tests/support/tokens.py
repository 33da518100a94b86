"""JWTs for tests: a signing key, its JWKS file, and tokens good and bad."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://backend.test"
AUDIENCE = "tongyeok-test"


class Signer:
    """A key that signs tokens, and the JWKS entry that lets the server check them."""

    def __init__(self, kid: str, algorithm: str = "ES256") -> None:
        self.kid = kid
        self.algorithm = algorithm
        if algorithm.startswith("ES"):
            self.key: Any = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})

    def token(self, subject: str = "user-1", scope: str = "interpret translate", **overrides: Any) -> str:
        """A token; ``overrides`` replace claims (None removes one); ``exp_in``/``nbf_in`` are relative."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "scope": scope,
            "iat": now,
            "exp": now + int(overrides.pop("exp_in", 600)),
        }
        if "nbf_in" in overrides:
            claims["nbf"] = now + int(overrides.pop("nbf_in"))
        headers = {"kid": overrides.pop("kid", self.kid)}
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


def write_jwks(path: Path, *signers: Signer) -> Path:
    """Write the public keys of ``signers`` as a JWKS file."""
    path.write_text(json.dumps({"keys": [s.jwk for s in signers]}))
    return path
