"""Money on receipts: which currency, and numbers written the Korean, US or European way.

A receipt says its currency with a symbol (₩ $ £ € ¥), a code (KRW, USD ...)
or a word (원); Hangul with no such mark means won. Numbers are read with
the currency's minor units in mind: ``33.636`` on a won receipt is
``33636`` (OCR often reads a comma as a point), ``43,64`` with two digits
after the comma is a decimal comma, ``1.234,50`` European, ``1,234.50``
US. Common OCR slips inside numbers (``O`` for 0, ``l`` for 1, a space
after the thousands comma) are undone first.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tongyeok_server.expenses.extract.text import hangul_share

#: Digits after the point of each currency (ISO 4217 minor units) this reader knows.
MINOR_UNITS = {
    "KRW": 0,
    "JPY": 0,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CNY": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "SGD": 2,
    "HKD": 2,
}
_SYMBOLS = (
    ("₩", "KRW"),
    ("원", "KRW"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("円", "JPY"),
    ("US$", "USD"),
    ("C$", "CAD"),
    ("A$", "AUD"),
    ("S$", "SGD"),
    ("HK$", "HKD"),
    ("$", "USD"),
)
_CODES = re.compile(r"\b(KRW|USD|EUR|GBP|JPY|CNY|CAD|AUD|CHF|SGD|HKD)\b")
# A number: digits with optional thousands separators (, . space ') and an optional decimal part; not glued
# to a letter before it ("GS25", "이마트24" are names), except W (₩ as OCR often reads it: "W37,000").
NUMBER = re.compile(
    r"(?<![^\W\d_Ww])(?<![\d])(-?\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\d{1,2})?|-?\d+(?:[.,]\d{1,2})?)(?![\d])"
)
_WON_PREFIX = re.compile(r"(?:(?<=\s)|^)[W\\](?=\d)")


@dataclass(frozen=True)
class Amount:
    """A number found on a line, where it was and how it was written."""

    value: Decimal
    text: str
    start: int
    end: int
    has_decimals: bool


def detect_currency(text: str) -> tuple[str, float]:
    """The receipt's currency (ISO 4217) and how sure (0..1); ("", 0) when nothing says."""
    votes: Counter[str] = Counter()
    for symbol, code in _SYMBOLS:
        n = text.count(symbol)
        if n:
            votes[code] += n * (2 if symbol not in ("$",) else 1)
            if symbol in ("US$", "C$", "A$", "S$", "HK$"):
                votes["USD"] -= n  # the bare "$" inside them was counted too
    for match in _CODES.finditer(text):
        votes[match.group(1)] += 3
    votes["KRW"] += len(_WON_PREFIX.findall(text))  # ₩ read as W or a backslash before digits
    if votes:
        code, n = votes.most_common(1)[0]
        if n > 0:
            total = sum(v for v in votes.values() if v > 0)
            return code, min(0.99, 0.6 + 0.4 * n / total)
    if hangul_share(text) > 0.3:
        return "KRW", 0.7
    return "", 0.0


def clean_numbers(line: str) -> str:
    """Undo OCR slips inside numbers: O/o for 0, l/I for 1, spaces around separators, ₩ as W."""

    def fix(match: re.Match[str]) -> str:
        return match.group(0).replace("O", "0").replace("o", "0").replace("l", "1").replace("I", "1")

    line = re.sub(r"(?<=\d)[OolI]|[OolI](?=\d)", fix, line)
    line = re.sub(r"(?<=\d) ?([,.]) ?(?=\d{3}\b)", r"\1", line)  # "40 ,000" -> "40,000"
    line = re.sub(r"(?<=\d)[:;](?=\d{2}\b(?![:]))", ",", line) if not re.search(r"\d:\d\d:\d\d", line) else line
    return line


def amounts_in(line: str, currency: str) -> list[Amount]:
    """Every amount written on ``line``, read for ``currency``'s minor units."""
    minor = MINOR_UNITS.get(currency, 2)
    out = []
    for match in NUMBER.finditer(line):
        raw = match.group(1)
        value = parse_number(raw, minor)
        if value is None:
            continue
        decimals = bool(re.search(r"[.,]\d{1,2}$", raw)) and minor > 0
        out.append(Amount(value, raw, match.start(1), match.end(1), decimals))
    return out


def parse_number(raw: str, minor: int = 2) -> Decimal | None:
    """``raw`` as a number, deciding which separator is the decimal one (see the module docstring)."""
    text = raw.replace("'", "").replace(" ", "")
    negative = text.startswith("-")
    text = text.lstrip("-")
    decimal_part = ""
    last = max(text.rfind(","), text.rfind("."))
    if last >= 0:
        tail = text[last + 1 :]
        if minor > 0 and 1 <= len(tail) <= 2:
            decimal_part = tail
            text = text[:last]
        elif len(tail) != 3:
            return None
    digits = text.replace(",", "").replace(".", "")
    if not digits.isdigit():
        return None
    try:
        value = Decimal(digits + ("." + decimal_part if decimal_part else ""))
    except InvalidOperation:
        return None
    return -value if negative else value


def quantize(value: Decimal, currency: str) -> Decimal:
    """``value`` with the currency's number of decimals."""
    minor = MINOR_UNITS.get(currency, 2)
    return value.quantize(Decimal(1).scaleb(-minor))


def decimal_comma_share(text: str) -> float:
    """How many of the decimal numbers in ``text`` use a comma (a European receipt)."""
    commas = len(re.findall(r"\d,\d{2}(?!\d)", text))
    points = len(re.findall(r"\d\.\d{2}(?!\d)", text))
    return commas / (commas + points) if commas + points else 0.0
