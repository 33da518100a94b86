"""The simultaneous part's measures, as pure functions of what one stream saw.

Times are seconds on the stream's own clock: 0 is the moment its first
audio chunk was sent, and the audio is sent at real-time pace, so audio
offset ``t`` was spoken at time ``t``. A sentence starts at ``start_s`` and
its speech lasts ``duration_s``.

- **Average Lagging** (Ma et al., "STACL", ACL 2019; for speech, Ma, Pino
  and Koehn, "SimulMT to SimulST", AACL 2020, as SimulEval computes it),
  computation-aware: ``d_i`` is when target word ``i`` reached the caller
  (wall clock, so the server's and the engines' time count), the ideal is
  the proportional alignment of the target words to the source's duration,
  ``(i - 1) * duration / |Y|``, and the average runs over the words up to the
  first one that came after the speech ended::

      AL = 1/tau * sum_{i=1..tau} (d_i - (i - 1) * duration / |Y|)

  A consecutive translation, which starts after the sentence, has
  ``tau = 1``: its AL is the first word's delay after the sentence start.
- **Retracted committed text**: characters of the tokens sent that the
  complete translation does not start with (must be 0), and resets.
- **Erasure** of the text shown (committed plus tentative), after
  Arivazhagan et al., "Re-translation versus streaming for simultaneous
  translation" (2020): the words a screen had to take back, summed over the
  updates, over the words of the complete translation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_WORD = re.compile(r"\S+")


@dataclass
class Translation:
    """One utterance's translation into one language, as one stream received it."""

    utterance_id: int
    tokens: list[tuple[float, str]] = field(default_factory=list)  # arrival, text
    tentatives: list[tuple[float, str]] = field(default_factory=list)
    resets: int = 0
    complete_at: float | None = None
    complete: str = ""

    @property
    def sent(self) -> str:
        """The tokens' text, concatenated."""
        return "".join(text for _, text in self.tokens)

    @property
    def first_token_at(self) -> float | None:
        """When the first token arrived."""
        return self.tokens[0][0] if self.tokens else None


def word_times(tokens: Sequence[tuple[float, str]]) -> list[float]:
    """When each word of the tokens' concatenated text was complete (the arrival of the token that ended it)."""
    ends: list[tuple[int, float]] = []
    text = ""
    for at, piece in tokens:
        text += piece
        ends.append((len(text), at))
    times = []
    k = 0
    for word in _WORD.finditer(text):
        # A word is complete once a later token starts with white space or the text ends; the token that
        # holds its last character is the latest it can be known not to continue.
        while ends[k][0] < word.end():
            k += 1
        times.append(ends[k][1])
    return times


def average_lagging(delays: Sequence[float], duration_s: float) -> float | None:
    """AL of target words emitted ``delays`` seconds after the sentence started (see the module docstring)."""
    if not delays or duration_s <= 0:
        return None
    rate = duration_s / len(delays)
    tau = next((i for i, d in enumerate(delays) if d >= duration_s), len(delays) - 1)
    return sum(d - i * rate for i, d in enumerate(delays[: tau + 1])) / (tau + 1)


def retracted_chars(sent: str, complete: str) -> int:
    """Characters of the text sent as tokens that the complete translation does not start with."""
    a, b = sent.strip(), complete.strip()
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return len(a) - common


def erasure(translation: Translation) -> tuple[int, int]:
    """(words a screen showing committed + tentative text had to take back, words of the complete translation)."""
    events = sorted(
        [(at, 0, text) for at, text in translation.tokens] + [(at, 1, text) for at, text in translation.tentatives],
        key=lambda e: (e[0], e[1]),
    )
    committed, tentative = "", ""
    shown: list[str] = []
    erased = 0
    for _, kind, text in events:
        if kind == 0:
            committed += text
            # The tentative words the token confirms move into the committed text; the rest stands until
            # the next tentative replaces it.
            confirmed, pending = text.split(), tentative.split()
            tentative = " " + " ".join(pending[len(confirmed) :]) if pending[: len(confirmed)] == confirmed else ""
        else:
            tentative = text
        now = (committed + tentative).split()
        erased += len(shown) - _common(shown, now)
        shown = now
    final = translation.complete.split()
    erased += len(shown) - _common(shown, final)
    return erased, len(final)


def _common(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def stable_word_times(interims: Sequence[tuple[float, str]]) -> list[float]:
    """When each source word first became stable (the recogniser's floor for any translation's lag)."""
    times: list[float] = []
    for at, stable in interims:
        n = len(stable.split())
        while len(times) < n:
            times.append(at)
    return times
