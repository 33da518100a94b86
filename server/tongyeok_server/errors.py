"""The one exception type that crosses from engines and validation to the gRPC edge."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A failure with the gRPC status a caller should see and a message for a person.

    Engines raise it (or report it) for failures that end a stream or a
    request; the servicer turns it into ``context.abort(code, message)``.

    ``message`` is for the caller: the cause and what to do, never a
    credential, and never the inside of the service (addresses, project ids,
    an upstream server's own words). Those go in ``detail``, which only the
    server's log shows (still never a credential).
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def __repr__(self) -> str:
        return f"ServiceError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ServiceError:
    """Shorthand for the most common error: the caller's request is wrong."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)
