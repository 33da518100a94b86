"""The Expenses service end to end: photographed receipts over gRPC, read by Tesseract, kept, corrected, reported.

OCR is CPU-heavy, so the module scans six receipts once (Korean and English,
several layouts and date formats, photographed as a phone would) on one
server and every test reads what they became; the 40-receipt accuracy set is
the bench's (``make bench``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import openpyxl
import pytest
from PIL import Image
from pypdf import PdfReader

from tests.conftest import running_server
from tests.support.receipts import Receipt, make_receipt
from tests.support.records import meeting_ops
from tongyeok_client import InterpreterClient, TongyeokError, cli
from tongyeok_client.proto import expenses_pb2 as epb
from tongyeok_client.proto import expenses_pb2_grpc as epb_grpc
from tongyeok_server.app import TongyeokServer
from tongyeok_server.errors import StartError
from tongyeok_server.store import ops
from tongyeok_server.store.database import write

# Seeds whose receipts cover ko-card, ko-pos, ko-simple, en-us, en-uk and en-eu layouts; 28 is a small
# "2026년 12월 5일" that only a second reading of its line gets right.
SEEDS = (0, 2, 6, 28, 5, 7, 9)
RATES = "# 1 BASE = RATE QUOTE\nUSD KRW 1400\nEUR KRW 1500\nGBP KRW 1750\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TongyeokServer]:
    rates = tmp_path_factory.mktemp("rates") / "rates.txt"
    rates.write_text(RATES)
    with running_server(receipt_engine="tesseract", expense_rates=str(rates), receipt_threads=2) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: TongyeokServer) -> Iterator[InterpreterClient]:
    with InterpreterClient(f"127.0.0.1:{server.port}") as c:
        yield c


@pytest.fixture(scope="module")
def receipts() -> dict[int, Receipt]:
    return {seed: make_receipt(seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def scanned(client: InterpreterClient, receipts: dict[int, Receipt]) -> dict[int, epb.Expense]:
    return {seed: client.expenses.scan(r.jpeg(seed=seed), trip="Seoul 2026") for seed, r in receipts.items()}


def test_layouts_cover_both_languages_and_several_formats(receipts: dict[int, Receipt]) -> None:
    layouts = {r.layout for r in receipts.values()}
    assert {"ko-card", "ko-pos", "ko-simple"} <= layouts
    assert {"en-us", "en-uk", "en-eu"} <= layouts


@pytest.mark.parametrize("seed", SEEDS)
def test_each_field_is_read(seed: int, scanned: dict[int, epb.Expense], receipts: dict[int, Receipt]) -> None:
    truth, expense = receipts[seed], scanned[seed]
    assert expense.total == str(truth.total)
    assert expense.date == truth.date.isoformat()
    assert expense.currency_code == truth.currency
    assert expense.merchant.replace(" ", "").lower() == truth.merchant.replace(" ", "").lower()
    if truth.tax is not None:
        assert expense.tax == str(truth.tax)
        assert expense.subtotal == str(truth.subtotal)
    assert [Decimal(i.amount) for i in expense.line_items] == [i.amount for i in truth.items]
    expected_payment = epb.PAYMENT_METHOD_CARD if truth.payment == "card" else epb.PAYMENT_METHOD_CASH
    assert expense.payment_method == expected_payment
    assert epb.ExpenseCategory.Name(expense.category) == f"EXPENSE_CATEGORY_{truth.category.upper()}"
    assert expense.language_code == truth.language
    for field in ("merchant", "date", "total", "currency_code"):
        assert 0 < expense.field_confidence[field] <= 1
    assert expense.engine.name == "tesseract" and "kor+eng" in expense.engine.detail
    assert str(truth.total).split(".")[0][:2] in expense.raw_text.replace(",", "")
    assert expense.image_kept and expense.image_media_type == "image/jpeg"
    assert expense.trip == "Seoul 2026"


def test_the_photo_comes_back_as_sent(
    client: InterpreterClient, scanned: dict[int, epb.Expense], receipts: dict[int, Receipt]
) -> None:
    data, media_type = client.expenses.image(scanned[0].expense_id)
    assert data == receipts[0].jpeg(seed=0)
    assert media_type == "image/jpeg"


def test_list_pages_and_filters(client: InterpreterClient, scanned: dict[int, epb.Expense]) -> None:
    ids = {e.expense_id for e in scanned.values()}
    listed = list(client.expenses.list(page_size=2, trip="Seoul 2026"))
    assert {e.expense_id for e in listed} == ids
    dates = [e.date for e in listed]
    assert dates == sorted(dates, reverse=True)
    assert all(not e.raw_text for e in listed)
    krw = list(client.expenses.list(currency="KRW"))
    assert {e.expense_id for e in krw} == {e.expense_id for e in scanned.values() if e.currency_code == "KRW"}
    first = scanned[0]
    only_day = list(client.expenses.list(date_from=first.date, date_to=first.date))
    assert first.expense_id in {e.expense_id for e in only_day}
    assert all(e.date == first.date for e in only_day)


def test_a_page_token_is_bound_to_its_filter(server: TongyeokServer, scanned: dict[int, epb.Expense]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = epb_grpc.ExpensesStub(channel)  # type: ignore[no-untyped-call]
        page = stub.ListExpenses(epb.ListExpensesRequest(page_size=1, trip="Seoul 2026"))
        assert page.next_page_token
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListExpenses(epb.ListExpensesRequest(page_size=1, page_token=page.next_page_token, trip="other"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "other filters" in str(refused.value.details())


def test_correct_a_field_with_a_mask(client: InterpreterClient, scanned: dict[int, epb.Expense]) -> None:
    expense = scanned[5]
    corrected = client.expenses.correct(expense.expense_id, merchant="Hotel Adlon Kempinski", category="lodging")
    assert corrected.merchant == "Hotel Adlon Kempinski"
    assert corrected.category == epb.EXPENSE_CATEGORY_LODGING
    assert corrected.field_confidence["merchant"] == 1.0
    assert list(corrected.corrected_fields) == ["merchant", "category"]
    assert corrected.total == expense.total  # untouched
    assert client.expenses.get(expense.expense_id).merchant == "Hotel Adlon Kempinski"
    with pytest.raises(TongyeokError) as bad:
        client.expenses.correct(expense.expense_id, total="12,50")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "decimal number" in bad.value.details


def test_an_update_needs_a_mask_of_known_fields(server: TongyeokServer, scanned: dict[int, epb.Expense]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = epb_grpc.ExpensesStub(channel)  # type: ignore[no-untyped-call]
        request = epb.UpdateExpenseRequest(expense=epb.Expense(name=scanned[0].name, raw_text="x"))
        with pytest.raises(grpc.RpcError) as empty:
            stub.UpdateExpense(request)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "update_mask is empty" in str(empty.value.details())
        request.update_mask.paths.append("raw_text")
        with pytest.raises(grpc.RpcError) as unknown:
            stub.UpdateExpense(request)
        assert "cannot be corrected" in str(unknown.value.details())


def test_report_csv_xlsx_pdf(
    server: TongyeokServer, client: InterpreterClient, scanned: dict[int, epb.Expense], tmp_path: Path
) -> None:
    dates = sorted(e.date for e in scanned.values())
    # The trip's meetings come from the meeting record: one of this caller's during the trip, one before
    # it, and one of another caller during it.
    during = datetime.combine(date.fromisoformat(dates[0]), time(9), UTC)
    assert server.record is not None
    with write(server.record.engine) as conn:
        ops.apply(
            conn,
            meeting_ops("s-trip-meeting", started_at=during, sources=("en-US", "ko-KR"), targets=("ko-KR", "en-US")),
        )
        ops.apply(conn, meeting_ops("s-before-trip", started_at=during - timedelta(days=400)))
        ops.apply(conn, meeting_ops("s-someone-else", caller="key:other", started_at=during))
    kw = {"date_from": dates[0], "date_to": dates[-1], "currency": "KRW"}
    rates = {"KRW": Decimal(1), "USD": Decimal(1400), "EUR": Decimal(1500), "GBP": Decimal(1750)}
    expected_total = sum(Decimal(e.total) * rates[e.currency_code] for e in scanned.values())

    csv_report = client.expenses.export_report(format="csv", **kw)
    assert csv_report.media_type == "text/csv" and csv_report.file_name.endswith(".csv")
    rows = list(csv.reader(io.StringIO(csv_report.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["date", "merchant", "category", "total", "currency"]
    body = [r for r in rows[1:] if r and r[0] != "total"]
    assert {r[10] for r in body} == {e.expense_id for e in scanned.values()}
    assert any("강남" in r[1] or "소담" in r[1] or "역삼" in r[1] for r in body)  # Hangul survives

    report = csv_report.report
    assert report.converted_total.currency_code == "KRW"
    assert Decimal(report.converted_total.amount) == expected_total
    assert {m.currency_code for m in report.totals} == {e.currency_code for e in scanned.values()}
    assert report.rates["USD"] == "1400"
    day_sum = sum(Decimal(d.converted_total.amount) for d in report.days)
    assert day_sum == expected_total
    assert [m.session for m in report.meetings] == ["sessions/s-trip-meeting"]
    assert report.meetings[0].utterance_count == 3 and report.meetings[0].duration_seconds == 300

    xlsx = client.expenses.export_report(format="xlsx", **kw)
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["Expenses", "By day", "Totals", "Meetings"]
    sheet = book["Expenses"]
    assert sheet.max_row == 1 + len(scanned)
    totals = {row[0]: row for row in book["Totals"].iter_rows(min_row=2, values_only=True)}
    assert Decimal(str(totals["all"][3])) == expected_total
    meetings = list(book["Meetings"].iter_rows(min_row=2, values_only=True))
    assert [row[0] for row in meetings] == ["s-trip-meeting"] and meetings[0][3] == "en-US+ko-KR → ko-KR, en-US"

    pdf = client.expenses.export_report(format="pdf", **kw)
    reader = PdfReader(io.BytesIO(pdf.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Expense report" in text and "Totals" in text and "s-trip-meeting" in text
    assert len(reader.pages) >= 1 + len(scanned)  # a page per receipt photo
    photos = [img for page in reader.pages for img in page.images]
    assert len(photos) == len(scanned)
    assert Image.open(io.BytesIO(photos[0].data)).width > 300


def test_report_refuses_a_currency_without_a_rate(client: InterpreterClient, scanned: dict[int, epb.Expense]) -> None:
    with pytest.raises(TongyeokError) as refused:
        client.expenses.export_report(format="csv", trip="Seoul 2026", currency="JPY")
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "no exchange rate" in refused.value.details and "JPY" in refused.value.details


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"hello, this is not a picture" * 10, "not an image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 500, "cannot be decoded"),
    ],
)
def test_bad_input_gets_a_clear_status_and_nothing_is_kept(
    client: InterpreterClient, scanned: dict[int, epb.Expense], data: bytes, needle: str
) -> None:
    before = len(list(client.expenses.list()))
    with pytest.raises(TongyeokError) as refused:
        client.expenses.scan(data)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in refused.value.details
    assert len(list(client.expenses.list())) == before


def test_a_picture_without_text_is_unreadable(client: InterpreterClient) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (600, 800), (240, 240, 235)).save(blank, "PNG")
    with pytest.raises(TongyeokError) as refused:
        client.expenses.scan(blank.getvalue())
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "no text could be read" in refused.value.details


def test_too_large_is_refused_before_reading(server: TongyeokServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = epb_grpc.ExpensesStub(channel)  # type: ignore[no-untyped-call]
        chunk = b"\xff\xd8\xff" + b"\x00" * ((1 << 20) - 8)

        def requests() -> Iterator[epb.ScanReceiptRequest]:
            yield epb.ScanReceiptRequest(config=epb.ScanReceiptConfig())
            for _ in range(17):
                yield epb.ScanReceiptRequest(image_chunk=chunk)

        with pytest.raises(grpc.RpcError) as refused:
            stub.ScanReceipt(requests(), timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "16 MiB" in str(refused.value.details())


def test_a_retried_scan_keeps_one_expense_and_validate_only_keeps_none(
    client: InterpreterClient, receipts: dict[int, Receipt]
) -> None:
    photo = receipts[2].jpeg(seed=102)
    preview = client.expenses.scan(photo, validate_only=True)
    assert preview.total == str(receipts[2].total) and not preview.expense_id
    first = client.expenses.scan(photo, request_id="scan-1")
    again = client.expenses.scan(photo, request_id="scan-1")
    assert again.expense_id == first.expense_id
    client.expenses.delete(first.expense_id)
    with pytest.raises(TongyeokError) as gone:
        client.expenses.get(first.expense_id)
    assert gone.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(TongyeokError) as no_photo:
        client.expenses.image(first.expense_id)
    assert no_photo.value.code == grpc.StatusCode.NOT_FOUND


def test_names_are_checked(client: InterpreterClient) -> None:
    with pytest.raises(TongyeokError) as bad:
        client.expenses.get("expenses/../../etc")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(TongyeokError) as missing:
        client.expenses.get("e20260101-000000-0000000000")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND


def run_cli(capsys: pytest.CaptureFixture[str], server: TongyeokServer, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*argv, "--server", f"127.0.0.1:{server.port}"])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_from_photo_to_report(
    capsys: pytest.CaptureFixture[str], server: TongyeokServer, receipts: dict[int, Receipt], tmp_path: Path
) -> None:
    photo = tmp_path / "receipt.jpg"
    photo.write_bytes(receipts[9].jpeg(seed=209))
    code, out, _ = run_cli(capsys, server, "expenses", "scan", str(photo), "--trip", "cli trip", "--json")
    assert code == 0
    scanned = json.loads(out)
    truth = receipts[9]
    assert (scanned["merchant"].lower(), scanned["date"], scanned["total"], scanned["currency"]) == (
        truth.merchant.lower(),
        truth.date.isoformat(),
        str(truth.total),
        truth.currency,
    )
    code, out, _ = run_cli(capsys, server, "expenses", "correct", scanned["id"], "category=transport", "note=taxi")
    assert code == 0 and "transport" in out
    code, out, _ = run_cli(capsys, server, "expenses", "list", "--trip", "cli trip")
    assert code == 0 and scanned["id"] in out and "transport" in out
    target = tmp_path / "trip.xlsx"
    code, _, err = run_cli(
        capsys,
        server,
        "expenses",
        "report",
        "--trip",
        "cli trip",
        "--currency",
        "KRW",
        "--format",
        "xlsx",
        "-o",
        str(target),
    )
    assert code == 0 and "wrote" in err
    sheet = openpyxl.load_workbook(target)["Expenses"]
    assert [c.value for c in sheet[2]][1].lower() == truth.merchant.lower()
    code, out, _ = run_cli(capsys, server, "expenses", "delete", scanned["id"])
    assert code == 0
    code, _, err = run_cli(capsys, server, "expenses", "show", scanned["id"])
    assert code == 1 and "NOT_FOUND" in err
    code, _, err = run_cli(capsys, server, "expenses", "scan", str(tmp_path / "missing.jpg"))
    assert code == 2 and "cannot read" in err


def test_scope_owner_and_scans_per_minute(server_factory, tmp_path: Path, receipts: dict[int, Receipt]) -> None:
    from tongyeok_server.auth.api_keys import hash_key, new_key

    keys = {name: new_key() for name in ("alice", "bob", "meetings")}
    lines = [
        f"alice {hash_key(keys['alice'])} expenses scans_per_minute=1",
        f"bob {hash_key(keys['bob'])} expenses",
        f"meetings {hash_key(keys['meetings'])} interpret,transcripts",
    ]
    (tmp_path / "keys").write_text("\n".join(lines) + "\n")
    server = server_factory(api_keys=str(tmp_path / "keys"), receipt_engine="tesseract")
    target = f"127.0.0.1:{server.port}"
    photo = receipts[6].jpeg(seed=306)
    with (
        InterpreterClient(target, token=keys["alice"]) as alice,
        InterpreterClient(target, token=keys["bob"]) as bob,
        InterpreterClient(target, token=keys["meetings"]) as meetings,
    ):
        mine = alice.expenses.scan(photo)
        assert mine.caller_id == "key:alice"
        with pytest.raises(TongyeokError) as over:
            alice.expenses.scan(photo)
        assert over.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "scans per minute" in over.value.details
        assert list(bob.expenses.list()) == []
        with pytest.raises(TongyeokError) as foreign:
            bob.expenses.get(mine.expense_id)
        assert foreign.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(TongyeokError) as denied:
            list(meetings.expenses.list())
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED and "expenses" in denied.value.details


def test_rapidocr_reads_latin_receipts(receipts: dict[int, Receipt]) -> None:
    # The second engine (PP-OCR in the rapidocr wheel: Latin, no Hangul), which the default `embedded`
    # reader asks when Tesseract was unsure of a Latin receipt's total.
    from tongyeok_server.expenses.model import ReceiptImage
    from tongyeok_server.expenses.ocr.rapidocr_engine import RapidOcrEngine
    from tongyeok_server.expenses.readers.embedded import EmbeddedReader

    reader = EmbeddedReader("rapidocr", RapidOcrEngine, threads=1)
    try:
        truth = receipts[5]
        got = reader.read_blocking(ReceiptImage(truth.jpeg(seed=5), "image/jpeg"))
    finally:
        reader.close()
    assert (got.total, got.date, got.currency) == (truth.total, truth.date, truth.currency)
    assert got.merchant.lower() == truth.merchant.lower()
    assert got.engine == "rapidocr"


def test_an_engine_that_cannot_start_is_failed_precondition() -> None:
    from tongyeok_server.errors import ServiceError
    from tongyeok_server.expenses.model import ReceiptImage
    from tongyeok_server.expenses.readers.embedded import EmbeddedReader

    def missing() -> Any:
        raise StartError("Tesseract has no data for kor: apt-get install tesseract-ocr-kor")

    reader = EmbeddedReader("tesseract", missing, threads=1)
    photo = io.BytesIO()
    Image.new("RGB", (50, 50)).save(photo, "PNG")
    with pytest.raises(ServiceError) as refused:
        reader.read_blocking(ReceiptImage(photo.getvalue(), "image/png"))
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "tesseract-ocr-kor" in refused.value.message
    reader.close()
