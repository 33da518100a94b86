"""The web gateway's HTTP side: the page, tickets, languages, exports and the WebSocket, on the server's loop.

Why aiohttp: one library is the HTTP and WebSocket server (and the client
the tests and the bench use); its ``AppRunner``/``SockSite`` run on a loop
someone else owns (the server's, under ``asyncio.run``) from a socket we make, so
``--processes`` can share the web port as they share the gRPC one
(``SO_REUSEPORT``; tickets open in every process, see ``tickets.py``), with
no signal handlers or event loop of its own to fight; and its WebSocket
gives frame-size limits, heartbeats and flow control (a socket whose reader
falls behind stops being read) without an ASGI server in between.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format

from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_server.api.interpret import InterpretFlow
from tongyeok_server.api.servicer import InterpreterServicer
from tongyeok_server.api.transcripts import TranscriptsServicer
from tongyeok_server.auth.authenticator import Authenticator, Refusal
from tongyeok_server.auth.caller import ANONYMOUS, Caller, Scope, set_current_caller
from tongyeok_server.auth.refusals import IGNORE, RefusalObserver
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.gateway.origins import OriginPolicy
from tongyeok_server.gateway.socket import serve_socket
from tongyeok_server.gateway.tickets import StreamTickets

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# The page loads nothing from elsewhere: scripts, styles, the worklet and the sockets are this server's own.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; frame-ancestors 'none'"
)
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}
_EXPORTS = {"srt": tpb.EXPORT_FORMAT_SRT, "markdown": tpb.EXPORT_FORMAT_MARKDOWN, "vtt": tpb.EXPORT_FORMAT_WEBVTT}


@dataclass
class GatewayParts:
    """What the gateway serves: the shared session layer and the servicers whose answers it reuses."""

    flow: InterpretFlow
    interpreter: InterpreterServicer
    transcripts: TranscriptsServicer
    authenticator: Authenticator | None
    tickets: StreamTickets
    origins: OriginPolicy
    refusals: RefusalObserver = IGNORE


def _json_error(error: ServiceError) -> web.Response:
    body = {"error": {"code": error.code.name, "status": int(error.code.value[0]), "message": error.message}}
    return web.json_response(body, status=_HTTP_STATUS.get(error.code, 500))


class WebGateway:
    """The aiohttp application and its listening socket (see the module docstring)."""

    def __init__(self, parts: GatewayParts) -> None:
        self.parts = parts
        self.app = web.Application(middlewares=[self._headers])
        self.app.router.add_get("/", self._page)
        self.app.router.add_static("/static/", STATIC, append_version=False)
        self.app.router.add_get("/v1/info", self._info)
        self.app.router.add_get("/v1/languages", self._languages)
        self.app.router.add_post("/v1/tickets", self._ticket)
        self.app.router.add_route("OPTIONS", "/v1/{tail:.*}", self._preflight)
        self.app.router.add_get("/v1/sessions/{session_id}/export", self._export)
        self.app.router.add_get("/v1/interpret", self._socket)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle (on the server's loop) ----------------------------------------

    async def start(self, host: str, port: int, *, reuse_port: bool, tls: ssl.SSLContext | None) -> int:
        """Listen on ``host:port``; returns the port (0 if it cannot be bound)."""
        try:
            sock = _listening_socket(host, port, reuse_port)
        except OSError:
            return 0
        # access_log off: a line per page load and ticket at INFO; sessions are logged by the flow.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=tls).start()
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close the sockets still open (GOING_AWAY) and stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- HTTP ------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Content-Security-Policy", CSP)
            self.parts.origins.cors(request, response.headers)
        return response

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def _info(self, request: web.Request) -> web.Response:
        """What the page must know before it starts: whether it needs a credential, whether it may interpret live."""
        return web.json_response({"authRequired": self.parts.authenticator is not None, "simultaneous": True})

    async def _preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    def _caller(self, request: web.Request, scope: Scope | None) -> Caller:
        """The caller the request's ``Authorization`` header proves (anonymous without authentication)."""
        auth = self.parts.authenticator
        if auth is None:
            return ANONYMOUS
        header = request.headers.get("Authorization")
        try:
            caller = auth.authenticate([("authorization", header)] if header is not None else [])
        except Refusal as refusal:
            self.parts.refusals.auth_refused(refusal.reason, refusal.code.name)
            raise ServiceError(refusal.code, refusal.message) from None
        if scope is not None and not caller.allows(scope):
            self.parts.refusals.auth_refused("scope", "PERMISSION_DENIED")
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the credential of {caller.id} does not allow `{scope.value}`; ask the operator for one that does",
            )
        return caller

    async def _languages(self, request: web.Request) -> web.Response:
        try:
            self._caller(request, None)
        except ServiceError as error:
            return _json_error(error)
        return web.json_response(json_format.MessageToDict(self.parts.interpreter.languages()))

    async def _ticket(self, request: web.Request) -> web.Response:
        try:
            self.parts.origins.check(request)
            caller = self._caller(request, Scope.INTERPRET)
        except ServiceError as error:
            return _json_error(error)
        ticket = self.parts.tickets.mint(caller, request.headers.get("Origin", ""))
        return web.json_response(
            {"ticket": ticket.value, "expiresIn": ticket.expires_in_s}, headers={"Cache-Control": "no-store"}
        )

    async def _export(self, request: web.Request) -> web.Response:
        try:
            set_current_caller(self._caller(request, Scope.TRANSCRIPTS))
            fmt = _EXPORTS.get(request.query.get("format", "srt"))
            if fmt is None:
                raise invalid_argument(f"format is {request.query.get('format')!r}; use srt, vtt or markdown")
            out = await self.parts.transcripts.export_session(
                tpb.ExportSessionRequest(name="sessions/" + request.match_info["session_id"], format=fmt)
            )
        except ServiceError as error:
            return _json_error(error)
        return web.Response(
            body=out.content,
            content_type=out.media_type.split(";")[0],
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{out.file_name}"', "Cache-Control": "no-store"},
        )

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        return await serve_socket(request, self.parts.flow, self._admit)

    def _admit(self, request: web.Request) -> Caller:
        """A socket's caller: its ticket's (anonymous without authentication), from an allowed origin."""
        try:
            self.parts.origins.check(request)
            if self.parts.authenticator is None:
                return ANONYMOUS
            return self.parts.tickets.redeem(request.query.get("ticket", ""), request.headers.get("Origin", ""))
        except ServiceError as error:
            reason = "origin" if error.code == grpc.StatusCode.PERMISSION_DENIED else "ticket"
            self.parts.refusals.auth_refused(reason, error.code.name)
            raise


def _listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    name = host.strip("[]") or "::"
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.create_server(
        (name, port), family=family, reuse_port=reuse_port, dualstack_ipv6=family == socket.AF_INET6 and name == "::"
    )
    sock.setblocking(False)
    return sock
