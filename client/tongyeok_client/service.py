"""What the clients of the server's unary services (Transcripts, Expenses) share: metadata, timeout, errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

T = TypeVar("T")


class ServiceClient:
    """Calls on an existing channel with the client's metadata and timeout; failures through ``error``."""

    def __init__(
        self,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = 30.0,
        error: Callable[[grpc.RpcError], Exception] | None = None,
    ) -> None:
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self._error = error or (lambda e: e)

    def _call(self, method: Callable[..., T], request: Any) -> T:
        """One call; its ``grpc.RpcError`` raised as ``error`` makes it (``TongyeokError`` in the client)."""
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise self._error(e) from None
