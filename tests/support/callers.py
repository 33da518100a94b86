"""A test double for authentication: the caller named in a test metadata header.

Until the real authentication (API keys, JWTs) is on the server, tests that
need two callers, or a caller without some scope, pass
``interceptors=[TestCallerInterceptor()]`` to the server factory and send
``metadata=as_caller("alice", "transcripts")``. It lives only here, never in
the server package: it believes whatever the header says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from tongyeok_server.auth.caller import Caller, CallerKind, Scope, set_current_caller

HEADER = "x-tongyeok-test-caller"
ALL_BUT_ADMIN = ("interpret", "translate", "transcripts")


def as_caller(caller_id: str, *scopes: str) -> tuple[tuple[str, str], ...]:
    """Metadata that makes the call ``caller_id``'s, with ``scopes`` (default: all but transcripts:admin)."""
    return ((HEADER, f"{caller_id};{','.join(scopes or ALL_BUT_ADMIN)}"),)


def _caller(value: str) -> Caller:
    caller_id, _, scopes = value.partition(";")
    return Caller(f"test:{caller_id}", CallerKind.API_KEY, frozenset(Scope(s) for s in scopes.split(",") if s))


class TestCallerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Sets ``current_caller()`` from the test header for the handler's whole run (anonymous without it)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        value = dict(handler_call_details.invocation_metadata or ()).get(HEADER)
        if handler is None or value is None:
            return handler
        caller = _caller(str(value))
        h: Any = handler
        if h.unary_unary is not None:
            inner_uu = h.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                set_current_caller(caller)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=h.request_deserializer, response_serializer=h.response_serializer
            )
        inner = h.unary_stream or h.stream_stream

        async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
            set_current_caller(caller)
            async for response in inner(request, context):
                yield response

        factory = grpc.unary_stream_rpc_method_handler if h.unary_stream else grpc.stream_stream_rpc_method_handler
        return factory(
            streaming, request_deserializer=h.request_deserializer, response_serializer=h.response_serializer
        )
