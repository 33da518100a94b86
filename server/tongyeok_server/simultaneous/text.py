"""Translations as tokens that keep their spacing: splitting, comparing, joining, aligning.

A translation is compared word by word (or character by character in
scripts written without spaces: Chinese characters and kana), but emitted
with its own spacing, so each token carries the white space before it:
``"Nos gustaría hablar"`` is ``["Nos", " gustaría", " hablar"]`` and
``"".join(tokens)`` is the text again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Ideographs and kana are units on their own (those scripts put no spaces between words); Hangul
# is written with spaces, so a Korean eojeol is one unit like a Latin word.
_NO_SPACE_SCRIPT = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(rf"\s*(?:[{_NO_SPACE_SCRIPT}]|[^\s{_NO_SPACE_SCRIPT}]+)")
_NO_SPACE_CHAR = re.compile(rf"[{_NO_SPACE_SCRIPT}。、，！？：；）」』】]")
# What ends a sentence; a partial translation must not end with it (the sentence goes on).
_SENTENCE_END = ".!?…。！？"
_CLOSERS = "\"'”’»)]}」』）】"
# Characters that attach to the word before them: no space is put in front of them when joining.
_ATTACHES_LEFT = frozenset(",.;:!?…)]}»”’%、。，！？：；）」』】")


def tokens(text: str) -> list[str]:
    """``text`` as tokens, each with the white space before it; the first one without."""
    found = _TOKEN.findall(text)
    if found:
        found[0] = found[0].lstrip()
    return found


def key(token: str) -> str:
    """What two tokens must share to count as the same word: case and punctuation aside."""
    folded = "".join(c for c in token.casefold() if c.isalnum())
    return folded or token.strip()


def same(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two token lists say the same words, as written (spacing aside)."""
    return len(a) == len(b) and all(x.strip() == y.strip() for x, y in zip(a, b, strict=True))


def common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading tokens ``a`` and ``b`` share, exactly as written (a comma counts)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x.strip() != y.strip():
            break
        n += 1
    return n


def without_sentence_end(toks: Sequence[str]) -> list[str]:
    """A partial translation without a final full stop, question or exclamation mark.

    The speaker has not finished the sentence; a translation of its
    beginning that ends like a sentence would put words in their mouth.
    Closing quotes or brackets after the mark go too.
    """
    out = list(toks)
    while out:
        last = out[-1]
        stem = last.rstrip(_CLOSERS)
        trimmed = stem.rstrip(_SENTENCE_END)
        if trimmed == last:
            break
        if trimmed.strip():
            out[-1] = trimmed
            break
        out.pop()
    return out


def join(committed: str, rest: str) -> str:
    """``committed`` followed by ``rest``, with one space between them where the script wants one.

    ``rest`` may or may not start with its own space (an engine continuing a
    text is not consistent about it); what matters is the result.
    """
    if not committed:
        return rest.lstrip()
    body = rest.lstrip()
    if not body:
        return committed
    if body[0] in _ATTACHES_LEFT or _NO_SPACE_CHAR.match(committed[-1]) or _NO_SPACE_CHAR.match(body[0]):
        return committed + body
    return committed + " " + body


def continuation_start(committed: Sequence[str], complete: Sequence[str]) -> int:
    """Where, in a whole translation ``complete``, the part after ``committed`` begins.

    For an engine that translates the whole sentence again (it cannot be told
    what was committed): ``committed`` is what the caller already has, which
    cannot be taken back, and ``complete`` may word it differently. The answer
    is the ``j`` for which ``complete[:j]`` is closest to ``committed`` (fewest
    words inserted, deleted or replaced, compared without case or
    punctuation); among equally close ones the smallest, so that a word of
    the complete translation is said twice rather than never.
    """
    a = [key(t) for t in committed]
    b = [key(t) for t in complete]
    if b[: len(a)] == a:
        return len(a)
    # Edit distance of all of a against every prefix b[:j], one row per word of a.
    row: list[float] = [float(j) for j in range(len(b) + 1)]  # a[:0] against b[:j]: j insertions
    for i, word in enumerate(a, start=1):
        previous, row = row, [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + _substitution(word, b[j - 1]))
    best = min(row)
    return row.index(best)


def _substitution(a: str, b: str) -> float:
    """What putting one word for another costs: nothing if the same, half if one is a form of the other.

    "Nosotros" for "Nos", "gusta" for "gustaría": the same word in another
    form, so the rest follows it rather than repeating it.
    """
    if a == b:
        return 0.0
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    return 0.5 if shared >= 3 and shared >= min(len(a), len(b)) - 1 else 1.0
