"""Which words of a re-decoded, growing utterance an interim may show: LocalAgreement-2.

Whisper is not a streaming model: each interim pass decodes the whole
utterance so far from scratch, and the words near the end of the audio
change from pass to pass as more of them is heard. Showing every pass would
make a caller's screen flicker. LocalAgreement-n (Machacek, Dabre and Bojar,
"Turning Whisper into Real-Time Transcription System", 2023) publishes only
the longest prefix that the last n passes agree on; here n = 2.

Published words are not taken back when a later pass disagrees with them
(that would flicker too); if two later passes agree on something else for
those positions, the interim shows the new words, and the final always has
the last word. How often a published word changes is measured by
``make bench`` (flicker) and documented in the README.
"""

from __future__ import annotations

import re

_TRAILING = re.compile(r"[.,;:!?…]+$")


def _key(word: str) -> str:
    """Words compare without case or punctuation (a pass may add a comma or a full stop)."""
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


class LocalAgreement:
    """The stable prefix of one utterance's successive hypotheses."""

    def __init__(self) -> None:
        self._previous: list[str] | None = None
        self.published: list[str] = []

    def update(self, hypothesis: str) -> str | None:
        """Take one pass's text; the interim to publish if it changed, else None."""
        words = hypothesis.split()
        previous, self._previous = self._previous, words
        if previous is None:
            return None
        agreed = 0
        for a, b in zip(previous, words, strict=False):
            if _key(a) != _key(b) or not _key(a):
                break
            agreed += 1
        if agreed < len(self.published):
            return None  # never shorten what is shown
        if [_key(w) for w in words[:agreed]] == [_key(w) for w in self.published]:
            return None  # nothing new agreed
        self.published = words[:agreed]
        return interim_text(self.published)


def interim_text(words: list[str]) -> str:
    """Agreed words as an interim: no sentence-final punctuation on the last, which may go on."""
    if not words:
        return ""
    last = _TRAILING.sub("", words[-1])
    return " ".join([*words[:-1], last] if last else words[:-1])
