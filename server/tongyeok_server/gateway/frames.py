"""WebSocket frames to ``InterpretRequest``s and ``InterpretResponse``s to frames (protocol: ``docs/WEB.md``).

In: the first frame is text, an ``InterpretRequest`` in proto3 JSON with
``config`` or ``resume`` (a bare ``InterpretConfig`` is taken as
``{"config": ...}``); then binary frames of audio and text frames such as
``{"end": {}}``. Out: each event as a text frame of proto3 JSON; a
``translationAudio`` event's bytes follow it as the next binary frame.
Errors close the socket with ``4000 + the gRPC status code``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import WSMsgType, web
from google.protobuf import json_format

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.gateway.webm import WebmDecoder

#: More frames than this in one second is a flood (MediaRecorder and the page send 4-50 a second).
MAX_FRAMES_PER_S = 200
CLOSE_NORMAL = 1000
#: The largest frame: a 1 MiB audio chunk, as on gRPC (a config with a long glossary fits too).
MAX_FRAME_BYTES = 1024 * 1024 + 1024
TOO_BIG = ServiceError(
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    "a frame was larger than 1 MiB; send audio in smaller chunks (100 ms of 16 kHz PCM is 3,200 bytes)",
)
_REQUEST_KEYS = {"config", "resume", "end", "audio"}


def close_code(code: grpc.StatusCode) -> int:
    """The WebSocket close code for a gRPC status: 1000 for OK, else 4000 + its number (INVALID_ARGUMENT: 4003)."""
    return CLOSE_NORMAL if code == grpc.StatusCode.OK else 4000 + int(code.value[0])


def close_reason(message: str) -> bytes:
    """``message`` cut to the 123 bytes a close frame's reason may hold (the error frame before it has it whole)."""
    raw = message.encode()
    if len(raw) <= 123:
        return raw
    return raw[:120].decode(errors="ignore").encode() + b"..."


def error_frame(error: ServiceError) -> str:
    """The text frame sent before an error close: the status by name and number, and the whole message."""
    return json.dumps(
        {"error": {"code": error.code.name, "status": int(error.code.value[0]), "message": error.message}},
        ensure_ascii=False,
    )


def event_frames(response: pb.InterpretResponse) -> list[str | bytes]:
    """One event as frames: its proto3 JSON, then for speech its audio as a binary frame."""
    audio = b""
    if response.WhichOneof("event") == "translation_audio":
        audio = response.translation_audio.audio
        response.translation_audio.audio = b""
    frames: list[str | bytes] = [json.dumps(json_format.MessageToDict(response), ensure_ascii=False)]
    if audio:
        frames.append(audio)
    return frames


def _request(text: str, n: int) -> pb.InterpretRequest:
    try:
        data: Any = json.loads(text)
    except ValueError as e:
        raise invalid_argument(
            f"frame {n} is not JSON ({e}); text frames carry an InterpretRequest in proto3 JSON"
        ) from None
    if not isinstance(data, dict):
        raise invalid_argument(f"frame {n} is JSON but not an object; send an InterpretRequest in proto3 JSON")
    if n == 1 and not (data.keys() & _REQUEST_KEYS):
        data = {"config": data}  # the InterpretConfig's fields alone
    try:
        return json_format.ParseDict(data, pb.InterpretRequest())
    except json_format.ParseError as e:
        raise invalid_argument(
            f"frame {n} is not an InterpretRequest in proto3 JSON: {str(e)[:200]} "
            "(field names as in protos/tongyeok/v1/interpreter.proto, in lowerCamelCase or as written there)"
        ) from None


class SocketRequests:
    """The caller's frames as the ``InterpretRequest``s the session layer reads (see the module docstring).

    The socket closing without ``end`` is a broken stream, as a cancelled
    gRPC call is: the iterator raises ``ConnectionResetError`` and sets
    ``closed``, so the edge can stop the stream at once.
    """

    def __init__(self, ws: web.WebSocketResponse, webm: bool) -> None:
        self._ws = ws
        self._webm = webm
        self._decoder: WebmDecoder | None = None
        self.closed = asyncio.Event()
        self._window_start = 0.0
        self._window_frames = 0

    async def frames(self) -> AsyncIterator[pb.InterpretRequest]:
        """The requests, as the session layer reads them."""
        n = 0
        try:
            while True:
                # The first frame's deadline is the session layer's (--first-message-timeout), as on gRPC.
                msg = await self._ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    self.closed.set()
                    raise ConnectionResetError("the socket closed")
                n += 1
                self._count_frame(n)
                if len(msg.data) > MAX_FRAME_BYTES:
                    raise TOO_BIG
                if msg.type == WSMsgType.TEXT:
                    yield _request(msg.data, n)
                elif n == 1:
                    raise invalid_argument(
                        "the first frame must be text: the config (InterpretConfig or InterpretRequest) in proto3 "
                        "JSON; binary frames of audio follow it"
                    )
                elif self._webm:
                    pcm = await self._webm_decoder().decode(msg.data)
                    if pcm:
                        yield pb.InterpretRequest(audio=pcm)
                else:
                    yield pb.InterpretRequest(audio=msg.data)
        finally:
            if self._decoder is not None:
                self._decoder.close()

    def _webm_decoder(self) -> WebmDecoder:
        if self._decoder is None:
            self._decoder = WebmDecoder()
        return self._decoder

    def _count_frame(self, n: int) -> None:
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_frames = now, 0
        self._window_frames += 1
        if self._window_frames > MAX_FRAMES_PER_S:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"frame {n}: more than {MAX_FRAMES_PER_S} frames in a second; send audio in chunks of 20 ms or more",
            )
