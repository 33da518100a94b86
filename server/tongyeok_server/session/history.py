"""What a session has said so far: the recent sentences and their translations, for translation context.

The session appends each final; translation jobs fill in the translations
as they finish. The newest ``MAX_CONTEXT_SENTENCES`` are kept, which is the
most a caller may ask to send as context, and which is also what a session
carries to another server when it moves (``export``/``restore``), so that
context continues as if nothing happened.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from tongyeok_server.translation.base import ContextSentence, TranslationRequest

# Sentences kept for translation context; the most a caller may ask for.
MAX_CONTEXT_SENTENCES = 50


@dataclass
class Sentence:
    """One final and the translations finished for it."""

    utterance_id: int
    text: str
    language: str
    translations: dict[str, str] = field(default_factory=dict)


class History:
    """The recent sentences of one session (see the module docstring)."""

    def __init__(self) -> None:
        self._sentences: deque[Sentence] = deque(maxlen=MAX_CONTEXT_SENTENCES)

    def add(self, utterance_id: int, text: str, language: str) -> Sentence:
        """Append a final; returns its entry, whose ``translations`` the jobs fill in."""
        sentence = Sentence(utterance_id, text, language)
        self._sentences.append(sentence)
        return sentence

    def context(self, n: int) -> tuple[ContextSentence, ...]:
        """The last ``n`` sentences (translations filled in later, per target, by ``with_translations``)."""
        if n <= 0:
            return ()
        recent = list(self._sentences)[-n:]
        return tuple(ContextSentence(s.text, s.language, "") for s in recent)

    def with_translations(self, request: TranslationRequest) -> TranslationRequest:
        """``request`` with its context sentences' translations into its target known by now."""
        if not request.context:
            return request
        target = request.target_language
        by_text = {(s.text, s.language): s.translations.get(target, "") for s in list(self._sentences)}
        context = tuple(
            ContextSentence(c.text, c.language_code, by_text.get((c.text, c.language_code), ""))
            for c in request.context
        )
        return replace(request, context=context)

    def export(self) -> list[dict[str, Any]]:
        """The sentences as plain data (for a session that moves to another server)."""
        return [
            {"u": s.utterance_id, "t": s.text, "l": s.language, "tr": dict(s.translations)} for s in self._sentences
        ]

    @classmethod
    def restore(cls, data: list[dict[str, Any]]) -> History:
        """The history ``export`` gave."""
        history = cls()
        for item in data[-MAX_CONTEXT_SENTENCES:]:
            history._sentences.append(
                Sentence(
                    int(item["u"]), str(item["t"]), str(item["l"]), {str(k): str(v) for k, v in item["tr"].items()}
                )
            )
        return history
