"""The interface every translation engine implements.

A translator turns one final sentence (plus options and context) into a
``TranslationStream``: an iterator of token deltas, possibly interrupted by a
``TranslationRestart`` when the engine retried and the caller must discard
what it has. ``cancel()`` may be called from any thread and must make the
iterator stop promptly and close backend connections.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tongyeok_server.recognition.base import EngineDescription


class Style(enum.Enum):
    """The register of a translation."""

    BUSINESS = "business"
    NEUTRAL = "neutral"
    LITERAL = "literal"


@dataclass(frozen=True)
class GlossaryTerm:
    """``source`` must become ``target``; empty ``target`` means keep ``source`` as is."""

    source: str
    target: str = ""
    target_language: str = ""  # primary subtag, or "" for every language

    @property
    def keep(self) -> bool:
        """Whether the term stays untranslated."""
        return not self.target

    def applies_to(self, target_language: str) -> bool:
        """Whether this entry is for ``target_language`` (a BCP-47 tag)."""
        from tongyeok_server import languages

        return not self.target_language or languages.same_language(self.target_language, target_language)


DEFAULT_CONTEXT_SENTENCES = 5


@dataclass(frozen=True)
class TranslationOptions:
    """Options that shape every translation of a session or request."""

    style: Style = Style.BUSINESS
    glossary: tuple[GlossaryTerm, ...] = ()
    context_sentences: int = DEFAULT_CONTEXT_SENTENCES
    #: The options the caller set itself ("style", "context_sentences"); the rest are server defaults.
    #: An engine reports as ignored only options that were asked for.
    requested: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContextSentence:
    """An earlier sentence of the conversation, with its translation if known."""

    text: str
    language_code: str
    translation: str = ""


@dataclass(frozen=True)
class TranslationRequest:
    """One sentence to translate into one language."""

    text: str
    source_language: str
    target_language: str
    options: TranslationOptions = field(default_factory=TranslationOptions)
    context: tuple[ContextSentence, ...] = ()
    session_id: str = ""  # for log lines only (never part of a prompt)

    def glossary_for_target(self) -> tuple[GlossaryTerm, ...]:
        """The glossary entries that apply to this request's target language."""
        return tuple(t for t in self.options.glossary if t.applies_to(self.target_language))


@dataclass(frozen=True)
class TokenDelta:
    """The next piece of the translation."""

    text: str


@dataclass(frozen=True)
class TranslationRestart:
    """Discard the tokens so far; the translation starts again (``reason`` in words)."""

    reason: str


TranslationChunk = TokenDelta | TranslationRestart


class TranslationStream(abc.ABC):
    """The streamed translation of one request.

    Iterating yields chunks until the translation is complete; a permanent
    failure raises ``ServiceError`` from the iterator.
    """

    @abc.abstractmethod
    def __iter__(self) -> Iterator[TranslationChunk]:
        """Yield the chunks of the translation in order."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop now (from any thread) and close backend connections. Idempotent."""


class Translator(abc.ABC):
    """A translation engine, shared by all sessions of a server."""

    @property
    @abc.abstractmethod
    def description(self) -> EngineDescription:
        """Engine name and detail for callers."""

    @abc.abstractmethod
    def language_pairs(self) -> Sequence[tuple[str, str]]:
        """Supported (source, target) directions as BCP-47 language subtags (``en``, ``es``)."""

    def supports(self, source: str, target: str) -> bool:
        """Whether ``source`` -> ``target`` can be translated (regions ignored)."""
        from tongyeok_server import languages

        return (languages.primary(source), languages.primary(target)) in set(self.language_pairs())

    def ignored_options(self, options: TranslationOptions) -> list[str]:
        """Options the caller asked for (``options.requested``) that this engine cannot honour, with the reason."""
        return []

    def effective_options(self, options: TranslationOptions) -> TranslationOptions:
        """The options as this engine applies them (reported back in the effective config)."""
        return options

    @abc.abstractmethod
    def translate(self, request: TranslationRequest) -> TranslationStream:
        """Start translating ``request``; raises ``ServiceError`` if it cannot even start."""

    def warm_up(self) -> object:
        """Start what the first sentence would otherwise wait for (called once, at server start)."""
        return None

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:  # noqa: B027 - optional hook
        """Do the engine's I/O on the server's event loop (called before the first translation).

        An engine that would otherwise run a loop of its own (OpenAI) uses
        this one: no second busy thread contending for the GIL.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources at server shutdown."""
