"""The field extractor on receipt text (no OCR): Korean and English labels, dates, numbers, evidence for the total."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tongyeok_server.expenses.extract import extract
from tongyeok_server.expenses.extract.amounts import parse_number
from tongyeok_server.expenses.extract.dates import find_date
from tongyeok_server.expenses.model import Category, Payment
from tongyeok_server.expenses.ocr.base import OcrLine


def lines(text: str, big: int = 0) -> list[OcrLine]:
    """OCR lines for ``text``, line ``big`` printed larger (the merchant)."""
    return [
        OcrLine(t, 0.9, i * 30, 40 if i == big else 24)
        for i, t in enumerate(row for row in text.splitlines() if row.strip())
    ]


KOREAN = """
본죽 역삼점
사업자번호 318-28-61337
서울특별시 강남구 테헤란로 84
TEL 02-334-4073
2026년 11월 3일
상품명 수량 금액
불고기 정식 1 12,000
아메리카노 2 9,000
공급가액 19,091
부가세 1,909
받을금액 21,000원
신용카드 (국민카드) 21,000
카드번호 7887-****-****-6153
"""


def test_a_korean_receipt() -> None:
    r = extract(lines(KOREAN))
    assert (r.merchant, r.date, r.total, r.currency) == ("본죽 역삼점", date(2026, 11, 3), Decimal(21000), "KRW")
    assert (r.tax, r.subtotal) == (Decimal(1909), Decimal(19091))
    assert [(i.description, i.quantity, i.amount) for i in r.line_items] == [
        ("불고기 정식", Decimal(1), Decimal(12000)),
        ("아메리카노", Decimal(2), Decimal(9000)),
    ]
    assert r.payment is Payment.CARD and r.category is Category.MEALS and r.language == "ko"
    assert r.confidence["total"] > 0.8


def test_a_misread_total_is_outvoted_by_the_card_line_and_the_tax_breakdown() -> None:
    r = extract(lines(KOREAN.replace("받을금액 21,000원", "총 결제금액 27,000원")))
    assert r.total == Decimal(21000)


def test_won_sign_read_as_w_and_points_for_commas() -> None:
    text = "스타벅스 강남점\n2026/02/03 12:08:33\n카페라떼 2 10.000\n합계금액 W10.000\n"
    r = extract(lines(text))
    assert (r.total, r.currency, r.date) == (Decimal(10000), "KRW", date(2026, 2, 3))


EUROPEAN = """
CAFE CENTRAL
774 Friedrichstr.
12.05.2026 20:15
1 Club Sandwich 11,90
1 Bagel 3,25
Subtotal 12,73
VAT 19% 2,42
Total Due 15,15 €
Cash 20,00
Change 4,85
"""


def test_a_european_receipt_cash_is_not_the_total() -> None:
    r = extract(lines(EUROPEAN))
    assert (r.merchant, r.date, r.total, r.currency) == ("CAFE CENTRAL", date(2026, 5, 12), Decimal("15.15"), "EUR")
    assert (r.tax, r.subtotal) == (Decimal("2.42"), Decimal("12.73"))  # 19 % is a rate, not the tax
    assert r.payment is Payment.CASH


US = """
Blue Bottle Coffee
123 Market St
Tel (415) 555-0100
11/03/2026 2:22 PM
2 Latte 9.00
Subtotal 9.00
Sales Tax 0.79
Amount Due $9.79
VISA **** 1234 9.79
"""


def test_a_us_receipt_month_first() -> None:
    r = extract(lines(US))
    assert (r.merchant, r.date, r.total, r.currency) == (
        "Blue Bottle Coffee",
        date(2026, 11, 3),
        Decimal("9.79"),
        "USD",
    )
    assert r.payment is Payment.CARD and r.category is Category.MEALS


def test_a_lost_decimal_point_in_the_tax_is_repaired_from_the_others() -> None:
    r = extract(lines(US.replace("Sales Tax 0.79", "Sales Tax 079")))
    assert r.tax == Decimal("0.79")


@pytest.mark.parametrize(
    ("text", "month_first", "expected"),
    [
        ("2026년 11월 3일", False, date(2026, 11, 3)),
        ("2026.11.03 (화) 19:23", False, date(2026, 11, 3)),
        ("2026-11-03 14:13", True, date(2026, 11, 3)),
        ("03.11.2026 20:04", True, date(2026, 11, 3)),
        ("03/11/2026 12:04", False, date(2026, 11, 3)),
        ("11/03/2026 2:13 PM", True, date(2026, 11, 3)),
        ("25/11/2026", True, date(2026, 11, 25)),
        ("Nov 3, 2026", False, date(2026, 11, 3)),
        ("3 November 2026", True, date(2026, 11, 3)),
        ("2026-02-30", False, None),
    ],
)
def test_dates(text: str, month_first: bool, expected: date | None) -> None:
    found = find_date(text, month_first)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    ("raw", "minor", "expected"),
    [
        ("14,000", 0, Decimal(14000)),
        ("33.636", 0, Decimal(33636)),
        ("1,234.50", 2, Decimal("1234.50")),
        ("1.234,50", 2, Decimal("1234.50")),
        ("43,64", 2, Decimal("43.64")),
        ("1,234", 2, Decimal(1234)),
        ("12.5", 2, Decimal("12.5")),
    ],
)
def test_numbers(raw: str, minor: int, expected: Decimal) -> None:
    assert parse_number(raw, minor) == expected


def test_nothing_read_is_nothing_claimed() -> None:
    r = extract([])
    assert (r.merchant, r.date, r.total, r.currency) == ("", None, None, "")
    assert "total" not in r.confidence


def test_a_name_with_digits_is_the_merchant_not_an_amount() -> None:
    r = extract(lines("GS25 삼성점\n사업자번호 485-92-27572\n2026-05-20 14:30\n볼펜 2 3,000\n합계 3,000 원"))
    assert r.merchant == "GS25 삼성점" and r.tax is None and r.total == Decimal(3000)
