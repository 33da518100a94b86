"""The ``stable_text`` of an utterance's interims: the prefix the recogniser will not change any more.

Simultaneous translation translates only this prefix, so it must keep the
contract of ``Transcript.stable_text``: within one utterance it only grows,
and the interim's text starts with it. Engines know it in two ways:

- **Google** says it: the leading results of a response with a high
  ``stability`` (0.9 where the rest has 0.01) are the part it will not
  revise; ``update(text, stable=...)`` takes them.
- **pocketsphinx** (and Google models that give no stability) does not:
  what successive hypotheses agree on is taken as stable (LocalAgreement,
  as Whisper's interims, ``stable_prefix``): two in a row by default, or
  every hypothesis over ``span_s`` of audio. pocketsphinx revises its live
  hypothesis often, one chunk to the next, so it asks for agreement over
  0.4 s: on the bench's sentences 29 % of the words two successive
  hypotheses agreed on differed in the final, 8 % with 0.4 s.

Should the engine later revise a word it called stable (pocketsphinx does,
now and then), the stable words stand and the interim's text is their
continuation: the contract wins over the engine's second thoughts, and the
final has the last word. The stable prefix still grows past the revision:
the words the engine now agrees on after that point are added, position by
position (otherwise one revised word would freeze it for the rest of the
sentence, and with it a simultaneous translation).
"""

from __future__ import annotations

from collections import deque

#: A Google interim result this stable or more is part of the stable prefix (Google sends 0.9 and 0.01).
GOOGLE_STABLE = 0.8


def _key(word: str) -> str:
    """Words compare without case or punctuation (an engine may add a comma or capitalise)."""
    return "".join(c for c in word.casefold() if c.isalnum()) or word


class StableText:
    """The stable prefix of one utterance's interims (``reset`` at each new utterance).

    ``span_s``: hypotheses must agree over that much audio (0: two in a row).
    """

    def __init__(self, span_s: float = 0.0) -> None:
        self._span_s = span_s
        self._words: list[str] = []
        self._recent: deque[tuple[float, list[str]]] = deque()

    def reset(self) -> None:
        """A new utterance starts: nothing is stable."""
        self._words = []
        self._recent.clear()

    @property
    def stable_text(self) -> str:
        """The stable prefix so far."""
        return " ".join(self._words)

    def update(self, text: str, stable: str | None = None, at_s: float = 0.0) -> tuple[str, str]:
        """Take one interim's ``text`` (and the engine's own ``stable`` prefix, if it gives one).

        ``at_s`` is how far into the audio the hypothesis reaches (for
        ``span_s``). Returns the interim's text and stable text as the caller
        gets them: the text starts with the stable text, which never shrinks.
        """
        words = text.split()
        candidate = stable.split() if stable is not None else self._agreed(words, at_s)
        n = len(self._words)
        if len(candidate) > n:
            if _agreed(candidate[:n], self._words) == n:
                self._words = candidate
            else:  # a stable word was revised: it stands, and what is agreed after it is stable too
                self._words = self._words + candidate[n:]
        n = len(self._words)
        return " ".join(self._words + words[n:]), " ".join(self._words)

    def _agreed(self, words: list[str], at_s: float) -> list[str]:
        """The words every hypothesis of the window agrees on (the newest and those at most ``span_s`` older)."""
        recent = self._recent
        recent.append((at_s, words))
        # Keep one hypothesis at or before the window's start, so the window covers span_s of audio.
        start = at_s - self._span_s + 1e-6  # offsets are sums of chunk durations: allow for rounding
        while len(recent) > 2 and recent[1][0] <= start:
            recent.popleft()
        if len(recent) < 2 or recent[0][0] > start:
            return []
        agreed = min(_agreed(old, words) for _, old in recent)
        return words[:agreed]


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
