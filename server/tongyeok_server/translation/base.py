"""The interface every translation engine implements.

A translator turns one sentence (plus options and context) into a
``TranslationStream``: an async iterator of token deltas on the server's
event loop, possibly interrupted by a ``TranslationRestart`` when the engine
retried and the caller must discard what it has.

One concurrency model: engines are async on the server's loop, with no
thread per translation. An engine whose backend blocks (Apertium's pipes)
hides that behind the async interface (a reader task, or a thread of its
own that resolves futures on the loop). A translation is stopped by
cancelling the task that iterates it, or by ``aclose()`` on the stream;
either must close its backend connection there and then (an HTTP stream
closed, so the server sees the disconnect). Starting one costs nothing until
it is first iterated, and stopping one early is cheap, so a caller may
translate a growing partial sentence often and drop the stale requests.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from tongyeok_server.engines import EngineDescription


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
    #: Simultaneous mode: the translation of the sentence's beginning already given to the listener, which
    #: cannot change; an engine that ``continues_committed`` answers only what follows it. None: consecutive.
    committed: str | None = None
    #: Simultaneous mode: ``text`` is only the beginning of a sentence still being spoken; translate what it
    #: already says for certain, never how it might end.
    partial: bool = False

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


#: The streamed translation of one request: chunks in order until the translation is complete. A
#: permanent failure raises ``ServiceError`` from the iteration (also one that could not even start,
#: such as a pair the engine lacks). ``aclose()``, or cancelling the task that iterates it, stops
#: it and closes the backend connection at once.
TranslationStream = AsyncGenerator[TranslationChunk, None]


class Translator(abc.ABC):
    """A translation engine, shared by all sessions of a server."""

    #: Whether each request costs money and a round trip (a cloud model): simultaneous mode then keeps
    #: to a budget of requests per second of speech; a local engine re-translates as often as it helps.
    paid_per_request: bool = False
    #: Whether the engine honours ``TranslationRequest.committed``, answering only what follows it (an
    #: LLM told so). Otherwise it translates the text whole and the session aligns the answer to the
    #: committed text (``simultaneous.text.continuation_start``).
    continues_committed: bool = False

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
        """The translation of ``request``, on the running loop; nothing is sent before the first iteration."""

    async def warm_up(self) -> object:
        """Start what the first sentence would otherwise wait for (once, on the server's loop, at start)."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources at server shutdown (on the loop): translations still running fail."""
