"""Which part of the recognised speech a simultaneous translation translates.

The recogniser's ``stable_text`` is the prefix of the sentence it will not
change any more. Its last few words are still held back (``holdback``
units: words, or characters in Chinese and Japanese, which are written
without spaces) until the words after them are heard: a word's translation
often depends on what follows it (a Korean noun's role waits for its verb,
an English adjective for its noun). ``pacing`` says how many, per
direction.
"""

from __future__ import annotations

from collections.abc import Sequence

from tongyeok_server.simultaneous import text


def translatable(stable_text: str, holdback: int) -> str:
    """The stable text without its last ``holdback`` units ("" when that leaves nothing)."""
    units = text.tokens(stable_text.strip())
    if holdback > 0:
        units = units[:-holdback] if len(units) > holdback else []
    return "".join(units)


def without_open_terms(prefix: str, terms: Sequence[str]) -> str:
    """``prefix`` without a tail that could be the start of a longer glossary term.

    "the delivery" when "delivery date" has a fixed rendering: "delivery"
    waits for the next word, or the term's rendering could never apply.
    """
    units = text.tokens(prefix)
    keys = [text.key(u) for u in units]
    for term in terms:
        term_keys = [text.key(u) for u in text.tokens(term)]
        for n in range(min(len(term_keys) - 1, len(keys)), 0, -1):
            if keys[-n:] == term_keys[:n]:
                units, keys = units[:-n], keys[:-n]
                break
    return "".join(units)


def unit_count(source: str) -> int:
    """How many units (words; characters in scripts without spaces) ``source`` has."""
    return len(text.tokens(source))
