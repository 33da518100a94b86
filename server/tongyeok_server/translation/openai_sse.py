"""Reading a streamed chat completion: SSE events, then the content deltas and the finish reason.

Parsed here with ``json.loads`` per event rather than by the SDK's model
classes, which built a pydantic chunk per event. The rules are the SDK's:
stop at ``[DONE]``, skip chunks without choices (usage chunks, some
servers' keep-alives), an ``{"error": ...}`` event is a failed stream.
"""

from __future__ import annotations

import json

from tongyeok_server.translation.openai_errors import Failures, Retry


class SSEEvents:
    """Splits an SSE body, fed in pieces as they arrive, into the data of its events.

    As the SDK's decoder: lines end in LF, CRLF or CR; an event's ``data:``
    lines are joined by LF and it ends at a blank line; comments and other
    fields are ignored, and so is an event the body ends before.
    """

    __slots__ = ("_data", "_tail")

    def __init__(self) -> None:
        self._tail = b""  # an unfinished line
        self._data: list[bytes] = []  # the data lines of the unfinished event

    def feed(self, piece: bytes) -> list[str]:
        """The data of the events ``piece`` completes."""
        buffer = self._tail + piece if self._tail else piece
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe half a CRLF: decide with the next piece
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._tail = lines.pop() + held
        events: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append((data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace"))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        return events


class ChunkReader:
    """The content of one streamed chat completion, fed the data of its events as they arrive.

    ``event`` returns the text of a content delta (the first one without
    leading whitespace: models sometimes open with a newline, the caller's
    screen should not), or "" for an event without one; ``done`` once
    ``[DONE]`` came; ``finish_reason`` is the model's (``None``: none yet).
    Raises ``Retry`` for an error event or anything that is not a chat
    completion chunk.
    """

    __slots__ = ("_failures", "_started", "done", "finish_reason")

    def __init__(self, failures: Failures) -> None:
        self._failures = failures
        self._started = False
        self.finish_reason: str | None = None
        self.done = False

    def event(self, data: str) -> str:
        """The content delta of one event's data."""
        if self.done or not data:
            return ""
        if data.startswith("[DONE]"):
            self.done = True
            return ""
        try:
            chunk = json.loads(data)
            if not isinstance(chunk, dict):
                return ""
            if chunk.get("error"):
                raise Retry(self._failures.stream_error(chunk["error"]))
            choices = chunk.get("choices")
            if not choices:
                return ""
            choice = choices[0]
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = reason
            delta = choice.get("delta")
            content = delta.get("content") if delta else None
        except (ValueError, LookupError, AttributeError, TypeError) as err:
            # Not JSON, or not chat completion chunks: a broken server or proxy.
            raise Retry(self._failures.broke_off(f"a malformed event: {type(err).__name__}")) from None
        if not content or not isinstance(content, str):
            return ""
        if not self._started:
            content = content.lstrip()
            self._started = bool(content)
        return content

    def check_finish(self) -> None:
        """After the body: no finish reason is a cut (retried); ``content_filter`` and ``length`` fail the sentence.

        Neither is retried: the same sentence would get the same answer. A
        translation cut at the model's output limit is not passed off as the
        whole translation: the caller gets a failure instead of a Complete.
        """
        if self.finish_reason is None:
            # The body ended cleanly but without a finish reason: a proxy or
            # server that closes a cut stream politely.
            raise Retry(self._failures.broke_off("the body ended without a finish_reason"))
        if self.finish_reason == "content_filter":
            raise self._failures.content_filter()
        if self.finish_reason == "length":
            raise self._failures.output_limit()
