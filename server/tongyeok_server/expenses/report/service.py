"""Making a trip's report: the expenses and meetings from the store, the rates, the file (blocking)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine

from tongyeok_server.expenses import images
from tongyeok_server.expenses import store as expense_store
from tongyeok_server.expenses.model import Expense
from tongyeok_server.expenses.report import files
from tongyeok_server.expenses.report.build import Meeting, Report, build
from tongyeok_server.expenses.report.rates import Rates, RatesFile
from tongyeok_server.store import queries

MAX_MEETINGS = 1000
FORMATS = ("csv", "xlsx", "pdf")


class ReportMaker:
    """Builds and renders reports with the operator's rates (``--expense-rates``; none: no conversion)."""

    def __init__(self, rates: RatesFile | None) -> None:
        self.rates_file = rates

    def rates(self) -> Rates:
        """The rates in force."""
        return self.rates_file.current() if self.rates_file is not None else {}

    def make(
        self, engine: Engine, owner: str, *, trip: str, date_from: date | None, date_to: date | None, currency: str
    ) -> Report:
        """The report of ``owner``'s expenses of a trip (a date range, a trip name or both)."""
        flt = expense_store.ExpenseFilter(date_from, date_to, trip)
        expenses = expense_store.for_report(engine, owner, flt)
        dated = [e.reading.date for e in expenses if e.reading.date]
        first, last = date_from or (min(dated) if dated else None), date_to or (max(dated) if dated else None)
        meetings = self._meetings(engine, owner, first, last) if first and last else []
        return build(
            expenses, trip=trip, date_from=first, date_to=last, currency=currency, rates=self.rates(), meetings=meetings
        )

    @staticmethod
    def _meetings(engine: Engine, owner: str, first: date, last: date) -> list[Meeting]:
        after = datetime.combine(first, time(), UTC)
        before = datetime.combine(last, time(), UTC) + timedelta(days=1)
        records = queries.list_sessions(engine, owner, queries.SessionFilter(after, before), None, MAX_MEETINGS)
        out = []
        for r in reversed(records):
            languages = "+".join(r.source_languages) + (
                f" → {', '.join(r.target_languages)}" if r.target_languages else ""
            )
            end = r.ended_at or r.started_at
            out.append(
                Meeting(
                    r.session_id, r.started_at, int((end - r.started_at).total_seconds()), languages, r.utterance_count
                )
            )
        return out

    @staticmethod
    def render(engine: Engine, owner: str, report: Report, fmt: str) -> files.RenderedFile:
        """``report`` as a ``fmt`` file (csv, xlsx, pdf); the PDF reads each receipt's photo from the store."""
        if fmt == "csv":
            return files.csv_file(report)
        if fmt == "xlsx":
            return files.xlsx_file(report)

        def photo(expense: Expense) -> bytes | None:
            image = expense_store.image(engine, expense.expense_id, owner)
            return None if image is None else images.thumbnail_jpeg(image)

        return files.pdf_file(report, photo)
