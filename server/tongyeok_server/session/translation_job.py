"""Running one translation and turning its chunks into caller events.

Shared by Interpret sessions and TranslateText so both speak the same token
protocol: tokens in order, a ``Reset`` when the engine restarts, a
``Complete`` with the whole text, or a ``TRANSLATION_FAILED`` notice. It
runs on the server's loop; cancelling its task stops the translation (the
engine closes its backend connection) and emits nothing more.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from tongyeok_server.errors import ServiceError
from tongyeok_server.session import events as ev
from tongyeok_server.translation.base import TokenDelta, TranslationRequest, TranslationRestart, Translator

log = logging.getLogger(__name__)


async def run_translation(
    translator: Translator,
    request: TranslationRequest,
    utterance_id: int,
    emit: Callable[[ev.SessionEvent], None],
) -> str | None:
    """Translate ``request``, emitting its events; the whole text, or None if it failed.

    Cancelling the calling task cancels the translation (``CancelledError``
    propagates; no ``Complete`` follows).
    """
    target = request.target_language
    parts: list[str] = []
    try:
        # aclosing: however this ends, the engine's stream is closed now, not by the garbage collector.
        async with contextlib.aclosing(translator.translate(request)) as chunks:
            async for chunk in chunks:
                if isinstance(chunk, TokenDelta):
                    if chunk.text:
                        parts.append(chunk.text)
                        emit(ev.Token(utterance_id, request.source_language, target, chunk.text))
                elif isinstance(chunk, TranslationRestart):
                    parts.clear()
                    emit(ev.Reset(utterance_id, target, chunk.reason))
    except ServiceError as error:
        report_failure(request, utterance_id, error, emit)
        return None
    text = "".join(parts).strip()
    emit(ev.Complete(utterance_id, request.source_language, target, text))
    return text


def report_failure(
    request: TranslationRequest, utterance_id: int, error: ServiceError, emit: Callable[[ev.SessionEvent], None]
) -> None:
    """Log a failed translation once, with what the caller is not told (addresses, upstream words), and notify."""
    target = request.target_language
    who = f"session {request.session_id}: " if request.session_id else ""
    detail = f" ({error.detail})" if error.detail else ""
    log.warning("%stranslation of utterance %d into %s failed: %s%s", who, utterance_id, target, error.message, detail)
    emit(
        ev.Notice(
            ev.NoticeCode.TRANSLATION_FAILED,
            f"translation into {target} failed ({error.code.name}): {error.message}",
            utterance_id,
            target,
        )
    )
