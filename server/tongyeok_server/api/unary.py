"""What the record's unary services (Transcripts, Expenses) share at the edge.

``serve`` turns a ``ServiceError`` into the call's status; ``decoded``
answers bytes that were not the request (``handlers.Undecodable``) with
INVALID_ARGUMENT; ``in_store`` runs a blocking store call on the loop's
default executor and makes a store that cannot be reached UNAVAILABLE with
a message, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import SQLAlchemyError

from tongyeok_server.api.handlers import Undecodable
from tongyeok_server.errors import ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


async def serve(context: Context, work: Callable[[], Awaitable[T]]) -> T:
    """``work()``'s answer, or its ``ServiceError`` as the call's status (the detail goes to the log)."""
    try:
        return await work()
    except ServiceError as error:
        if error.detail:  # what the caller is not told (an engine's own words) goes to the log
            log.warning("call failed: %s (%s)", error.message, error.detail)
        await context.abort(error.code, error.message)
        raise  # unreachable: abort raises


def decoded(request: object) -> None:
    """Bytes that were not the request message (see ``api/handlers.py``) are INVALID_ARGUMENT, not a traceback."""
    if isinstance(request, Undecodable):
        raise request.error("the request")


async def in_store(call: Callable[[], T], store: str, service: str) -> T:
    """``call()`` off the loop; UNAVAILABLE naming ``store`` when the database cannot be reached."""
    try:
        return await asyncio.get_running_loop().run_in_executor(None, call)
    except SQLAlchemyError as error:
        log.warning("record store unreachable for a %s call: %s", service, str(error).splitlines()[0][:300])
        raise ServiceError(
            grpc.StatusCode.UNAVAILABLE, f"the {store} cannot be reached right now; try again shortly"
        ) from None
