"""Turning pocketsphinx's lowercase word strings into sentences.

The CMU dictionary is lowercase and has no punctuation. A final that reads
as a sentence ("We meet on Friday.") is easier to read and translates better
(Apertium does not know "friday" in lowercase).
"""

from __future__ import annotations

import re

_PROPER = {
    w.lower(): w
    for w in [
        "I",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "English",
        "Korean",
        "Spanish",
        "Seoul",
        "Korea",
        "America",
        "American",
    ]
}
# "may" and "march" are more often verbs than months.
_PROPER.pop("may")
_PROPER.pop("march")
_CONTRACTION_I = re.compile(r"\bi(?=('m|'ll|'ve|'d)\b)")
_ALTERNATE = re.compile(r"\(\d+\)")  # "to(2)": dictionary alternate pronunciations


def words(hypothesis: str) -> str:
    """Clean a raw hypothesis: alternates and fillers removed, proper words capitalised."""
    tokens = [_ALTERNATE.sub("", t) for t in hypothesis.split() if not t.startswith(("<", "[", "++"))]
    text = " ".join(_PROPER.get(t, t) for t in tokens)
    return _CONTRACTION_I.sub("I", text)


def sentence(hypothesis: str) -> str:
    """A final hypothesis as a sentence: capitalised, ending with a full stop."""
    text = words(hypothesis)
    if not text:
        return ""
    return text[0].upper() + text[1:] + "."
