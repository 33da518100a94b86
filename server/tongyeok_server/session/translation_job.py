"""Running one translation and turning its chunks into caller events.

Shared by Interpret sessions and TranslateText so both speak the same token
protocol: tokens in order, a ``Reset`` when the engine restarts, a
``Complete`` with the whole text, or a ``TRANSLATION_FAILED`` notice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tongyeok_server.errors import ServiceError
from tongyeok_server.session import events as ev
from tongyeok_server.translation.base import (
    TokenDelta,
    TranslationRequest,
    TranslationRestart,
    TranslationStream,
    Translator,
)

log = logging.getLogger(__name__)


class OpenTranslations:
    """The translation streams a caller has open, so they can all be cancelled at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[TranslationStream] = set()
        self.cancelled = False

    def add(self, stream: TranslationStream) -> bool:
        """Track ``stream``; False (and the stream cancelled) if already cancelled."""
        with self._lock:
            if not self.cancelled:
                self._streams.add(stream)
                return True
        stream.cancel()
        return False

    def discard(self, stream: TranslationStream) -> None:
        """Stop tracking a finished stream."""
        with self._lock:
            self._streams.discard(stream)

    def cancel_all(self) -> None:
        """Cancel every open stream and refuse new ones. Idempotent."""
        with self._lock:
            self.cancelled = True
            streams, self._streams = list(self._streams), set()
        for stream in streams:
            stream.cancel()


def run_translation(
    translator: Translator,
    request: TranslationRequest,
    utterance_id: int,
    emit: Callable[[ev.SessionEvent], None],
    open_translations: OpenTranslations,
) -> str | None:
    """Translate ``request``, emitting its events; the whole text, or None if failed or cancelled."""
    target = request.target_language
    try:
        stream = translator.translate(request)
        if not open_translations.add(stream):
            return None
        parts: list[str] = []
        try:
            for chunk in stream:
                if open_translations.cancelled:
                    return None
                if isinstance(chunk, TokenDelta):
                    if chunk.text:
                        parts.append(chunk.text)
                        emit(ev.Token(utterance_id, request.source_language, target, chunk.text))
                elif isinstance(chunk, TranslationRestart):
                    parts.clear()
                    emit(ev.Reset(utterance_id, target, chunk.reason))
        finally:
            open_translations.discard(stream)
        if open_translations.cancelled:
            return None
        text = "".join(parts).strip()
        emit(ev.Complete(utterance_id, request.source_language, target, text))
        return text
    except ServiceError as error:
        if open_translations.cancelled:
            return None
        # Once per failure, with what the caller is not told (addresses, upstream words).
        who = f"session {request.session_id}: " if request.session_id else ""
        detail = f" ({error.detail})" if error.detail else ""
        log.warning(
            "%stranslation of utterance %d into %s failed: %s%s", who, utterance_id, target, error.message, detail
        )
        emit(
            ev.Notice(
                ev.NoticeCode.TRANSLATION_FAILED,
                f"translation into {target} failed ({error.code.name}): {error.message}",
                utterance_id,
                target,
            )
        )
        return None
