"""The one exception type that crosses from engines and validation to the gRPC edge."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A failure with the gRPC status a caller should see and a message for a person.

    Engines raise it (or report it) for failures that end a stream or a
    request; the servicer turns it into ``context.abort(code, message)``.
    Messages must never contain credentials.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ServiceError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServiceError:
    """Shorthand for the most common error: the caller's request is wrong."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)
