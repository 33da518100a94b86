"""Reading a streamed chat completion: SSE events, then the content deltas and the finish reason.

Parsed here with ``json.loads`` per event rather than by the SDK's stream,
which builds a pydantic chunk per event and cost a third of the client CPU
of a translation. The rules are the SDK's: stop at ``[DONE]``, skip chunks
without choices (usage chunks, some servers' keep-alives), an
``{"error": ...}`` event is a failed stream.
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

    def feed(self, piece: bytes) -> list[bytes]:
        """The data of the events ``piece`` completes."""
        buffer = self._tail + piece if self._tail else piece
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe half a CRLF: decide with the next piece
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._tail = lines.pop() + held
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        return events


class ChunkReader:
    """The content of one streamed chat completion, fed its body's bytes as they arrive.

    ``feed`` returns the text of the content deltas the piece completes (the
    first one without leading whitespace: models sometimes open with a
    newline, the caller's screen should not) and nothing once ``[DONE]``
    came (``done``); ``finish_reason`` is the model's (``None``: none yet).
    Raises ``Retry`` for an error event or anything that is not a chat
    completion chunk. Synchronous, so a token costs no generator frame.
    """

    __slots__ = ("_events", "_failures", "_started", "done", "finish_reason")

    def __init__(self, failures: Failures) -> None:
        self._failures = failures
        self._events = SSEEvents()
        self._started = False
        self.finish_reason: str | None = None
        self.done = False

    def feed(self, data: bytes) -> list[str]:
        """The content deltas ``data`` completes."""
        if self.done:
            return []
        contents: list[str] = []
        try:
            for event in self._events.feed(data):
                if event.startswith(b"[DONE]"):
                    self.done = True
                    break
                chunk = json.loads(event)
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    raise Retry(self._failures.stream_error(chunk["error"]))
                choices = chunk.get("choices")
                if not choices:
                    continue
                choice = choices[0]
                delta = choice.get("delta")
                content = delta.get("content") if delta else None
                if content:
                    if not self._started:
                        content = content.lstrip()
                        self._started = bool(content)
                    if content:
                        contents.append(content)
                reason = choice.get("finish_reason")
                if reason:
                    self.finish_reason = reason
        except (ValueError, LookupError, AttributeError, TypeError) as err:
            # Not JSON, or not chat completion chunks: a broken server or proxy.
            raise Retry(self._failures.broke_off(f"a malformed event: {type(err).__name__}")) from None
        return contents
