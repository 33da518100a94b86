"""One WebSocket, one Interpret stream: the gateway's edge of ``api/interpret.InterpretFlow``.

The socket is authenticated by its ticket (or anonymous when the server has
no authentication) and its origin checked before the flow sees anything;
then the flow reads the frames (``frames.SocketRequests``) and its events
are written back as frames. A ``ServiceError``, whether a refusal or a
session ending with an error, closes the socket with ``4000 + status`` after
an error frame with the whole message; a session's normal end closes it with
1000. The socket closing under a stream is a broken stream, as a cancelled
gRPC call is: a resumable session is detached and waits for a resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, web

from tongyeok_server.api.interpret import InterpretFlow, Stream
from tongyeok_server.auth.caller import Caller, set_current_caller
from tongyeok_server.errors import ServiceError
from tongyeok_server.gateway.frames import (
    CLOSE_NORMAL,
    MAX_FRAME_BYTES,
    TOO_BIG,
    SocketRequests,
    close_code,
    close_reason,
    error_frame,
    event_frames,
)

log = logging.getLogger(__name__)

#: What aiohttp reads of one frame before it gives up on the socket (1009, and the peer may see only a reset).
#: Frames between MAX_FRAME_BYTES and this are read whole and refused cleanly (4008, as gRPC's RESOURCE_EXHAUSTED).
READ_LIMIT_BYTES = 2 * MAX_FRAME_BYTES


class GatewaySocket(web.WebSocketResponse):
    """aiohttp's WebSocket, whose protocol-error close says why in words (aiohttp's own sends a bare code)."""

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            with contextlib.suppress(Exception):
                await self.send_str(error_frame(TOO_BIG))
            message = close_reason(TOO_BIG.message)
        return await super().close(code=code, message=message, drain=drain)


async def close_with(ws: web.WebSocketResponse, error: ServiceError | None) -> None:
    """Close ``ws``: 1000 after a normal end, else an error frame, then ``4000 + status`` and the reason."""
    if ws.closed:
        return
    with contextlib.suppress(Exception):  # the peer may be gone already
        if error is None:
            await ws.close(code=CLOSE_NORMAL, message=b"the session ended")
        else:
            await ws.send_str(error_frame(error))
            await ws.close(code=close_code(error.code), message=close_reason(error.message))


async def serve_socket(
    request: web.Request,
    flow: InterpretFlow,
    admit: Callable[[web.Request], Caller],
) -> web.WebSocketResponse:
    """The WebSocket at ``/v1/interpret``; ``admit`` checks its ticket and origin (raises ``ServiceError``)."""
    ws = GatewaySocket(max_msg_size=READ_LIMIT_BYTES, compress=False, heartbeat=30.0)
    await ws.prepare(request)
    try:
        caller = admit(request)
    except ServiceError as error:
        await close_with(ws, error)
        return ws
    set_current_caller(caller)  # this task's, and so the stream's and its feeder's
    reader = SocketRequests(ws, webm=request.query.get("audio", "") == "webm")
    stream = Stream(request.remote or "", transport="websocket")
    pump = asyncio.create_task(_pump(ws, flow, reader, stream), name="websocket-stream")
    closed = asyncio.create_task(reader.closed.wait(), name="websocket-closed")
    try:
        await asyncio.wait({pump, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        if not pump.done():
            pump.cancel()  # the caller went away: the stream is broken, as a cancelled gRPC call is
        with contextlib.suppress(asyncio.CancelledError):
            await pump
    if pump.cancelled():
        return ws
    await close_with(ws, pump.result())
    return ws


async def _pump(ws: web.WebSocketResponse, flow: InterpretFlow, reader: SocketRequests, stream: Stream) -> Any:
    """Run the stream, writing its events; returns the error it ended with (None: a normal end, or the peer left)."""
    try:
        async with contextlib.aclosing(flow.serve(reader.frames(), stream)) as responses:
            async for response in responses:
                for frame in event_frames(response):
                    if isinstance(frame, str):
                        await ws.send_str(frame)
                    else:
                        await ws.send_bytes(frame)
    except ServiceError as error:
        return error
    except ConnectionError:
        log.debug("a WebSocket went away while its events were being written")
        reader.closed.set()
    return None
