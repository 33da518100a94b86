"""The gRPC edge of authentication: every call but health checks needs a valid token and the right scope.

``AuthInterceptor`` runs before a method's handler. It authenticates the
call's metadata, checks the scope the method needs, and then runs the
handler with the caller set (``auth.caller.current_caller()``), or answers
UNAUTHENTICATED / PERMISSION_DENIED itself. Health checks stay open (load
balancers and kubelets probe without tokens); reflection and anything not
listed need any valid token. A resume relayed from another process of the
deployment may instead carry a caller that process vouched for
(``relayed``: ``api/relayed_callers.py``), accepted on ``Interpret`` only.
Refusals are logged at most once per ``LOG_EVERY_S`` as a count, so a
client cannot flood the log, and each is told to the ``RefusalObserver``
(the metrics).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from tongyeok_server.auth.authenticator import Authenticator, Refusal
from tongyeok_server.auth.caller import Caller, Scope, set_current_caller
from tongyeok_server.auth.refusals import IGNORE, RefusalObserver

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0
#: The only method a relay between the deployment's processes calls (a resume passed on to the session's owner).
RELAYABLE = "/tongyeok.v1.Interpreter/Interpret"
#: The caller another process vouched for in a call's metadata, None when there is none; raises ``Refusal``.
RelayedCaller = Callable[[Sequence[tuple[str, str | bytes]] | None], Caller | None]


class _Public:
    """No token needed."""


class _AnyScope:
    """Any valid token, whatever its scopes."""


PUBLIC = _Public()
ANY_SCOPE = _AnyScope()
Requirement = Scope | _Public | _AnyScope

#: What each method needs; the first matching prefix wins; unlisted methods need any valid token.
RULES: tuple[tuple[str, Requirement], ...] = (
    ("/grpc.health.v1.Health/", PUBLIC),
    ("/tongyeok.v1.Interpreter/Interpret", Scope.INTERPRET),
    ("/tongyeok.v1.Interpreter/TranslateText", Scope.TRANSLATE),
    ("/tongyeok.v1.Interpreter/ListLanguages", ANY_SCOPE),
    ("/tongyeok.v1.Transcripts/", Scope.TRANSCRIPTS),
    ("/tongyeok.v1.Expenses/", Scope.EXPENSES),
)


def requirement(method: str) -> Requirement:
    """What calling ``method`` (``/package.Service/Method``) needs."""
    for prefix, rule in RULES:
        if method.startswith(prefix):
            return rule
    return ANY_SCOPE


class _RefusalLog:
    """Counts refusals and writes one line per period, so that a client cannot flood the log."""

    def __init__(self, observer: RefusalObserver) -> None:
        self._counts: Counter[str] = Counter()
        self._last_log = 0.0
        self._observer = observer

    def add(self, refusal: Refusal, peer: str) -> None:
        self._observer.auth_refused(refusal.reason, refusal.code.name)
        self._counts[refusal.reason] += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            summary = ", ".join(f"{reason}={n}" for reason, n in sorted(self._counts.items()))
            log.info("refused calls since the last report: %s (latest from %s: %s)", summary, peer, refusal.message)
            self._counts.clear()
            self._last_log = now


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    """Authenticates and authorises every call (see the module docstring)."""

    def __init__(
        self, authenticator: Authenticator, refusals: RefusalObserver = IGNORE, relayed: RelayedCaller | None = None
    ) -> None:
        self._auth = authenticator
        self._refusals = _RefusalLog(refusals)
        self._relayed = relayed

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = handler_call_details.method
        rule = requirement(method)
        handler = await continuation(handler_call_details)
        if isinstance(rule, _Public) or handler is None:
            return handler
        try:
            caller = self._caller(method, handler_call_details.invocation_metadata)
            if isinstance(rule, Scope) and not caller.allows(rule):
                raise _permission_denied(caller, rule)
        except Refusal as refusal:
            return _refusing(handler, refusal, self._refusals)
        return _as_caller(handler, caller)

    def _caller(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
        relayed = self._relayed(metadata) if self._relayed is not None and method == RELAYABLE else None
        if relayed is None:
            return self._auth.authenticate(metadata)
        revoked = self._auth.revoked(relayed)  # trusted exactly as a direct caller: a revoked key is refused
        if revoked is not None:
            raise Refusal(revoked.code, revoked.message, "revoked")
        return relayed


def _permission_denied(caller: Caller, scope: Scope) -> Refusal:
    allowed = ", ".join(sorted(s.value for s in caller.scopes)) or "nothing"
    return Refusal(
        grpc.StatusCode.PERMISSION_DENIED,
        f"the credential of {caller.id} does not allow `{scope.value}` (it allows: {allowed}); "
        f"ask the operator for a token with the `{scope.value}` scope",
        "scope",
    )


def _kind(handler: grpc.RpcMethodHandler[Any, Any]) -> str:
    return (
        ("stream" if handler.request_streaming else "unary")
        + "_"
        + ("stream" if handler.response_streaming else "unary")
    )


def _as_caller(handler: grpc.RpcMethodHandler[Any, Any], caller: Caller) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` run with ``caller`` as the current caller (a ContextVar of the RPC's task)."""
    kind = _kind(handler)
    behavior: Any = getattr(handler, kind)
    if handler.response_streaming:

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            set_current_caller(caller)
            async for response in behavior(request, context):
                yield response

        return handler._replace(**{kind: streaming})  # type: ignore[attr-defined, no-any-return]

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        set_current_caller(caller)
        return await behavior(request, context)

    return handler._replace(**{kind: unary})  # type: ignore[attr-defined, no-any-return]


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], refusal: Refusal, refusals: _RefusalLog
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape that answers ``refusal``'s status and nothing else."""
    kind = _kind(handler)

    async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        refusals.add(refusal, context.peer())
        await context.abort(refusal.code, refusal.message)

    if handler.response_streaming:

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await refuse(context)
            yield  # pragma: no cover - abort raises; this makes the function an async generator

        return handler._replace(**{kind: streaming})  # type: ignore[attr-defined, no-any-return]

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await refuse(context)

    return handler._replace(**{kind: unary})  # type: ignore[attr-defined, no-any-return]
