"""Glossary terms through an engine that knows nothing about glossaries.

Before translation each glossary term in the text is replaced by a
placeholder word (``ZQXGLOSA1``): a word no dictionary knows, which rule-based
engines such as Apertium pass through unchanged. After translation each
placeholder becomes the term's target rendering, or, for a do-not-translate
term, the source term exactly as the speaker wrote it.

Matching is whole-word and case-insensitive; longer terms win over shorter
ones they contain ("Acme Cloud" before "Acme"), because all terms are tried
in one pass with the longest alternatives first.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from tongyeok_server.translation.base import GlossaryTerm

_BASE_PREFIX = "ZQXGLOS"
_AFTER_BASE = re.compile(_BASE_PREFIX.lower() + "([a-z]{0,3})")


def _label(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: letters, so no engine reads the label as a number."""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(ord("A") + rest) + out
    return out


@dataclass(frozen=True)
class ProtectedText:
    """Text whose glossary terms are hidden behind placeholders, and how to bring them back."""

    text: str
    replacements: tuple[tuple[str, str], ...] = ()  # (placeholder, final rendering)

    def restore(self, translated: str) -> str:
        """Put each term's rendering where the engine left its placeholder.

        Case-insensitive, because an engine may change a word's case (at the
        start of a sentence, say).
        """
        if not self.replacements:
            return translated
        lookup = {placeholder.lower(): rendering for placeholder, rendering in self.replacements}
        pattern = re.compile(
            "|".join(re.escape(p) for p, _ in sorted(self.replacements, key=lambda r: -len(r[0]))), re.IGNORECASE
        )
        return pattern.sub(lambda m: lookup[m.group(0).lower()], translated)


def term_pattern(sources: Sequence[str]) -> re.Pattern[str] | None:
    """Build a regex matching any of ``sources`` as whole words, case-insensitively, longest first."""
    cleaned = sorted({s.strip() for s in sources if s.strip()}, key=lambda s: (-len(s), s))
    if not cleaned:
        return None
    # (?<!\w)/(?!\w) rather than \b: terms may begin or end with a non-word
    # character ("C++", ".NET") where \b would never match.
    alternatives = "|".join(r"\s+".join(re.escape(w) for w in s.split()) for s in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def protect(text: str, terms: Sequence[GlossaryTerm]) -> ProtectedText:
    """Replace each occurrence of a glossary term in ``text`` by a placeholder word.

    ``terms`` should already be filtered for the target language. A term with
    a target becomes that target after ``restore``; a term to keep comes back
    as written in ``text``.
    """
    pattern = term_pattern([t.source for t in terms])
    if pattern is None:
        return ProtectedText(text)
    targets: dict[str, GlossaryTerm] = {}
    for term in sorted(terms, key=lambda t: -len(t.source)):
        targets.setdefault(_normalise(term.source), term)
    prefix = _free_prefix(text)
    replacements: list[tuple[str, str]] = []

    def substitute(match: re.Match[str]) -> str:
        term = targets.get(_normalise(match.group(0)))
        if term is None:  # a case mapping casefold() and the regex disagree on; leave it be
            return match.group(0)
        placeholder = f"{prefix}{_label(len(replacements))}1"
        replacements.append((placeholder, term.target if term.target else match.group(0)))
        return placeholder

    return ProtectedText(pattern.sub(substitute, text), tuple(replacements))


def _free_prefix(text: str) -> str:
    """A placeholder prefix that occurs nowhere in ``text`` (case aside): the base, plus at most three letters.

    Found in one pass over the text, whatever it holds: the text is the
    caller's (TranslateText takes 5000 characters), and growing the prefix
    until it was free took a pass per letter, quadratic in a text full of
    ``ZQXGLOSQQQ...`` (80 ms of the event loop per request), with
    placeholders as long as the text. Three letters always suffice: taking
    all 17,576 would need far more text than a request may carry.
    """
    taken: set[str] = set()
    for match in _AFTER_BASE.finditer(text.lower()):
        follow = match.group(1)
        taken.update(follow[:size] for size in range(len(follow) + 1))
    for size in range(4):
        for letters in itertools.product(string.ascii_lowercase, repeat=size):
            if "".join(letters) not in taken:
                return _BASE_PREFIX + "".join(letters).upper()
    raise AssertionError("unreachable: a text with every three-letter continuation of the prefix")


def _normalise(term: str) -> str:
    return " ".join(term.split()).casefold()
