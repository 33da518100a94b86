"""A fake Google OAuth 2.0 token endpoint (``https://oauth2.googleapis.com/token``), over HTTP on 127.0.0.1.

Real ``google.oauth2.credentials.Credentials`` (authorized-user credentials,
what ``gcloud auth application-default login`` leaves) refresh against it
when their ``token_uri`` points here. It answers the refresh-token grant as
Google does:

- by default 200 with a new bearer token (``ya29.fake-<n>``, one hour);
- after ``revoke()``, 400 ``{"error": "invalid_grant", "error_description":
  "Token has been expired or revoked."}``, what Google says to a refresh
  token that was revoked or expired (a password change, the reauth policy);
- after ``fail(status)``, that HTTP status with Google's ``internal_failure``
  body (the transient case google-auth itself retries);
- after ``hang_up(n)``, the next ``n`` requests get no answer at all: the
  connection is closed (a token service that cannot be reached).

``expires_in`` sets the lifetime of the tokens it grants (Google: about an
hour); ``revoke_after(n)`` grants ``n`` more tokens, then revokes.

``requests`` records every grant it received; ``issued`` the tokens it gave
out, for a fake resource server to accept.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

INVALID_GRANT = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
INTERNAL_FAILURE = {"error": "internal_failure", "error_description": "Backend Error"}
EXPECTED_CLIENT_ID = "fake-client-id.apps.googleusercontent.com"


@dataclass(frozen=True)
class TokenRequest:
    """One POST the endpoint received: its form fields (one value each)."""

    form: dict[str, str]


class FakeTokenEndpoint:
    """The fake endpoint; ``start()`` serves it on a thread, ``token_uri`` is what credentials point at."""

    def __init__(self) -> None:
        self.requests: list[TokenRequest] = []
        self.issued: set[str] = set()
        self._answer: tuple[int, dict[str, Any]] | None = None  # None: grant a token
        self.expires_in = 3599
        self._grants_left: int | None = None  # revoke once this many more were granted
        self._hang_ups = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(_Handler):
            endpoint = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def token_uri(self) -> str:
        """The URL of the token endpoint."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def user_credentials(self) -> Any:
        """What ``gcloud auth application-default login`` leaves, pointed at this endpoint; no token yet."""
        import google.oauth2.credentials

        return google.oauth2.credentials.Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token="1//fake-refresh-token",
            token_uri=self.token_uri,
            client_id=EXPECTED_CLIENT_ID,
            client_secret="fake-client-secret",
            scopes=["https://www.googleapis.com/auth/cloud-platform"],
        )

    def start(self) -> FakeTokenEndpoint:
        """Serve from a thread of its own."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-oauth", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTokenEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def revoke(self) -> None:
        """Answer every later refresh with 400 ``invalid_grant`` (the refresh token is dead)."""
        with self._lock:
            self._answer = (400, INVALID_GRANT)

    def revoke_after(self, grants: int) -> None:
        """Grant ``grants`` more tokens, then answer ``invalid_grant``."""
        with self._lock:
            self._grants_left = grants

    def hang_up(self, times: int = 1) -> None:
        """Close the connection of the next ``times`` requests without an answer."""
        with self._lock:
            self._hang_ups = times

    def fail(self, status: int = 503) -> None:
        """Answer every later refresh with ``status`` and Google's ``internal_failure`` body."""
        with self._lock:
            self._answer = (status, INTERNAL_FAILURE)

    def recover(self) -> None:
        """Grant tokens again."""
        with self._lock:
            self._answer = None

    def _grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        """The status and JSON answer to one request (None: hang up)."""
        with self._lock:
            self.requests.append(TokenRequest(form))
            if self._hang_ups:
                self._hang_ups -= 1
                return None
            if self._grants_left == 0:
                self._answer, self._grants_left = (400, INVALID_GRANT), None
            if self._answer is not None:
                return self._answer
            if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
                return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
            if form.get("client_id") != EXPECTED_CLIENT_ID:
                return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
            token = f"ya29.fake-{len(self.issued) + 1}"
            self.issued.add(token)
            if self._grants_left is not None:
                self._grants_left -= 1
        answer: dict[str, Any] = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        if "scope" in form:
            answer["scope"] = form["scope"]
        return 200, answer


class _Handler(BaseHTTPRequestHandler):
    endpoint: FakeTokenEndpoint

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fields = parse_qs(self.rfile.read(length).decode("utf-8"))
        grant = self.endpoint._grant({k: v[0] for k, v in fields.items()})
        if grant is None:
            self.close_connection = True
            return  # nothing sent: the client sees the connection close
        status, answer = grant
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
