"""What a simultaneous translation commits: the words successive re-translations agree on.

As a sentence is spoken, the stable part of its transcript grows and is
translated again each time (a *re-translation* of a longer prefix). The
translation of the beginning of a sentence changes as more of it is heard
(a verb at the end of a Korean sentence can change the English from its
second word on), so no single re-translation can be trusted. The policy is
LocalAgreement-n (Polák et al., "CUNI-KIT system for simultaneous speech
translation", IWSLT 2022; Machacek et al. 2023 use it for Whisper's
transcripts): commit the longest prefix that the last ``n`` re-translations
agree on, word for word as written. ``n`` is 2 by default; 3 trades lag for
fewer awkward commitments (``pacing``).

Rules that make it safe to show a caller:

- **Committed text is never taken back.** Each re-translation is first put
  in line with the committed text (``text.continuation_start``): the words
  it would say instead of the committed ones are dropped and only what it
  says after them counts. So a re-translation that words the beginning
  differently cannot retract anything; it only delays the next commitment.
- **Nothing ends the sentence early.** A partial re-translation loses a
  final full stop, question or exclamation mark before it is compared
  (``text.without_sentence_end``): the speaker has not finished.
- **The final commits the rest.** When the sentence's final transcript is
  translated, what follows the committed text is committed whole
  (``commit``), and the committed text then *is* the complete translation.

The class is pure (no I/O, no clock): the session feeds it re-translations
and the final's translation, and sends what it returns.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tongyeok_server.simultaneous import text

DEFAULT_AGREEMENT = 2


@dataclass(frozen=True)
class Step:
    """What one re-translation changed."""

    #: Newly committed text, to send as tokens (with its leading space); "" if nothing new.
    committed: str
    #: What the latest re-translation says after everything committed (with its leading space); may change.
    tentative: str


class Agreement:
    """The committed translation of one utterance into one language (see the module docstring)."""

    def __init__(self, agreement: int = DEFAULT_AGREEMENT) -> None:
        if agreement < 1:
            raise ValueError(f"agreement must be at least 1, not {agreement}")
        self.agreement = agreement
        self._committed = ""
        self._recent: deque[list[str]] = deque(maxlen=agreement)
        self._witness: list[str] | None = None  # the last offer's witness, aligned
        #: Re-translations offered so far (for figures).
        self.offers = 0

    @property
    def committed(self) -> str:
        """Everything committed so far: what the caller's tokens of this translation add up to."""
        return self._committed

    def offer(self, translation: str, witness: str | None = None, *, hold: bool = False) -> Step:
        """Take a re-translation of a longer stable prefix of the sentence; return what it commits.

        ``witness``: the translation of the whole hypothesis heard so far,
        the unstable words after the prefix included (a local engine makes
        both). It stands in for the next re-translation: what the prefix's
        translation and the witness agree on did not change when more words
        followed, so it is committed a step sooner. The witness itself is
        never committed beyond that agreement; it is the tentative text.

        ``hold``: the re-translation counts towards the agreement but
        nothing is committed yet (the audio behind it may be the session's
        own speech, ``echo``); ``release`` commits what the held ones agree on.
        """
        self.offers += 1
        committed = text.tokens(self._committed)
        self._recent.append(self._aligned(committed, translation))
        self._witness = self._aligned(committed, witness) if witness is not None else None
        return self._agreed(committed, hold)

    def release(self) -> Step:
        """Commit what the re-translations offered while held agree on (as their last ``offer`` would have)."""
        if not self._recent:
            return Step("", "")
        return self._agreed(text.tokens(self._committed), hold=False)

    def _agreed(self, committed: list[str], hold: bool) -> Step:
        aligned = self._recent[-1]
        window = list(self._recent)
        shown = aligned
        if self._witness is not None:
            shown = self._witness
            window = [*window[len(window) - (self.agreement - 1) :], shown]
        if not hold and len(window) == self.agreement:
            agreed = min(text.common_prefix(window[0], other) for other in window)
            if agreed > len(committed):
                new = "".join(aligned[len(committed) : agreed])
                self._committed += new
                return Step(new, "".join(shown[agreed:]))
        return Step("", "".join(shown[len(committed) :]))

    def _aligned(self, committed: list[str], translation: str) -> list[str]:
        """A partial translation as tokens, put in line with the committed ones (see the module docstring)."""
        said = text.without_sentence_end(text.tokens(translation))
        return committed + self._attached(committed, said[text.continuation_start(committed, said) :])

    def commit(self, more: str) -> str:
        """Commit ``more`` after the committed text (the final's rest, or a piece of it); the text to send.

        ``more`` is spaced against what is committed (an engine continuing a
        text may or may not start with a space). An empty piece commits
        nothing.
        """
        joined = text.join(self._committed, more)
        new = joined[len(self._committed) :]
        self._committed = joined
        self._recent.clear()  # earlier re-translations no longer describe what follows
        self._witness = None
        return new

    def append(self, piece: str) -> None:
        """Commit ``piece`` as it is, right after the committed text (the next piece of a streamed answer)."""
        self._committed += piece
        self._recent.clear()
        self._witness = None

    def rest_of(self, complete: str) -> str:
        """The part of a whole translation ``complete`` that comes after the committed text.

        For engines that translate the final sentence whole (they cannot
        continue a given text): aligned as in ``offer``, so the result never
        repeats or contradicts the committed words more than it must, and
        never drops a word the committed text does not cover.
        """
        committed = text.tokens(self._committed)
        said = text.tokens(complete)
        start = text.continuation_start(committed, said)
        rest = "".join(said[start:])
        if committed and start:
            # The same last word with punctuation after it ("todos" / "todos."): keep the punctuation.
            mine, theirs = committed[-1].strip(), said[start - 1].strip()
            if theirs != mine and theirs.startswith(mine) and text.key(theirs) == text.key(mine):
                rest = theirs[len(mine) :] + rest
        return rest

    @staticmethod
    def _attached(committed: list[str], tail: list[str]) -> list[str]:
        """``tail`` with its first token spaced as it would be after ``committed``."""
        if not tail:
            return tail
        first = text.join("".join(committed), tail[0])[len("".join(committed)) :]
        return [first, *tail[1:]]
