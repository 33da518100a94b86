"""The ``stable_text`` of an utterance's interims: the prefix the recogniser will not change any more.

Simultaneous translation translates only this prefix, so it must keep the
contract of ``Transcript.stable_text``: within one utterance it only grows,
and the interim's text starts with it. Engines know it in two ways:

- **Google** says it: the leading results of a response with a high
  ``stability`` (0.9 where the rest has 0.01) are the part it will not
  revise; ``update(text, stable=...)`` takes them.
- **pocketsphinx** (and Google models that give no stability) does not:
  what two successive hypotheses agree on is taken as stable
  (LocalAgreement-2, as Whisper's interims, ``stable_prefix``).

Should the engine later revise a word it called stable (rare), the stable
words stand and the interim's text is their continuation: the contract
wins over the engine's second thoughts, and the final has the last word.
"""

from __future__ import annotations

#: A Google interim result this stable or more is part of the stable prefix (Google sends 0.9 and 0.01).
GOOGLE_STABLE = 0.8


def _key(word: str) -> str:
    """Words compare without case or punctuation (an engine may add a comma or capitalise)."""
    return "".join(c for c in word.casefold() if c.isalnum()) or word


class StableText:
    """The stable prefix of one utterance's interims (``reset`` at each new utterance)."""

    def __init__(self) -> None:
        self._words: list[str] = []
        self._previous: list[str] | None = None

    def reset(self) -> None:
        """A new utterance starts: nothing is stable."""
        self._words = []
        self._previous = None

    @property
    def stable_text(self) -> str:
        """The stable prefix so far."""
        return " ".join(self._words)

    def update(self, text: str, stable: str | None = None) -> tuple[str, str]:
        """Take one interim's ``text`` (and the engine's own ``stable`` prefix, if it gives one).

        Returns the interim's text and stable text as the caller gets them:
        the text starts with the stable text, which never shrinks.
        """
        words = text.split()
        if stable is None:
            previous, self._previous = self._previous, words
            candidate = words[: _agreed(previous, words)] if previous is not None else []
        else:
            candidate = stable.split()
        n = len(self._words)
        if len(candidate) > n and _agreed(candidate[:n], self._words) == n:
            self._words = candidate
        n = len(self._words)
        return " ".join(self._words + words[n:]), " ".join(self._words)


def _agreed(a: list[str] | None, b: list[str]) -> int:
    """How many leading words ``a`` and ``b`` share (case and punctuation aside)."""
    if a is None:
        return 0
    n = 0
    for x, y in zip(a, b, strict=False):
        if _key(x) != _key(y):
            break
        n += 1
    return n
