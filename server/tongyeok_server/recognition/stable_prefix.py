"""What an interim of a re-decoded, growing utterance shows, and which of it is stable: LocalAgreement-2.

Whisper is not a streaming model: each interim pass decodes the utterance
so far, and the words near the end of the audio change from pass to pass
as more of them is heard. LocalAgreement-n (Macháček, Dabre and Bojar,
"Turning Whisper into Real-Time Transcription System", 2023) calls stable
the longest prefix that the last n passes agree on; here n = 2.

An interim shows the stable words followed by the newest pass's other
words (so words appear as soon as one pass hears them, as a streaming
recogniser's would), and says which prefix is stable (``stable_text``,
the proto's contract). Stable words are committed: the worker gives them
to every later pass of the utterance as the decoder's forced prefix
(``WhisperDecoder.decode(prefix=...)``), the final included, so the final
starts with them and the stable prefix only ever grows. The rest of an
interim may change with the next pass; how often is measured by ``make
bench`` (flicker) and documented in the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TRAILING = re.compile(r"[.,;:!?…]+$")
# Of an interim, the share of words that are stable, scaled into this range, is its stability.
MIN_STABILITY = 0.1
MAX_STABILITY = 0.9


def _key(word: str) -> str:
    """Words compare without case or punctuation (a pass may add a comma or a full stop)."""
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


@dataclass(frozen=True)
class Interim:
    """What to publish: ``text`` starts with ``stable`` (both without sentence-final punctuation)."""

    text: str
    stable: str
    stability: float


class LocalAgreement:
    """The stable prefix of one utterance's successive hypotheses, and the interim to show."""

    def __init__(self) -> None:
        self._previous: list[str] | None = None
        self.stable: list[str] = []  # committed words, as the passes spelled them
        self._shown: list[str] = []
        self._shown_stable = 0

    @property
    def prefix(self) -> str:
        """The committed words as text, for the next pass to be forced to start with."""
        return " ".join(self.stable)

    def update(self, hypothesis: str, commit: bool = True) -> Interim | None:
        """Take one pass's text (which starts with ``prefix``); the interim to publish if it changed, else None.

        ``commit=False``: show the pass, but commit nothing yet (the caller is not sure of it).
        """
        words = hypothesis.split()
        previous, self._previous = self._previous, words
        if previous is not None and commit:
            agreed = 0
            for a, b in zip(previous, words, strict=False):
                if _key(a) != _key(b) or not _key(a):
                    break
                agreed += 1
            if agreed > len(self.stable):
                # Committed words never change: only what lies beyond them is added.
                new = words[len(self.stable) : agreed]
                if agreed == len(words):
                    # The pass's last word: a full stop or comma there says only that the audio
                    # ended there (a pause); forced into later passes it would end the sentence.
                    new[-1] = _TRAILING.sub("", new[-1]) or new[-1]
                self.stable = self.stable + new
        shown = self.stable + words[len(self.stable) :]
        same = [_key(w) for w in shown] == [_key(w) for w in self._shown]
        if (same and len(self.stable) == self._shown_stable) or not any(_key(w) for w in shown):
            return None  # neither the words nor how many of them are stable changed
        self._shown, self._shown_stable = shown, len(self.stable)
        text = interim_text(shown)
        stable = interim_text(self.stable) if len(self.stable) < len(shown) else text
        share = len(self.stable) / len(shown)
        return Interim(text, stable, round(MIN_STABILITY + (MAX_STABILITY - MIN_STABILITY) * share, 2))


def interim_text(words: list[str]) -> str:
    """Words as an interim: no sentence-final punctuation on the last, which may go on."""
    if not words:
        return ""
    last = _TRAILING.sub("", words[-1])
    return " ".join([*words[:-1], last] if last else words[:-1])
