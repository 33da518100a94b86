"""The exceptions that cross layers: ``ServiceError`` to a caller at the edge, ``StartError`` to ``main``."""

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


class StartError(Exception):
    """The server cannot start as configured or installed; ``str()`` is the one line that says what to fix.

    A file that cannot be read, a package or a credential missing, a port in
    use: what only starting can find out (values are checked before, by
    ``settings/``, with exit status 2). Components raise it; ``main`` is the
    one place that turns it into a line on stderr and exit status 1. Not a
    ``SystemExit``: raised on the event loop, that would end the loop's
    thread (a test's) rather than reach the caller of ``start``.
    """
