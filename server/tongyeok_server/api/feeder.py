"""An Interpret stream's feeder: the caller's messages after the first, into its session.

One task per stream, whatever the transport: it reads the requests (audio,
``end``), checks each chunk (whole frames, size), counts the caller's audio
against its day, and awaits ``Session.write_audio`` (the engine's flow
control, which back-pressures the caller through the transport's own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import validation
from tongyeok_server.api.handlers import HALF_CLOSE_SETTLE_S, Undecodable
from tongyeok_server.auth.limits import StreamAdmission
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.session.registry import Managed

log = logging.getLogger(__name__)


async def feed(
    managed: Managed, requests: AsyncIterator[pb.InterpretRequest | Undecodable], admission: StreamAdmission
) -> None:
    """Read the caller's messages after the first until the caller's end (or a protocol error)."""
    session = managed.session
    spec = session.config.audio
    chunks = 0
    n = 1
    try:
        async for request in requests:
            n += 1
            if isinstance(request, Undecodable):
                raise request.error(f"message {n}")
            kind = request.WhichOneof("request")
            if kind == "audio":
                chunks += 1
                validation.audio_chunk(request.audio, chunks, spec)
                # After the caller's own `end` audio is a protocol error; after the server's
                # (a drain handing the session over, the idle timeout) it is dropped: a moved
                # session resends it to the next server from `resend_from_byte`.
                if session.ended_by_caller and managed.resumable:
                    raise invalid_argument(f"message {n} carries audio after the session's `end`")
                over = admission.add_audio(spec.duration_s(len(request.audio)))
                if over is not None:
                    session.finish_with(over)  # the sentence heard so far is finished, then the status
                await session.write_audio(request.audio)
            elif kind == "end":
                session.caller_ended_audio()
            elif kind == "config":
                raise invalid_argument(
                    f"message {n} carries a second `config`; only the first message may, the rest carry `audio`"
                )
            elif kind == "resume":
                raise invalid_argument(f"message {n} carries `resume`; only the first message may")
            else:
                raise invalid_argument(f"message {n} is empty: set `audio` (or `end`)")
    except ServiceError as error:
        session.fail(error)
        return
    except asyncio.CancelledError:
        raise
    except Exception:
        # The caller's side of the call broke (reset, deadline). A resumable session waits for the
        # caller (the stream's end detaches it); any other is over.
        log.debug("session %s: reading the caller's audio failed", session.id, exc_info=True)
        if not managed.resumable:
            session.cancel()
        return
    # gRPC ends the request stream the same way when the caller half-closes
    # and when it cancels; the cancel reaches this task (as CancelledError,
    # from the stream's finally) a few milliseconds later. Wait that long, so
    # that a caller who hangs up is not treated as one who asked for the last
    # sentence to be finished.
    log.debug(
        "session %s: the request stream ended; finishing in %.1f s unless cancelled", session.id, HALF_CLOSE_SETTLE_S
    )
    await asyncio.sleep(HALF_CLOSE_SETTLE_S)
    log.debug("session %s: half-closed by the caller; finishing", session.id)
    session.caller_ended_audio()
