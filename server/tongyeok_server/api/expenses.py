"""The ``tongyeok.v1.Expenses`` servicer: the thin gRPC edge of ``expenses/``.

It checks requests, asks the caller's limits, hands the receipt to the
reader (async; OCR runs on the reader's threads), and runs the store's
blocking calls on the loop's default executor. Every RPC needs the
``expenses`` scope; a caller sees its own expenses only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.empty_pb2 import Empty

from tongyeok_client.proto import expenses_pb2 as epb
from tongyeok_client.proto import expenses_pb2_grpc as epb_grpc
from tongyeok_server.api.handlers import Undecodable
from tongyeok_server.api.unary import decoded, in_store, serve
from tongyeok_server.auth.caller import Scope, current_caller
from tongyeok_server.auth.limits import CallerLimits
from tongyeok_server.errors import ServiceError, invalid_argument
from tongyeok_server.expenses import images
from tongyeok_server.expenses import store as expense_store
from tongyeok_server.expenses.messages import (
    CATEGORIES,
    MAX_TEXT,
    NAME_PREFIX,
    corrections,
    expense_message,
    parse_currency,
    parse_date,
    report_message,
)
from tongyeok_server.expenses.model import Expense
from tongyeok_server.expenses.readers.base import ReceiptReader
from tongyeok_server.expenses.report.service import ReportMaker
from tongyeok_server.store import page_token
from tongyeok_server.store.recorder import MeetingRecord

log = logging.getLogger(__name__)

SERVICE_NAME = epb.DESCRIPTOR.services_by_name["Expenses"].full_name
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
CHUNK_BYTES = 1 << 20  # what one response message carries (the server's and clients' message limits allow it)
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_REPORT_FORMATS = {epb.REPORT_FORMAT_CSV: "csv", epb.REPORT_FORMAT_XLSX: "xlsx", epb.REPORT_FORMAT_PDF: "pdf"}
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


class ExpensesServicer(epb_grpc.ExpensesServicer):
    """Serves expenses from ``record``'s database (None: ``--store none``, every RPC FAILED_PRECONDITION)."""

    def __init__(
        self,
        reader: ReceiptReader,
        record: MeetingRecord | None,
        limits: CallerLimits,
        reports: ReportMaker,
    ) -> None:
        self._reader = reader
        self._record = record
        self._limits = limits
        self._reports = reports

    async def ScanReceipt(self, request_iterator: AsyncIterator[Any], context: Context) -> epb.Expense:
        """Read a receipt streamed as config + chunks, keep it, return the expense."""

        async def work() -> epb.Expense:
            owner = self._owner()
            config, data = await _receive(request_iterator)
            if len(config.request_id) > 64:
                raise invalid_argument("config.request_id is longer than 64 characters")
            if len(config.trip) > 200 or len(config.note) > MAX_TEXT:
                raise invalid_argument(f"config.trip is at most 200 characters, config.note {MAX_TEXT}")
            image = images.check(data)
            if config.request_id and not config.validate_only:
                # A retry after a lost answer: the first scan's expense, without reading the photo again.
                earlier = await self._db(expense_store.by_request, owner, config.request_id)
                if earlier is not None:
                    return expense_message(earlier)
            self._limits.admit_scan(current_caller())
            try:
                reading = await self._reader.read(image)
            except ServiceError:
                raise
            except Exception:
                # An engine's bug must not become a traceback for the caller or a dead servicer.
                log.exception("the %s receipt reader failed", self._reader.name)
                raise ServiceError(
                    grpc.StatusCode.INTERNAL, "reading the receipt failed inside the server; retry, or report it"
                ) from None
            if not reading.raw_text.strip() and reading.total is None and not reading.merchant:
                raise invalid_argument(
                    "no text could be read on the picture: is it a receipt, in focus, lit evenly and not cut off? "
                    "Photograph it flat, filling the frame"
                )
            if config.validate_only:
                now = datetime.now(UTC)
                preview = Expense(
                    "", owner, now, now, reading, config.trip, config.note, (), image.media_type, len(image.data)
                )
                return expense_message(preview)
            now = datetime.now(UTC)
            expense = await self._db(
                expense_store.insert,
                expense_store.new_expense_id(now),
                owner,
                reading,
                image,
                trip=config.trip,
                note=config.note,
                request_id=config.request_id,
                now=now,
            )
            log.info(
                "expense %s scanned by caller=%s (engine=%s, %d bytes %s)",
                expense.expense_id,
                owner,
                reading.engine,
                len(image.data),
                image.media_type,
            )
            return expense_message(expense)

        return await serve(context, work)

    async def ListExpenses(self, request: epb.ListExpensesRequest, context: Context) -> epb.ListExpensesResponse:
        """The caller's expenses, a page at a time."""

        async def work() -> epb.ListExpensesResponse:
            decoded(request)
            owner = self._owner()
            if request.page_size < 0:
                raise invalid_argument(f"page_size is {request.page_size}; use 0 (the default, 50) to 1000")
            size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            flt = _filter(request)
            bound_to = page_token.binding("expenses", owner, flt)
            key = await self._db_call(self._require().page_token_key)
            after = None
            if request.page_token:
                try:
                    fields = page_token.decode_fields(key, request.page_token, bound_to)
                    after = expense_store.ExpensePosition(str(fields["d"]), str(fields["i"]))
                except (page_token.PageTokenError, KeyError) as error:
                    raise invalid_argument(str(error)) from None
            found = await self._db(expense_store.list_expenses, owner, flt, after, size + 1)
            response = epb.ListExpensesResponse(expenses=[expense_message(e, raw_text=False) for e in found[:size]])
            if len(found) > size:
                last = found[size - 1]
                day = last.reading.date.isoformat() if last.reading.date else ""
                response.next_page_token = page_token.encode_fields(key, {"d": day, "i": last.expense_id}, bound_to)
            return response

        return await serve(context, work)

    async def GetExpense(self, request: epb.GetExpenseRequest, context: Context) -> epb.Expense:
        """One expense."""

        async def work() -> epb.Expense:
            decoded(request)
            owner = self._owner()
            expense = await self._db(expense_store.get, _expense_id(request.name), owner)
            if expense is None:
                raise _not_found(request.name)
            return expense_message(expense)

        return await serve(context, work)

    async def UpdateExpense(self, request: epb.UpdateExpenseRequest, context: Context) -> epb.Expense:
        """Correct the fields named by the mask."""

        async def work() -> epb.Expense:
            decoded(request)
            owner = self._owner()
            expense_id = _expense_id(request.expense.name)
            current = await self._db(expense_store.get, expense_id, owner)
            if current is None:
                raise _not_found(request.expense.name)
            paths = list(dict.fromkeys(request.update_mask.paths))
            values = corrections(request.expense, paths, current.reading.currency)
            updated = await self._db(expense_store.update_fields, expense_id, owner, values, paths)
            if updated is None:
                raise _not_found(request.expense.name)
            return expense_message(updated)

        return await serve(context, work)

    async def DeleteExpense(self, request: epb.DeleteExpenseRequest, context: Context) -> Empty:
        """Delete an expense and its photo."""

        async def work() -> Empty:
            decoded(request)
            owner = self._owner()
            if not await self._db(expense_store.delete_expense, _expense_id(request.name), owner):
                raise _not_found(request.name)
            log.info("expense %s deleted by caller=%s", _expense_id(request.name), owner)
            return Empty()

        return await serve(context, work)

    async def GetReceiptImage(
        self, request: epb.GetReceiptImageRequest, context: Context
    ) -> AsyncIterator[epb.ReceiptImageChunk]:
        """The photo, in chunks."""

        async def work() -> list[epb.ReceiptImageChunk]:
            decoded(request)
            owner = self._owner()
            image = await self._db(expense_store.image, _expense_id(request.name), owner)
            if image is None:
                raise ServiceError(
                    grpc.StatusCode.NOT_FOUND,
                    f"no receipt photo for {request.name}: no such expense for this caller, or its photo was "
                    "deleted after the retention period",
                )
            pieces = [image.data[i : i + CHUNK_BYTES] for i in range(0, len(image.data), CHUNK_BYTES)]
            return [
                epb.ReceiptImageChunk(media_type=image.media_type if i == 0 else "", data=piece)
                for i, piece in enumerate(pieces)
            ]

        for chunk in await serve(context, work):
            yield chunk

    async def ExportReport(
        self, request: epb.ExportReportRequest, context: Context
    ) -> AsyncIterator[epb.ExportReportResponse]:
        """A trip's report and its file, in chunks."""

        async def work() -> list[epb.ExportReportResponse]:
            decoded(request)
            owner = self._owner()
            fmt = _REPORT_FORMATS.get(request.format)
            if fmt is None:
                raise invalid_argument("format: use REPORT_FORMAT_CSV, REPORT_FORMAT_XLSX or REPORT_FORMAT_PDF")
            date_from = parse_date("date_from", request.date_from)
            date_to = parse_date("date_to", request.date_to)
            if not request.trip and (date_from is None or date_to is None):
                raise invalid_argument("a report needs date_from and date_to (ISO 8601 days), or a trip name")
            if date_from and date_to and date_from > date_to:
                raise invalid_argument(f"date_from ({date_from}) is after date_to ({date_to})")
            currency = parse_currency("report_currency_code", request.report_currency_code)
            engine = self._require().engine
            report = await self._db_call(
                lambda: self._reports.make(
                    engine, owner, trip=request.trip, date_from=date_from, date_to=date_to, currency=currency
                )
            )
            try:
                rendered = await self._db_call(lambda: self._reports.render(engine, owner, report, fmt))
            except ServiceError:
                raise
            except Exception:
                log.exception("rendering a %s expense report failed", fmt)
                raise ServiceError(
                    grpc.StatusCode.INTERNAL, f"rendering the {fmt} report failed inside the server; report it"
                ) from None
            content = rendered.content
            span = f"{report.date_from or 'undated'}-{report.date_to or 'undated'}"
            header = epb.ExportReportResponse(
                report=report_message(report),
                media_type=rendered.media_type,
                file_name=f"expenses-{span}.{rendered.extension}",
            )
            pieces = [content[i : i + CHUNK_BYTES] for i in range(0, len(content), CHUNK_BYTES)]
            return [header] + [epb.ExportReportResponse(content=piece) for piece in pieces]

        for message in await serve(context, work):
            yield message

    # -- helpers -----------------------------------------------------------------------

    def _require(self) -> MeetingRecord:
        if self._record is None:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this server keeps no expenses (it runs with --store none)",
            )
        return self._record

    def _owner(self) -> str:
        caller = current_caller()
        if not caller.allows(Scope.EXPENSES):
            raise ServiceError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {caller.id} lacks the '{Scope.EXPENSES.value}' scope that expenses need; "
                "ask for a credential that grants it",
            )
        self._require()
        return caller.id

    async def _db(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        engine = self._require().engine
        return await self._db_call(lambda: query(engine, *args, **kwargs))

    @staticmethod
    async def _db_call(call: Callable[[], T]) -> T:
        return await in_store(call, "expense store", "Expenses")


async def _receive(requests: AsyncIterator[Any]) -> tuple[epb.ScanReceiptConfig, bytes]:
    """The config and the file's bytes of a ScanReceipt stream, checked as they come."""
    config: epb.ScanReceiptConfig | None = None
    data = bytearray()
    index = 0
    async for message in requests:
        index += 1
        if isinstance(message, Undecodable):
            raise message.error(f"message {index}")
        kind = message.WhichOneof("request")
        if index == 1:
            if kind != "config":
                raise invalid_argument("the first ScanReceiptRequest must carry the config (then the image chunks)")
            config = message.config
            continue
        if kind != "image_chunk":
            raise invalid_argument(f"message {index} carries a second config; after the first, send image_chunk only")
        data += message.image_chunk
        if len(data) > images.MAX_RECEIPT_BYTES:
            raise invalid_argument(
                f"the receipt is over {images.MAX_RECEIPT_BYTES // 1048576} MiB; photograph it again at a lower "
                "resolution, or send it as JPEG"
            )
    if config is None:
        raise invalid_argument("the stream was empty: send a ScanReceiptRequest with the config, then the image")
    return config, bytes(data)


def _expense_id(name: str) -> str:
    expense_id = name.removeprefix(NAME_PREFIX)
    if not name.startswith(NAME_PREFIX) or not _ID.match(expense_id):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise invalid_argument(
            f"name is {shown!r}; expected expenses/{{expense_id}} as ScanReceipt returned it, "
            "e.g. expenses/e20261203-101500-3f9a2c1b4d"
        )
    return expense_id


def _not_found(name: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, f"no expense {name} for this caller")


def _filter(request: epb.ListExpensesRequest) -> expense_store.ExpenseFilter:
    date_from = parse_date("date_from", request.date_from)
    date_to = parse_date("date_to", request.date_to)
    if date_from and date_to and date_from > date_to:
        raise invalid_argument(f"date_from ({date_from}) is after date_to ({date_to})")
    category = next((c.value for c, v in CATEGORIES.items() if v == request.category), "")
    if request.category and not category:
        raise invalid_argument(f"category {request.category} is not an ExpenseCategory")
    return expense_store.ExpenseFilter(
        date_from, date_to, request.trip, parse_currency("currency_code", request.currency_code), category
    )
