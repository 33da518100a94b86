"""Text helpers: normalising OCR output, telling scripts apart, matching labels despite OCR noise."""

from __future__ import annotations

import difflib
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC (full-width digits and signs become ASCII), one space between words, no edges."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("—", "-").replace("–", "-")
    return _SPACES.sub(" ", text).strip()


def is_hangul(char: str) -> bool:
    """A Hangul syllable or jamo."""
    return "\uac00" <= char <= "\ud7a3" or "\u3131" <= char <= "\u318e"


def hangul_share(text: str) -> float:
    """The share of letters in ``text`` that are Hangul."""
    letters = [c for c in text if c.isalpha()]
    return sum(map(is_hangul, letters)) / len(letters) if letters else 0.0


def letters_only(text: str) -> str:
    """Lower-case letters of ``text`` without spaces or signs (for matching labels)."""
    return "".join(c for c in text.lower() if c.isalpha())


def label_matches(label: str, candidates: tuple[str, ...], cutoff: float = 0.8) -> str | None:
    """The candidate ``label`` is (allowing an OCR slip or two), or None.

    ``label`` is the letters before a line's amount; candidates are compared
    without spaces, and a candidate found inside the label counts (``TOTAL
    DUE`` contains ``total``) unless a longer candidate matches better.
    """
    plain = letters_only(label)
    if not plain:
        return None
    best: tuple[float, str] | None = None
    for candidate in candidates:
        target = letters_only(candidate)
        if plain == target:
            score = 2.0
        elif (len(target) >= 2 and plain.startswith(target)) or (len(target) >= 4 and target in plain):
            score = 1.0 + len(target) / (len(plain) + 1) / 2
        elif min(len(plain), len(target)) < 4 and not any(map(is_hangul, plain)):
            continue  # "GS" is not "GST": one slip in a short Latin word is another word
        else:
            score = difflib.SequenceMatcher(None, plain, target).ratio()
            if score < cutoff:
                continue
        if best is None or score > best[0]:
            best = (score, candidate)
    return best[1] if best else None
