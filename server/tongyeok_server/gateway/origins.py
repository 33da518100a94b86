"""Which pages may use the gateway: ``--web-allowed-origins``.

A browser sends ``Origin`` with a WebSocket handshake and with a
cross-origin ``POST``; a page of another site must not open a stream in the
name of a user who is signed in here. Allowed: the server's own origin
(the page it serves), and each origin listed (``https://app.example.com``;
``*`` for any). Requests without ``Origin`` come from programs, not pages,
and are let through: origin checks protect browsers, and a program can
send any header it likes anyway. Allowed cross-origin pages also get the
CORS headers they need to mint a ticket.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import grpc
from aiohttp import web

from tongyeok_server.errors import ServiceError


class OriginPolicy:
    """Checks ``Origin`` against the server's own origin and ``--web-allowed-origins``."""

    def __init__(self, allowed: str) -> None:
        """``allowed``: comma-separated origins, ``*`` for any, empty for the server's own only."""
        self._allowed = {o.strip().rstrip("/").lower() for o in allowed.split(",") if o.strip()}
        self._any = "*" in self._allowed

    def allows(self, request: web.Request) -> bool:
        """Whether the request's page (if any) may use the gateway."""
        origin = request.headers.get("Origin", "").lower()
        if not origin:
            return True
        return self._any or origin in self._allowed or origin == _own_origin(request)

    def check(self, request: web.Request) -> None:
        """Raise PERMISSION_DENIED for a page that may not use the gateway."""
        if not self.allows(request):
            origin = request.headers.get("Origin", "")
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"pages of {origin[:100]} may not use this server; the operator can allow them with "
                "--web-allowed-origins",
            )

    def cors(self, request: web.Request, headers: MutableMapping[str, str]) -> None:
        """CORS headers for an allowed page of another origin."""
        origin = request.headers.get("Origin", "")
        if origin and origin.lower() != _own_origin(request) and self.allows(request):
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            headers["Access-Control-Allow-Methods"] = "GET, POST"
            headers["Vary"] = "Origin"


def _own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}".lower()
