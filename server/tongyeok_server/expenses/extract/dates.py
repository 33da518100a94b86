"""Dates on receipts: ISO, Korean, US and European formats.

ISO and Korean (``2026-11-03``, ``2026년 11월 3일``, ``2026.11.03``), US
(``11/03/2026``, ``Nov 3, 2026``) and European (``03.11.2026``,
``3 November 2026``, ``03/11/2026``).

A slashed date with both parts up to 12 is ambiguous: the receipt's
currency decides (USD: month first; GBP, EUR and others: day first).
"""

from __future__ import annotations

import re
from datetime import date

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        (
            ("jan", "january", "janvier", "januar", "enero"),
            ("feb", "february", "février", "februar", "febrero"),
            ("mar", "march", "mars", "märz", "marzo"),
            ("apr", "april", "avril", "abril"),
            ("may", "mai", "mayo"),
            ("jun", "june", "juin", "juni", "junio"),
            ("jul", "july", "juillet", "juli", "julio"),
            ("aug", "august", "août", "agosto"),
            ("sep", "sept", "september", "septembre", "septiembre"),
            ("oct", "october", "octobre", "oktober", "octubre"),
            ("nov", "november", "novembre", "noviembre"),
            ("dec", "december", "décembre", "dezember", "diciembre"),
        )
    )
    for name in names
}
_KOREAN = re.compile(r"(\d{4}|\d{2})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일")
_YMD = re.compile(r"(?<!\d)(\d{4}|\d{2})\s?([-./])\s?(\d{1,2})\s?\2\s?(\d{1,2})(?!\d)")
_DMY = re.compile(r"(?<!\d)(\d{1,2})\s?([-./])\s?(\d{1,2})\s?\2\s?(\d{4})(?!\d)")
_NAMED_MDY = re.compile(r"\b([A-Za-zéû]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b")
_NAMED_DMY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\.?\s+([A-Za-zéäû]{3,9})\.?,?\s+(\d{4})\b")


def _valid(year: int, month: int, day: int) -> date | None:
    if year < 100:
        year += 2000
    if not 1990 <= year <= 2100:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_date(line: str, month_first: bool) -> tuple[date, float] | None:
    """The first date on ``line`` and how sure the reading is (0..1), or None."""
    if m := _KOREAN.search(line):
        found = _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if found:
            return found, 0.95
    if m := _YMD.search(line):
        year = m.group(1)
        if len(year) == 4 or m.group(2) != "/":
            found = _valid(int(year), int(m.group(3)), int(m.group(4)))
            if found:
                return found, 0.95 if len(year) == 4 else 0.6
    if m := _DMY.search(line):
        a, b, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if m.group(2) == "." or a > 12:
            day, month, sure = a, b, 0.9
        elif b > 12:
            month, day, sure = a, b, 0.9
        else:
            month, day = (a, b) if month_first else (b, a)
            sure = 0.75
        found = _valid(year, month, day)
        if found:
            return found, sure
    if m := _NAMED_MDY.search(line):
        named = MONTHS.get(m.group(1).lower())
        if named and (found := _valid(int(m.group(3)), named, int(m.group(2)))):
            return found, 0.9
    if m := _NAMED_DMY.search(line):
        named = MONTHS.get(m.group(2).lower())
        if named and (found := _valid(int(m.group(3)), named, int(m.group(1)))):
            return found, 0.9
    return None


def date_spans(line: str) -> list[tuple[int, int]]:
    """Where dates (and times) are on ``line``, so their digits are not taken for amounts."""
    spans: list[tuple[int, int]] = []
    for pattern in (_KOREAN, _YMD, _DMY, _NAMED_MDY, _NAMED_DMY, re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")):
        spans.extend(m.span() for m in pattern.finditer(line))
    return spans
