"""The hop to the process that holds a session: a resume that landed elsewhere is passed on as it is.

Why a hop and not shared state: a live session is a recogniser stream, its
translations in flight and its events: things that live in one process.
Moving them at every reconnect would cost more than relaying one stream,
and resumes are rare. Balancers can keep the hop rare too (the nginx
configuration in deploy/ hashes on the caller's ``x-tongyeok-affinity``
header). The forwarded call carries the caller's own ``authorization``, so
the owner authenticates and authorises it as if it had come directly; a
caller who has none to pass on (a WebSocket's, admitted with a single-use
ticket) is vouched for instead (``relayed_callers.py``). It also carries
``x-tongyeok-forwarded``, so that it is never forwarded more than twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api.handlers import HALF_CLOSE_SETTLE_S, Undecodable
from tongyeok_server.api.relayed_callers import RELAYED_CALLER_HEADER, RelayedCallers
from tongyeok_server.auth.caller import Caller, CallerKind
from tongyeok_server.errors import ServiceError

log = logging.getLogger(__name__)

FORWARDED_HEADER = "x-tongyeok-forwarded"
METHOD = "/tongyeok.v1.Interpreter/Interpret"
_PASSED_ON = ("authorization",)


class Forwarder:
    """Relays Interpret streams to other processes of the deployment, one channel per owner."""

    def __init__(
        self,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        relays: RelayedCallers | None = None,
    ) -> None:
        """``relays`` vouches for callers who have no ``authorization`` to pass on (None: they are not vouched for)."""
        self._credentials = credentials
        self._options = list(options)
        self._relays = relays
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, owner: str) -> grpc.aio.Channel:
        channel = self._channels.get(owner)
        if channel is None:
            if self._credentials is not None and not owner.startswith("unix:"):
                channel = grpc.aio.secure_channel(owner, self._credentials, options=self._options)
            else:
                channel = grpc.aio.insecure_channel(owner, options=self._options)
            self._channels[owner] = channel
        return channel

    def stream(
        self,
        owner: str,
        first: pb.InterpretRequest,
        caller_metadata: Sequence[tuple[str, str | bytes]],
        hops: int,
        caller: Caller,
        session_id: str,
    ) -> Any:
        """A function that relays the rest of ``caller``'s stream (resuming ``session_id``) to ``owner``."""
        metadata = [(k, v) for k, v in caller_metadata if k in _PASSED_ON]
        if not metadata and self._relays is not None and caller.kind is not CallerKind.ANONYMOUS:
            metadata.append((RELAYED_CALLER_HEADER, self._relays.vouch(caller, owner, session_id)))
        metadata.append((FORWARDED_HEADER, str(hops)))

        async def relay(
            requests: AsyncIterator[pb.InterpretRequest | Undecodable],
        ) -> AsyncIterator[pb.InterpretResponse]:
            call = self._channel(owner).stream_stream(
                METHOD,
                request_serializer=pb.InterpretRequest.SerializeToString,
                response_deserializer=pb.InterpretResponse.FromString,
            )(metadata=metadata)  # type: ignore[call-arg]  # no iterator: the upstream task writes

            async def upstream() -> None:
                # ConnectionError: a WebSocket that went away (its edge cancels the relay at once).
                with contextlib.suppress(
                    grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError, ConnectionError
                ):
                    await call.write(first)
                    async for request in requests:
                        if isinstance(request, Undecodable):
                            call.cancel()
                            return
                        await call.write(request)
                    # A caller that cancelled ends this loop as one that half-closed does; its cancel
                    # (which cancels this task) follows. Passed on at once, the half-close would end
                    # the session at its owner instead of leaving it to wait for the next resume.
                    await asyncio.sleep(HALF_CLOSE_SETTLE_S)
                    await call.done_writing()

            sender = asyncio.create_task(upstream(), name="forward-upstream")
            try:
                async for response in call:
                    yield response
                code = await call.code()
                if code != grpc.StatusCode.OK:
                    raise ServiceError(code, await call.details() or "")
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    log.warning("forwarding a resume to %s failed: %s", owner, e.details())
                    raise ServiceError(
                        grpc.StatusCode.UNAVAILABLE,
                        "the server holding this session cannot be reached just now; retry the resume shortly",
                    ) from None
                raise ServiceError(e.code(), e.details() or "") from None
            finally:
                sender.cancel()
                call.cancel()

        return relay

    async def close(self) -> None:
        """Close the channels (server shutdown)."""
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
