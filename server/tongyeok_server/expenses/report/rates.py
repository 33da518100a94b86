"""Exchange rates the operator supplies (``--expense-rates FILE``), re-read when the file changes.

No rates are fetched from the network: the operator (or a job of theirs)
writes the file, one rate per line, and the server follows it like the
keys files (``auth/watched_files.py``: a ``stat`` at most once a second,
SIGHUP forces a re-read, a file that does not parse keeps the previous rates
in force with a warning)::

    # 1 BASE = RATE QUOTE
    USD KRW 1385.20
    EUR KRW 1502.10
    GBP KRW 1750

A conversion uses the direct rate, else the inverse of the opposite one,
else one hop through a third currency (USD -> KRW -> JPY).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tongyeok_server.auth.watched_files import FileConfigError, WatchedFiles

_CODE = re.compile(r"^[A-Z]{3}$")
Rates = dict[tuple[str, str], Decimal]


class RatesFileError(FileConfigError):
    """The rates file cannot be used; the message names the line."""


def parse(text: str, source: str = "the rates file") -> Rates:
    """``{(base, quote): rate}`` from the file's text."""
    rates: Rates = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{source} line {number}"
        if len(fields) != 3:
            raise RatesFileError(f"{where}: expected `BASE QUOTE RATE` (e.g. `USD KRW 1385.20`)")
        base, quote, value = fields[0].upper(), fields[1].upper(), fields[2]
        if not _CODE.match(base) or not _CODE.match(quote):
            raise RatesFileError(f"{where}: {fields[0]} and {fields[1]} must be ISO 4217 codes such as USD and KRW")
        try:
            rate = Decimal(value)
        except InvalidOperation:
            raise RatesFileError(f"{where}: {value!r} is not a number") from None
        if not rate.is_finite() or rate <= 0:
            raise RatesFileError(f"{where}: the rate must be a positive number")
        rates[(base, quote)] = rate
    return rates


def rate(rates: Rates, base: str, quote: str) -> Decimal | None:
    """Units of ``quote`` per unit of ``base`` (see the module docstring); None when the file has no way."""
    if base == quote:
        return Decimal(1)
    if (base, quote) in rates:
        return rates[(base, quote)]
    if (quote, base) in rates:
        return Decimal(1) / rates[(quote, base)]
    currencies = {c for pair in rates for c in pair}
    for middle in sorted(currencies - {base, quote}):
        first, second = rate_direct(rates, base, middle), rate_direct(rates, middle, quote)
        if first is not None and second is not None:
            return first * second
    return None


def rate_direct(rates: Rates, base: str, quote: str) -> Decimal | None:
    """The direct or inverse rate only."""
    if (base, quote) in rates:
        return rates[(base, quote)]
    if (quote, base) in rates:
        return Decimal(1) / rates[(quote, base)]
    return None


class RatesFile:
    """The rates of one file, kept current."""

    def __init__(self, path: Path) -> None:
        """Load ``path`` now; ``RatesFileError`` if it cannot be used."""
        self.path = path
        self._rates = WatchedFiles("exchange rates", [path], self._read, lambda r: f"{len(r)} rate(s) from {path}")

    def _read(self) -> Rates:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RatesFileError(f"cannot read the rates file {self.path}: {e}") from None
        return parse(text, str(self.path))

    def current(self) -> Rates:
        """The rates in force."""
        return self._rates.current()

    def request_reload(self) -> None:
        """Re-read at the next use (SIGHUP)."""
        self._rates.request_reload()
