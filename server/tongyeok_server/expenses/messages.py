"""Expenses as ``tongyeok.v1.Expense`` messages, and corrections from them (UpdateExpense's field mask)."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from tongyeok_client.proto import expenses_pb2 as epb
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.errors import invalid_argument
from tongyeok_server.expenses.extract.amounts import MINOR_UNITS
from tongyeok_server.expenses.model import CORRECTABLE, Category, Expense, Payment
from tongyeok_server.expenses.report.build import Report

NAME_PREFIX = "expenses/"
CATEGORIES = {
    Category.MEALS: epb.EXPENSE_CATEGORY_MEALS,
    Category.LODGING: epb.EXPENSE_CATEGORY_LODGING,
    Category.TRANSPORT: epb.EXPENSE_CATEGORY_TRANSPORT,
    Category.OTHER: epb.EXPENSE_CATEGORY_OTHER,
}
PAYMENTS = {
    Payment.UNKNOWN: epb.PAYMENT_METHOD_UNSPECIFIED,
    Payment.CARD: epb.PAYMENT_METHOD_CARD,
    Payment.CASH: epb.PAYMENT_METHOD_CASH,
    Payment.OTHER: epb.PAYMENT_METHOD_OTHER,
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_TEXT = 2000


def money(value: Decimal | None) -> str:
    """A decimal as the wire's amount string ("" for None)."""
    return "" if value is None else format(value, "f")


def expense_message(expense: Expense, *, raw_text: bool = True) -> epb.Expense:
    """``expense`` on the wire."""
    r = expense.reading
    message = epb.Expense(
        name=NAME_PREFIX + expense.expense_id if expense.expense_id else "",  # a validate_only preview has none
        expense_id=expense.expense_id,
        caller_id=expense.caller_id,
        merchant=r.merchant,
        date=r.date.isoformat() if r.date else "",
        total=money(r.total),
        currency_code=r.currency,
        tax=money(r.tax),
        subtotal=money(r.subtotal),
        line_items=[
            epb.LineItem(description=i.description, quantity=money(i.quantity), amount=money(i.amount))
            for i in r.line_items
        ],
        payment_method=PAYMENTS[r.payment],
        category=CATEGORIES[r.category],
        field_confidence=r.confidence,
        raw_text=r.raw_text if raw_text else "",
        engine=pb.EngineInfo(name=r.engine, detail=r.engine_detail),
        trip=expense.trip,
        note=expense.note,
        corrected_fields=list(expense.corrected),
        image_media_type=expense.image_media_type,
        image_bytes=expense.image_bytes,
        image_kept=expense.image_kept,
        language_code=r.language,
    )
    message.create_time.FromDatetime(expense.created_at)
    message.update_time.FromDatetime(expense.updated_at)
    return message


def parse_date(field: str, text: str) -> date | None:
    """An ISO 8601 day, or INVALID_ARGUMENT naming ``field``."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid_argument(f"{field} is {text[:40]!r}; expected an ISO 8601 day such as 2026-11-03") from None


def parse_currency(field: str, code: str) -> str:
    """An ISO 4217 code (upper case), or INVALID_ARGUMENT."""
    if code and not _CURRENCY.match(code.upper()):
        raise invalid_argument(f"{field} is {code[:20]!r}; expected an ISO 4217 code such as KRW, USD or EUR")
    return code.upper()


def parse_amount(field: str, text: str, currency: str = "") -> Decimal | None:
    """A decimal amount string ("" = none), or INVALID_ARGUMENT."""
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or "e" in text.lower() or "," in text:
        raise invalid_argument(f"{field} is {text[:40]!r}; expected a decimal number such as 14000 or 13.05")
    minor = MINOR_UNITS.get(currency)
    exponent = value.as_tuple().exponent
    if minor is not None and isinstance(exponent, int) and -exponent > minor:
        raise invalid_argument(f"{field} {text!r} has more decimals than {currency} has ({minor})")
    return value


def corrections(expense: epb.Expense, paths: list[str], current_currency: str) -> dict[str, Any]:
    """The columns to set for UpdateExpense's ``paths`` (validated), from ``expense``'s values."""
    unknown = [p for p in paths if p not in CORRECTABLE]
    if unknown:
        raise invalid_argument(
            f"update_mask names {', '.join(unknown)}, which cannot be corrected; use {', '.join(CORRECTABLE)}"
        )
    if not paths:
        raise invalid_argument("update_mask is empty; name the fields to correct, e.g. paths: [total, date]")
    currency = parse_currency("expense.currency_code", expense.currency_code) if "currency_code" in paths else ""
    currency = currency or current_currency
    values: dict[str, Any] = {}
    for path in paths:
        if path in ("merchant", "trip", "note"):
            text = getattr(expense, path)
            if len(text) > (200 if path == "trip" else MAX_TEXT):
                raise invalid_argument(f"expense.{path} is too long")
            values[path] = text
        elif path == "date":
            day = parse_date("expense.date", expense.date)
            values["expense_date"] = day.isoformat() if day else None
        elif path in ("total", "tax", "subtotal"):
            amount = parse_amount(f"expense.{path}", getattr(expense, path), currency)
            values[path] = money(amount) or None
        elif path == "currency_code":
            values["currency"] = currency
        elif path == "payment_method":
            payment = next((p for p, v in PAYMENTS.items() if v == expense.payment_method), None)
            if payment is None:
                raise invalid_argument(f"expense.payment_method {expense.payment_method} is not a PaymentMethod")
            values["payment"] = payment.value
        elif path == "category":
            category = next((c for c, v in CATEGORIES.items() if v == expense.category), None)
            if category is None:
                raise invalid_argument(
                    "expense.category must be EXPENSE_CATEGORY_MEALS, _LODGING, _TRANSPORT or _OTHER"
                )
            values["category"] = category.value
        elif path == "line_items":
            items = []
            for i, item in enumerate(expense.line_items):
                quantity = parse_amount(f"expense.line_items[{i}].quantity", item.quantity)
                amount = parse_amount(f"expense.line_items[{i}].amount", item.amount, currency)
                items.append(
                    {
                        "description": item.description,
                        "quantity": money(quantity) or None,
                        "amount": money(amount) or None,
                    }
                )
            values["line_items"] = json.dumps(items, ensure_ascii=False)
    return values


def _money_message(amount: Decimal, currency: str) -> epb.Money:
    return epb.Money(currency_code=currency, amount=money(amount))


def report_message(report: Report) -> epb.ExpenseReport:
    """A report on the wire (its expenses without raw text)."""
    message = epb.ExpenseReport(
        trip=report.trip,
        date_from=report.date_from.isoformat() if report.date_from else "",
        date_to=report.date_to.isoformat() if report.date_to else "",
        report_currency_code=report.currency,
        expenses=[expense_message(e, raw_text=False) for e in report.expenses],
        totals=[_money_message(v, code) for code, v in report.totals.items()],
        rates={code: money(r) for code, r in report.rates.items()},
        incomplete_expenses=[NAME_PREFIX + e.expense_id for e in report.incomplete],
    )
    for day, amounts in report.days.items():
        entry = message.days.add(date=day.isoformat())
        for (category, code), amount in sorted(amounts.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
            entry.amounts.add(category=CATEGORIES[category], amount=_money_message(amount, code))
        if day in report.day_converted:
            entry.converted_total.CopyFrom(_money_message(report.day_converted[day], report.currency))
    for category, amount in report.converted_by_category.items():
        message.converted_by_category.add(category=CATEGORIES[category], amount=_money_message(amount, report.currency))
    if report.converted_total is not None and report.currency:
        message.converted_total.CopyFrom(_money_message(report.converted_total, report.currency))
    for m in report.meetings:
        meeting = message.meetings.add(
            session="sessions/" + m.session_id,
            duration_seconds=m.duration_s,
            languages=m.languages,
            utterance_count=m.utterances,
        )
        meeting.start_time.FromDatetime(m.started_at)
    return message
