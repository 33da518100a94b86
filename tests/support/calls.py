"""Building Interpret requests and collecting responses in tests."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from tongyeok_client.proto import interpreter_pb2 as pb


def config(
    *,
    sources: Iterable[str] = ("en-US",),
    targets: Iterable[str] = ("es",),
    encoding: pb.AudioEncoding = pb.AUDIO_ENCODING_LINEAR16,
    rate: int = 16000,
    channels: int = 1,
    interim: bool = True,
    vad: bool = False,
    **options: Any,
) -> pb.InterpretRequest:
    """An InterpretRequest carrying a config."""
    return pb.InterpretRequest(
        config=pb.InterpretConfig(
            audio_format=pb.AudioFormat(encoding=encoding, sample_rate_hertz=rate, channel_count=channels),
            source_language_codes=list(sources),
            target_language_codes=list(targets),
            interim_results=interim,
            voice_activity_events=vad,
            translation_options=pb.TranslationOptions(**options) if options else None,
        )
    )


def audio_requests(data: bytes, chunk_bytes: int, pace_s: float = 0.0) -> Iterator[pb.InterpretRequest]:
    """``data`` cut into audio requests, optionally ``pace_s`` apart."""
    for i in range(0, len(data), chunk_bytes):
        if pace_s:
            time.sleep(pace_s)
        yield pb.InterpretRequest(audio=data[i : i + chunk_bytes])


def events_of(responses: Iterable[pb.InterpretResponse]) -> list[tuple[str, Any]]:
    """(event kind, event message) for every response."""
    out = []
    for response in responses:
        kind = response.WhichOneof("event")
        out.append((kind, getattr(response, kind)))
    return out


def of_kind(events: list[tuple[str, Any]], kind: str) -> list[Any]:
    """The messages of one kind, in order."""
    return [message for k, message in events if k == kind]
