"""Expenses from receipts (the ``Expenses`` service): scan, list, correct, delete, report.

Example::

    from tongyeok_client import InterpreterClient

    with InterpreterClient("localhost:50051") as client:
        expense = client.expenses.scan("receipt.jpg", trip="Seoul 2026-11")
        print(expense.merchant, expense.date, expense.total, expense.currency_code)
        client.expenses.correct(expense.expense_id, total="14000")
        report = client.expenses.export_report(date_from="2026-11-01", date_to="2026-11-07",
                                               currency="KRW", format="pdf")
        open(report.file_name, "wb").write(report.content)

Expenses come back as the ``tongyeok.v1.Expense`` messages themselves (see
``protos/tongyeok/v1/expenses.proto``); amounts are decimal strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from .proto import expenses_pb2 as epb
from .proto import expenses_pb2_grpc as epb_grpc
from .service import ServiceClient

__all__ = ["CATEGORIES", "PAYMENTS", "REPORT_FORMATS", "ExpensesClient", "ExportedReport", "expense_name"]

CHUNK_BYTES = 1 << 20
#: ``format`` names accepted by :meth:`ExpensesClient.export_report`.
REPORT_FORMATS = {"csv": epb.REPORT_FORMAT_CSV, "xlsx": epb.REPORT_FORMAT_XLSX, "pdf": epb.REPORT_FORMAT_PDF}
#: Category names for :meth:`ExpensesClient.correct` and ``list``.
CATEGORIES = {
    "meals": epb.EXPENSE_CATEGORY_MEALS,
    "lodging": epb.EXPENSE_CATEGORY_LODGING,
    "transport": epb.EXPENSE_CATEGORY_TRANSPORT,
    "other": epb.EXPENSE_CATEGORY_OTHER,
}
#: Payment method names for :meth:`ExpensesClient.correct`.
PAYMENTS = {"card": epb.PAYMENT_METHOD_CARD, "cash": epb.PAYMENT_METHOD_CASH, "other": epb.PAYMENT_METHOD_OTHER}


@dataclass(frozen=True)
class ExportedReport:
    """A rendered report: the report as data, its file and a name to save it under."""

    report: epb.ExpenseReport
    content: bytes
    media_type: str
    file_name: str


def expense_name(expense: str) -> str:
    """An expense id or resource name -> ``expenses/{id}``."""
    return expense if expense.startswith("expenses/") else f"expenses/{expense}"


class ExpensesClient(ServiceClient):
    """The ``Expenses`` service over an existing channel (``InterpreterClient.expenses`` makes one).

    Every method raises :class:`~tongyeok_client.TongyeokError` when the call fails.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = 60.0,
        error: Callable[[grpc.RpcError], Exception] | None = None,
    ) -> None:
        super().__init__(metadata=metadata, timeout=timeout, error=error)
        self._stub = epb_grpc.ExpensesStub(channel)  # type: ignore[no-untyped-call]

    def scan(
        self,
        image: bytes | str | Path,
        *,
        trip: str = "",
        note: str = "",
        validate_only: bool = False,
        request_id: str = "",
    ) -> epb.Expense:
        """Read a receipt (a file path or its bytes) and keep it as an expense (``validate_only``: keep nothing)."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        config = epb.ScanReceiptConfig(trip=trip, note=note, validate_only=validate_only, request_id=request_id)

        def requests() -> Iterator[epb.ScanReceiptRequest]:
            yield epb.ScanReceiptRequest(config=config)
            for i in range(0, len(data), CHUNK_BYTES):
                yield epb.ScanReceiptRequest(image_chunk=data[i : i + CHUNK_BYTES])

        expense: epb.Expense = self._call(self._stub.ScanReceipt, requests())
        return expense

    def get(self, expense: str) -> epb.Expense:
        """One expense (by id or ``expenses/{id}``)."""
        found: epb.Expense = self._call(self._stub.GetExpense, epb.GetExpenseRequest(name=expense_name(expense)))
        return found

    def list(
        self,
        *,
        date_from: str = "",
        date_to: str = "",
        trip: str = "",
        currency: str = "",
        category: str = "",
        page_size: int = 100,
        limit: int | None = None,
    ) -> Iterator[epb.Expense]:
        """The caller's expenses, newest date first, following page tokens; at most ``limit``."""
        if category and category not in CATEGORIES:
            raise ValueError(f"category {category!r}: use one of {', '.join(CATEGORIES)}")
        request = epb.ListExpensesRequest(
            page_size=page_size,
            date_from=date_from,
            date_to=date_to,
            trip=trip,
            currency_code=currency,
            category=CATEGORIES[category] if category else epb.EXPENSE_CATEGORY_UNSPECIFIED,
        )
        seen = 0
        while True:
            page: epb.ListExpensesResponse = self._call(self._stub.ListExpenses, request)
            for expense in page.expenses:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield expense
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def correct(self, expense: str, **fields: Any) -> epb.Expense:
        """Correct fields: ``merchant``, ``date``, ``total``, ``currency_code``, ``tax``, ``subtotal``,
        ``payment_method`` (card, cash, other), ``category`` (meals, lodging, transport, other), ``trip``, ``note``.

        Raises:
            ValueError: an unknown field or name.

        """  # noqa: D205
        update = epb.Expense(name=expense_name(expense))
        for key, value in fields.items():
            if key == "category":
                if value not in CATEGORIES:
                    raise ValueError(f"category {value!r}: use one of {', '.join(CATEGORIES)}")
                update.category = CATEGORIES[value]
            elif key == "payment_method":
                if value not in PAYMENTS:
                    raise ValueError(f"payment_method {value!r}: use one of {', '.join(PAYMENTS)}")
                update.payment_method = PAYMENTS[value]
            elif key in ("merchant", "date", "total", "currency_code", "tax", "subtotal", "trip", "note"):
                setattr(update, key, str(value))
            else:
                raise ValueError(f"{key!r} cannot be corrected")
        request = epb.UpdateExpenseRequest(expense=update, update_mask=FieldMask(paths=list(fields)))
        updated: epb.Expense = self._call(self._stub.UpdateExpense, request)
        return updated

    def delete(self, expense: str) -> None:
        """Delete an expense and its photo."""
        self._call(self._stub.DeleteExpense, epb.DeleteExpenseRequest(name=expense_name(expense)))

    def image(self, expense: str) -> tuple[bytes, str]:
        """The receipt's photo as sent, and its media type."""
        try:
            chunks = list(
                self._stub.GetReceiptImage(
                    epb.GetReceiptImageRequest(name=expense_name(expense)),
                    timeout=self._timeout,
                    metadata=self._metadata,
                )
            )
        except grpc.RpcError as e:
            raise self._error(e) from None
        return b"".join(c.data for c in chunks), chunks[0].media_type if chunks else ""

    def export_report(
        self,
        *,
        format: str,
        date_from: str = "",
        date_to: str = "",
        trip: str = "",
        currency: str = "",
    ) -> ExportedReport:
        """A trip's report (``format`` csv, xlsx or pdf) over a date range and/or a trip name."""
        if format not in REPORT_FORMATS:
            raise ValueError(f"format {format!r}: use one of {', '.join(REPORT_FORMATS)}")
        request = epb.ExportReportRequest(
            date_from=date_from,
            date_to=date_to,
            trip=trip,
            report_currency_code=currency,
            format=REPORT_FORMATS[format],
        )
        try:
            messages = list(self._stub.ExportReport(request, timeout=self._timeout, metadata=self._metadata))
        except grpc.RpcError as e:
            raise self._error(e) from None
        head = messages[0]
        return ExportedReport(head.report, b"".join(m.content for m in messages), head.media_type, head.file_name)
