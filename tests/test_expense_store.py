"""Expenses in the record's database, on SQLite and a real PostgreSQL: atomic scans, paging, owners, retention."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.support.records import BACKENDS, open_record, store_url
from tongyeok_server.expenses import store
from tongyeok_server.expenses.model import Category, LineItem, Payment, ReceiptImage, ReceiptReading
from tongyeok_server.expenses.report.build import build
from tongyeok_server.store import schema

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PHOTO = ReceiptImage(b"\xff\xd8\xff" + b"photo" * 100, "image/jpeg")


def reading(day: int, total: str, currency: str = "KRW", category: Category = Category.MEALS) -> ReceiptReading:
    return ReceiptReading(
        merchant=f"가게 {day}",
        date=date(2026, 11, day),
        total=Decimal(total),
        currency=currency,
        tax=Decimal(1000),
        line_items=(LineItem("아메리카노", Decimal(4500), Decimal(2)),),
        payment=Payment.CARD,
        category=category,
        confidence={"total": 0.9},
        raw_text="합계 14,000",
        engine="tesseract",
    )


@pytest.fixture(params=BACKENDS)
def record(request):
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    with store_url(request.param, postgres) as url, open_record(url, retention_days=30) as rec:
        yield rec


def test_an_expense_and_its_photo_read_back(record) -> None:
    kept = store.insert(record.engine, "e1", "key:a", reading(3, "14000"), PHOTO, trip="Seoul", now=NOW)
    assert kept.reading.total == Decimal(14000) and kept.reading.date == date(2026, 11, 3)
    assert kept.reading.line_items == (LineItem("아메리카노", Decimal(4500), Decimal(2)),)
    assert kept.image_kept and kept.image_bytes == len(PHOTO.data) and kept.trip == "Seoul"
    assert store.image(record.engine, "e1", "key:a") == PHOTO
    assert store.get(record.engine, "e1", "key:b") is None  # another caller's is invisible
    assert store.image(record.engine, "e1", "key:b") is None


def test_nothing_is_half_stored(record) -> None:
    store.insert(record.engine, "e1", "key:a", reading(3, "14000"), PHOTO, now=NOW)
    with pytest.raises(Exception):  # noqa: B017 - the driver's own IntegrityError
        store.insert(record.engine, "e1", "key:a", reading(4, "1"), PHOTO, now=NOW)  # same id: the insert fails
    with record.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.expenses)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(schema.receipt_images)).scalar() == 1


def test_a_repeated_request_id_returns_the_first_expense(record) -> None:
    first = store.insert(record.engine, "e1", "key:a", reading(3, "14000"), PHOTO, request_id="r1", now=NOW)
    again = store.insert(record.engine, "e2", "key:a", reading(3, "14000"), PHOTO, request_id="r1", now=NOW)
    other = store.insert(record.engine, "e3", "key:b", reading(3, "14000"), PHOTO, request_id="r1", now=NOW)
    assert again.expense_id == first.expense_id == "e1" and other.expense_id == "e3"


def test_pages_are_newest_date_first_with_undated_last(record) -> None:
    for i, day in enumerate((5, 1, 9, 5)):
        store.insert(record.engine, f"e{i}", "key:a", reading(day, "100"), PHOTO, now=NOW)
    store.insert(record.engine, "ex", "key:a", ReceiptReading(merchant="?"), PHOTO, now=NOW)
    seen, after = [], None
    while True:
        page = store.list_expenses(record.engine, "key:a", store.ExpenseFilter(), after, 2)
        seen += [e.expense_id for e in page]
        if len(page) < 2:
            break
        last = page[-1]
        after = store.ExpensePosition(last.reading.date.isoformat() if last.reading.date else "", last.expense_id)
    assert seen == ["e2", "e3", "e0", "e1", "ex"]
    flt = store.ExpenseFilter(date_from=date(2026, 11, 2), date_to=date(2026, 11, 5))
    assert {e.expense_id for e in store.list_expenses(record.engine, "key:a", flt, None, 10)} == {"e0", "e3"}


def test_corrections_mark_fields_and_deletion_cascades(record) -> None:
    store.insert(record.engine, "e1", "key:a", reading(3, "14000"), PHOTO, now=NOW)
    updated = store.update_fields(record.engine, "e1", "key:a", {"total": "15000"}, ["total"])
    assert updated is not None and updated.reading.total == Decimal(15000)
    assert updated.corrected == ("total",) and updated.reading.confidence["total"] == 1.0
    assert store.update_fields(record.engine, "e1", "key:b", {"total": "1"}, ["total"]) is None
    assert not store.delete_expense(record.engine, "e1", "key:b")
    assert store.delete_expense(record.engine, "e1", "key:a")
    with record.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.receipt_images)).scalar() == 0


def test_photos_follow_the_retention_period_and_expenses_stay(record) -> None:
    store.insert(record.engine, "old", "key:a", reading(3, "14000"), PHOTO, now=NOW - timedelta(days=40))
    store.insert(record.engine, "new", "key:a", reading(4, "14000"), PHOTO, now=NOW)
    assert store.purge_images(record.engine, NOW - timedelta(days=30)) == 1
    old = store.get(record.engine, "old", "key:a")
    assert old is not None and not old.image_kept and old.reading.total == Decimal(14000)
    assert store.image(record.engine, "new", "key:a") == PHOTO


def test_the_record_purge_runs_the_expense_purge(record) -> None:
    calls = []

    def purge(now):
        calls.append(now)
        return 0

    record.add_purge(purge)
    record.purge_expired(NOW)
    assert calls == [NOW]


def test_report_totals_per_currency_and_converted() -> None:
    def expense(i: int, r: ReceiptReading):
        from tongyeok_server.expenses.model import Expense

        return Expense(f"e{i}", "key:a", NOW, NOW, r)

    expenses = [
        expense(1, reading(3, "14000")),
        expense(2, reading(3, "12.50", "USD", Category.TRANSPORT)),
        expense(3, reading(4, "100.00", "EUR", Category.LODGING)),
        expense(4, ReceiptReading(merchant="no total")),
    ]
    rates = {("USD", "KRW"): Decimal(1400), ("KRW", "EUR"): Decimal("0.0006666")}
    report = build(expenses, trip="", date_from=None, date_to=None, currency="USD", rates=rates, meetings=[])
    assert report.totals == {"EUR": Decimal("100.00"), "KRW": Decimal(14000), "USD": Decimal("12.50")}
    assert report.rates["USD"] == 1 and report.rates["KRW"] == Decimal(1) / Decimal(1400)
    # EUR -> USD goes through KRW: 1 EUR = 1/0.0006666 KRW = that / 1400 USD.
    assert report.converted(expenses[2]) == (Decimal(100) / Decimal("0.0006666") / Decimal(1400)).quantize(
        Decimal("0.01")
    )
    assert [e.expense_id for e in report.incomplete] == ["e4"]
    assert report.date_from == date(2026, 11, 3) and report.date_to == date(2026, 11, 4)
    assert report.converted_total == sum(report.converted_by_category.values())
    assert set(report.days[date(2026, 11, 3)]) == {(Category.MEALS, "KRW"), (Category.TRANSPORT, "USD")}


def test_report_files_never_turn_text_into_formulas() -> None:
    import csv
    import io

    import openpyxl

    from tongyeok_server.expenses.model import Expense
    from tongyeok_server.expenses.report import files

    hostile = ReceiptReading(
        merchant='=HYPERLINK("http://x.invalid","pay")', date=date(2026, 11, 3), total=Decimal(1), currency="KRW"
    )
    report = build(
        [Expense("e1", "key:a", NOW, NOW, hostile)],
        trip="",
        date_from=None,
        date_to=None,
        currency="",
        rates={},
        meetings=[],
    )
    rows = list(csv.reader(io.StringIO(files.csv_file(report).content.decode("utf-8-sig"))))
    assert rows[1][1] == "'" + hostile.merchant
    cell = openpyxl.load_workbook(io.BytesIO(files.xlsx_file(report).content))["Expenses"]["B2"]
    assert cell.value == hostile.merchant and cell.data_type == "s"


def test_report_pdf_prints_markup_as_text() -> None:
    import io

    from pypdf import PdfReader

    from tongyeok_server.expenses.model import Expense
    from tongyeok_server.expenses.report import files

    odd = ReceiptReading(
        merchant="<b>Bar & Grill</b> <unclosed", date=date(2026, 11, 3), total=Decimal(1), currency="KRW"
    )
    report = build(
        [Expense("e1", "key:a", NOW, NOW, odd)],
        trip="<trip>",
        date_from=None,
        date_to=None,
        currency="",
        rates={},
        meetings=[],
    )
    pdf = files.pdf_file(report, lambda _e: None)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "<b>Bar & Grill</b> <unclosed" in text and "<trip>" in text
