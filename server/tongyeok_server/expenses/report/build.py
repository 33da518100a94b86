"""A trip's report as data: expenses by day and category, totals per currency and converted."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

import grpc

from tongyeok_server.errors import ServiceError
from tongyeok_server.expenses.extract.amounts import MINOR_UNITS
from tongyeok_server.expenses.model import Category, Expense
from tongyeok_server.expenses.report.rates import Rates, rate


@dataclass(frozen=True)
class Meeting:
    """A session of the meeting record during the trip."""

    session_id: str
    started_at: datetime
    duration_s: int
    languages: str
    utterances: int


@dataclass
class Report:
    """Everything a report shows (amounts are exact decimals; converted ones rounded to the currency)."""

    trip: str
    date_from: date | None
    date_to: date | None
    currency: str  # the report currency ("" for none)
    expenses: list[Expense]
    days: dict[date, dict[tuple[Category, str], Decimal]] = field(default_factory=dict)
    day_converted: dict[date, Decimal] = field(default_factory=dict)
    totals: dict[str, Decimal] = field(default_factory=dict)
    converted_by_category: dict[Category, Decimal] = field(default_factory=dict)
    converted_total: Decimal | None = None
    rates: dict[str, Decimal] = field(default_factory=dict)
    incomplete: list[Expense] = field(default_factory=list)
    meetings: list[Meeting] = field(default_factory=list)

    @property
    def counted(self) -> list[Expense]:
        """The expenses in the totals (total and currency read)."""
        return [e for e in self.expenses if e.reading.total is not None and e.reading.currency]

    def converted(self, expense: Expense) -> Decimal | None:
        """An expense's total in the report currency."""
        r = expense.reading
        if not self.currency or r.total is None or r.currency not in self.rates:
            return None
        return round_to(r.total * self.rates[r.currency], self.currency)


def round_to(value: Decimal, currency: str) -> Decimal:
    """``value`` rounded half-up to ``currency``'s minor units."""
    return value.quantize(Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2)), rounding=ROUND_HALF_UP)


def build(
    expenses: list[Expense],
    *,
    trip: str,
    date_from: date | None,
    date_to: date | None,
    currency: str,
    rates: Rates,
    meetings: list[Meeting],
) -> Report:
    """The report of ``expenses``; FAILED_PRECONDITION when a currency has no rate into ``currency``."""
    dated = [e.reading.date for e in expenses if e.reading.date]
    report = Report(
        trip=trip,
        date_from=date_from or (min(dated) if dated else None),
        date_to=date_to or (max(dated) if dated else None),
        currency=currency,
        expenses=expenses,
        meetings=meetings,
    )
    report.incomplete = [e for e in expenses if e.reading.total is None or not e.reading.currency]
    counted = report.counted
    if currency:
        missing = sorted({e.reading.currency for e in counted if rate(rates, e.reading.currency, currency) is None})
        if missing:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no exchange rate from {', '.join(missing)} to {currency} in the server's rates file; "
                "ask the operator to add them (--expense-rates), or report without a report currency",
            )
        for code in sorted({e.reading.currency for e in counted}):
            found = rate(rates, code, currency)
            assert found is not None
            report.rates[code] = found
    days: dict[date, dict[tuple[Category, str], Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    by_category: dict[Category, Decimal] = defaultdict(Decimal)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    day_converted: dict[date, Decimal] = defaultdict(Decimal)
    for e in counted:
        r = e.reading
        assert r.total is not None
        totals[r.currency] += r.total
        if r.date is not None:
            days[r.date][(r.category, r.currency)] += r.total
        converted = report.converted(e)
        if converted is not None:
            by_category[r.category] += converted
            if r.date is not None:
                day_converted[r.date] += converted
    report.days = {d: dict(v) for d, v in sorted(days.items())}
    report.totals = dict(sorted(totals.items()))
    if currency:
        report.day_converted = dict(sorted(day_converted.items()))
        report.converted_by_category = {c: by_category[c] for c in Category if c in by_category}
        report.converted_total = sum(by_category.values(), Decimal(0))
    return report
