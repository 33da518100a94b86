"""What a failed call to an OpenAI-compatible server means: retry or not, and in whose words.

Callers get the cause in our words ("the translation server", the HTTP
status); the server's address and its own words, redacted of anything that
looks like a key, are the error's ``detail`` for the log. Never a key in
either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import grpc

from tongyeok_server.errors import ServiceError

# A live interpreter cannot usefully wait longer than this for a rate limit
# to lift; a longer Retry-After fails the sentence at once.
MAX_RETRY_AFTER_S = 10.0
RETRYABLE_STATUS = frozenset({408, 409, 429})
#: What looks like an API key (or a masked one) in an upstream message: never logged.
KEY_LIKE = re.compile(r"\b(sk|key|Bearer)[-_ ][A-Za-z0-9_\-*.]{3,}", re.IGNORECASE)


class Retry(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, error: ServiceError, delay_s: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error  # raised if the budget is spent
        self.delay_s = delay_s  # the server's Retry-After, if any


class Failures:
    """Builds the errors of one engine (its endpoint and model named; its key never)."""

    def __init__(self, endpoint: str, model: str, timeout_s: float, secrets: tuple[str, ...]) -> None:
        self.endpoint = endpoint
        self.model = model
        self.timeout_s = timeout_s
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        """``text`` without the API key or anything that looks like a (masked) key."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return KEY_LIKE.sub("[redacted]", text)

    def status(self, status: int, headers: Mapping[str, str], upstream: str) -> Exception:
        """An HTTP error status: a ``Retry`` (408, 409, 429, 5xx) or a permanent ``ServiceError``."""
        detail = f"{self.endpoint}: HTTP {status}: {self.redact(upstream[:300] or 'no detail')}"
        if status in RETRYABLE_STATUS or status >= 500:
            delay = retry_after_s(headers)
            if status == 429:
                error = ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "the translation server is rate-limiting requests (HTTP 429); try again shortly",
                    detail=detail,
                )
            else:
                error = ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the translation server failed (HTTP {status}); try again shortly",
                    detail=detail,
                )
            if delay is not None and delay > MAX_RETRY_AFTER_S:
                too_long = f"it asks to wait {delay:.0f} s, too long for live interpretation"
                return ServiceError(error.code, f"{error.message}; {too_long}", detail=detail)
            return Retry(error, delay)
        if status in (401, 403):
            # The server's credentials, not the caller's: the upstream message
            # (which quotes a masked key) is left out, of the log too.
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the translation server refused the server's API key (HTTP {status}); "
                "the operator must check OPENAI_API_KEY and --openai-base-url",
                detail=f"{self.endpoint}: HTTP {status}",
            )
        if status == 404:
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the translation server does not know model {self.model!r} or the chat completions endpoint "
                "(HTTP 404); the operator must check --openai-model and --openai-base-url",
                detail=detail,
            )
        return ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the translation server rejected the translation request (HTTP {status}); its words are in the server log",
            detail=detail,
        )

    def timeout(self) -> ServiceError:
        """No answer (connect, headers or the next token) within the timeout."""
        return ServiceError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the translation server did not answer within {self.timeout_s:g} s",
            detail=self.endpoint,
        )

    def broke_off(self, reason: str) -> ServiceError:
        """The body broke off, or carried something that is not a chat completion chunk."""
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "the translation stream broke off",
            detail=f"{self.endpoint}: {self.redact(reason)}",
        )

    def stream_error(self, error: object) -> ServiceError:
        """An ``{"error": ...}`` event inside the stream (as the SDK reads it: its message, or a generic one)."""
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        return self.broke_off(f"an error event: {message[:300]}")

    def unreachable(self, reason: str) -> ServiceError:
        """No connection (refused, reset, DNS, TLS)."""
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "could not reach the translation server",
            detail=f"{self.endpoint}: {self.redact(reason)}",
        )

    def content_filter(self) -> ServiceError:
        """The model's content filter stopped the answer: retrying would not change it."""
        return ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the model's content filter refused to translate this sentence",
            detail=f"{self.endpoint}: finish_reason content_filter",
        )

    def output_limit(self) -> ServiceError:
        """The answer stopped at the model's output limit (``length``): what came is not the whole translation."""
        return ServiceError(
            grpc.StatusCode.OUT_OF_RANGE,
            f"the translation was cut at model {self.model!r}'s output limit; the sentence is too long to translate "
            "whole, say it in shorter sentences",
            detail=f"{self.endpoint}: finish_reason length",
        )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's ``retry-after-ms`` or ``retry-after`` (seconds), if it gave one we can read."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            return max(0.0, float(headers["retry-after"]))
    except ValueError:
        pass  # an HTTP date: fall back to our own back-off
    return None
