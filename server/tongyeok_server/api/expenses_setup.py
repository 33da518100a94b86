"""Assembling the Expenses service from the settings: its reader, rates file, store and servicer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tongyeok_server.api.expenses import ExpensesServicer
from tongyeok_server.auth.limits import CallerLimits
from tongyeok_server.auth.watched_files import FileConfigError
from tongyeok_server.errors import StartError
from tongyeok_server.expenses import store as expense_store
from tongyeok_server.expenses.readers.base import ReceiptReader
from tongyeok_server.expenses.readers.registry import create_reader
from tongyeok_server.expenses.report.rates import RatesFile
from tongyeok_server.expenses.report.service import ReportMaker
from tongyeok_server.settings import ExpensesSettings, GoogleSettings, OpenAISettings
from tongyeok_server.store.recorder import MeetingRecord

log = logging.getLogger(__name__)


class ExpensesSetup:
    """The Expenses service of one server: ``servicer`` for the edge, ``reload`` and ``close`` for ``app.py``."""

    def __init__(
        self, reader: ReceiptReader, record: MeetingRecord | None, limits: CallerLimits, rates: RatesFile | None
    ) -> None:
        self.reader = reader
        self.rates = rates
        self.servicer = ExpensesServicer(reader, record, limits, ReportMaker(rates))
        if record is not None and record.options.retention_days > 0:
            days = record.options.retention_days
            engine = record.engine

            def purge(now: datetime | None = None) -> int:
                cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
                deleted = expense_store.purge_images(engine, cutoff)
                if deleted:
                    log.info("retention: deleted %d receipt photos older than %s", deleted, cutoff.isoformat())
                return deleted

            record.add_purge(purge)

    def reload(self) -> None:
        """Re-read the rates file at its next use (SIGHUP)."""
        if self.rates is not None:
            self.rates.request_reload()

    def close(self) -> None:
        """Stop the reader's threads and connections."""
        self.reader.close()


def expenses_component(
    settings: ExpensesSettings,
    record: MeetingRecord | None,
    limits: CallerLimits,
    reader: ReceiptReader | None = None,
    *,
    google: GoogleSettings | None = None,
    openai: OpenAISettings | None = None,
) -> ExpensesSetup:
    """The Expenses service as ``settings`` configure it; ``StartError`` with what to fix on a bad flag or file."""
    rates = None
    if settings.expense_rates:
        try:
            rates = RatesFile(Path(settings.expense_rates))
        except FileConfigError as e:
            raise StartError(f"--expense-rates: {e}") from None
    return ExpensesSetup(reader or create_reader(settings, google, openai), record, limits, rates)


__all__ = ["ExpensesSetup", "expenses_component"]
