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

from tongyeok_server.simultaneous import text


def translatable(stable_text: str, holdback: int) -> str:
    """The stable text without its last ``holdback`` units ("" when that leaves nothing)."""
    units = text.tokens(stable_text.strip())
    if holdback > 0:
        units = units[:-holdback] if len(units) > holdback else []
    return "".join(units)


def unit_count(source: str) -> int:
    """How many units (words; characters in scripts without spaces) ``source`` has."""
    return len(text.tokens(source))
