"""Opus in WebM, as a browser's ``MediaRecorder`` makes it, decoded to 16-bit mono PCM at 16 kHz with PyAV.

The WebM stream arrives in pieces (one per ``MediaRecorder`` timeslice) and
FFmpeg's demuxer reads from a file object, so the decoder runs in a thread
of its own that reads from a queue: ``decode(piece)`` hands a piece over and
waits until the thread has turned everything it could into PCM and asks for
more. The session then sees ordinary LINEAR16 audio (its record, its
acknowledgements, its limits count PCM).
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import threading

import grpc

from tongyeok_server.errors import ServiceError

log = logging.getLogger(__name__)

RATE_HZ = 16000
BAD_WEBM = (
    "the audio frames are not Opus in WebM as MediaRecorder makes it (audio/webm;codecs=opus): {why}; "
    "send that, or 16-bit PCM without ?audio=webm"
)


class _Pipe(io.RawIOBase):
    """The file FFmpeg reads: blocks until the next piece arrives; b'' once the stream is over."""

    def __init__(self, decoder: WebmDecoder) -> None:
        self._decoder = decoder
        self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            piece = self._decoder._next_piece()
            if piece is None:
                return 0
            self._buffer += piece
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        del self._buffer[:n]
        return n


class WebmDecoder:
    """One stream's decoder (see the module docstring). Use on the event loop; ``close`` when done."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pieces: queue.Queue[bytes | None] = queue.Queue()
        self._pcm: list[bytes] = []
        self._lock = threading.Lock()
        self._hungry: asyncio.Future[None] | None = None
        self._error = ""
        self._thread = threading.Thread(target=self._run, name="webm-decode", daemon=True)
        self._thread.start()

    async def decode(self, piece: bytes) -> bytes:
        """The PCM that ``piece`` completes (possibly none yet); raises INVALID_ARGUMENT for what is not WebM/Opus."""
        if not self._thread.is_alive():
            self._raise_if_failed()
            return b""
        hungry = self._loop.create_future()
        self._hungry = hungry
        self._pieces.put(piece)
        await hungry
        self._raise_if_failed()
        with self._lock:
            pcm, self._pcm = b"".join(self._pcm), []
        return pcm

    def close(self) -> None:
        """Stop the thread (it ends once FFmpeg sees the end of the stream)."""
        self._pieces.put(None)

    def _raise_if_failed(self) -> None:
        if self._error:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, BAD_WEBM.format(why=self._error))

    # -- the thread ------------------------------------------------------------

    def _next_piece(self) -> bytes | None:
        if self._pieces.empty():
            self._wake()  # everything so far is decoded: decode() may return
        return self._pieces.get()

    def _wake(self) -> None:
        hungry = self._hungry
        if hungry is not None:
            self._loop.call_soon_threadsafe(_settle, hungry)

    def _run(self) -> None:
        import av  # PyAV: FFmpeg's demuxer and libopus

        try:
            with av.open(_Pipe(self), mode="r", format="matroska") as container:
                resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE_HZ)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        with self._lock:
                            self._pcm.append(bytes(out.planes[0])[: out.samples * 2])
        except Exception as e:  # FFmpeg's errors (InvalidDataError and kin), a stream without audio
            self._error = str(e).split(":")[0][:120] or type(e).__name__
            log.debug("WebM decoding failed: %s", e)
        finally:
            self._wake()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
