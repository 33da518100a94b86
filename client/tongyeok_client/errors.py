"""The one exception the client raises for a failed call."""

from __future__ import annotations

import grpc

__all__ = ["TongyeokError"]


class TongyeokError(Exception):
    """A call failed: the gRPC status code and the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        #: The gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        self.code = code
        #: The server's human-readable message.
        self.details = details

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> TongyeokError:
        """Build from a ``grpc.RpcError`` (which, for calls, is also a ``grpc.Call``)."""
        if isinstance(error, grpc.Call):
            return cls(error.code(), error.details() or "")
        return cls(grpc.StatusCode.UNKNOWN, str(error))
