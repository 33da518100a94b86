"""Cutting a translation's streamed tokens into clauses to speak, as early as sense allows.

Speech starts at the first sentence end or clause boundary rather than at
the end of the translation, so the listener hears the first words while the
rest is still being written. A boundary is:

- a sentence end: ``.`` ``!`` ``?`` ``…`` (with any closing quotes or
  brackets) followed by white space; after a CJK or Hangul character no
  space is needed (``감사합니다.저는``), and the CJK full stops ``。！？``
  need none either;
- a clause boundary: ``,`` ``;`` ``:`` and dashes followed by white space, or
  the CJK ``、，；：``, once the clause is long enough to be worth speaking on
  its own (``MIN_CLAUSE_CHARS``): a voice reads "However," alone with an odd
  fall, and each engine call costs a first-byte latency;
- failing both, white space once the text reaches ``MAX_CLAUSE_CHARS``
  (an engine that writes no punctuation must still be spoken before it ends).

Sentence ends shorter than ``MIN_SENTENCE_CHARS`` ("Yes." is fine, "Dr." is
not a sentence) wait for more text, and the usual abbreviations never end a
sentence. A boundary at the very end of the text so far is decided only when
the next character arrives (``3.`` may become ``3.5``), or at ``finish``.
Lengths count CJK and Hangul characters double: one carries about as much
speech as two Latin letters.
"""

from __future__ import annotations

import re

MIN_SENTENCE_CHARS = 6
MIN_CLAUSE_CHARS = 24
MAX_CLAUSE_CHARS = 240

_SENTENCE_END = frozenset(".!?…")
_CJK_SENTENCE_END = frozenset("。！？．")
_CLAUSE_END = frozenset(",;:—–")
_CJK_CLAUSE_END = frozenset("、，；：")
_CLOSERS = frozenset("\"'”’»)]}」』）】")
_ABBREVIATION_WORDS = (
    "mr mrs ms dr prof sr sra srta dra st vs etc eg ie approx no nr inc ltd co corp jr dept fig pp vol"
)
_ABBREVIATIONS = frozenset([*_ABBREVIATION_WORDS.split(), "a.m", "p.m", "e.g", "i.e", "u.s", "u.k"])
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _wide(ch: str) -> bool:
    """CJK ideographs, kana, Hangul and full-width forms."""
    code = ord(ch)
    return (
        0x1100 <= code <= 0x11FF
        or 0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
    )


def weighted_length(text: str) -> int:
    """Length with wide characters counted twice, white space not at all."""
    return sum(2 if _wide(ch) else 1 for ch in text if not ch.isspace())


class ClauseSegmenter:
    """Feed tokens with ``add``; get the clauses ready so far; ``finish`` gives the rest."""

    def __init__(
        self,
        min_sentence: int = MIN_SENTENCE_CHARS,
        min_clause: int = MIN_CLAUSE_CHARS,
        max_clause: int = MAX_CLAUSE_CHARS,
    ) -> None:
        self._min_sentence = min_sentence
        self._min_clause = min_clause
        self._max_clause = max_clause
        self._text = ""  # not yet given out
        self._scan = 0  # where the next look for a boundary starts
        #: Everything fed so far (what the translation says up to now).
        self.fed = ""

    def add(self, token: str) -> list[str]:
        """Take the next token; return the clauses it completes (stripped, non-empty)."""
        self.fed += token
        self._text += token
        out: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return out
            clause, self._text = self._text[:cut].strip(), self._text[cut:]
            self._scan = 0
            if clause:
                out.append(clause)

    def finish(self) -> list[str]:
        """The translation is complete: the rest as a last clause (if any)."""
        rest, self._text, self._scan = self._text.strip(), "", 0
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        """Index just after the first boundary in the pending text, if one is decided."""
        text = self._text
        i = self._scan
        while i < len(text):
            end = self._boundary_end(text, i)
            if isinstance(end, _Undecided):
                self._scan = i  # look here again when more text arrives
                return None
            if end is not None:
                return end
            i += 1
        self._scan = len(text)
        if weighted_length(text) >= self._max_clause:
            last_space = max(text.rstrip().rfind(" "), text.rstrip().rfind("\n"))
            if last_space > 0:
                return last_space
        return None

    def _boundary_end(self, text: str, i: int) -> int | _Undecided | None:
        """If a boundary ends at ``text[i]``: the index after it (closers included)."""
        ch = text[i]
        sentence = ch in _SENTENCE_END
        cjk_sentence = ch in _CJK_SENTENCE_END
        clause = ch in _CLAUSE_END
        cjk_clause = ch in _CJK_CLAUSE_END
        if not (sentence or cjk_sentence or clause or cjk_clause):
            return None
        end = i + 1
        while end < len(text) and (text[end] in _CLOSERS or text[end] in _SENTENCE_END):
            end += 1  # ?!, ...", .)
        needs_space = sentence or clause
        if needs_space and not (sentence and i > 0 and _wide(text[i - 1])):
            if end >= len(text):
                return _UNDECIDED
            if not text[end].isspace():
                return None
        length = weighted_length(text[:end])
        if sentence or cjk_sentence:
            if length < self._min_sentence:
                return None
            if sentence and ch == "." and self._abbreviation(text[:i]):
                return None
            return end
        return end if length >= self._min_clause else None

    @staticmethod
    def _abbreviation(before: str) -> bool:
        found = _WORD_BEFORE.search(before)
        if found is None:
            return False
        word = found.group(1).lower()
        # Single letters are initials ("J. Smith").
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


class _Undecided:
    """A boundary that depends on the character after the end of the text so far."""


_UNDECIDED = _Undecided()
