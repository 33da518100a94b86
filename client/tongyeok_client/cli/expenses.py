"""``tongyeok expenses scan|list|show|correct|delete|report``: receipts to expenses to a trip report."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.text import Text

from ..client import InterpreterClient
from ..expenses import CATEGORIES, PAYMENTS, REPORT_FORMATS
from ..proto import expenses_pb2 as epb
from .common import EXIT_OK, UsageError, print_json

_CORRECTABLE = ("merchant", "date", "total", "currency", "tax", "subtotal", "payment", "category", "trip", "note")


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register ``expenses`` and its commands."""
    p = sub.add_parser(
        "expenses",
        help="scan receipts, list and correct expenses, export a trip report",
        description="Receipts photographed on a trip become expenses; a trip becomes a CSV, XLSX or PDF report.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    scan = actions.add_parser("scan", parents=parents, help="read a receipt photo (JPEG, PNG, HEIC, PDF ...)")
    scan.add_argument("image", type=Path, help="the photo or PDF of the receipt")
    scan.add_argument("--trip", default="", help="the trip it belongs to, e.g. 'Seoul 2026-11'")
    scan.add_argument("--note", default="", help="a note to keep with it")
    scan.add_argument("--dry-run", action="store_true", help="read it, keep nothing")
    scan.set_defaults(run=run_scan)
    ls = actions.add_parser("list", parents=parents, help="your expenses, newest first")
    ls.add_argument("--from", dest="date_from", type=_day, default="", help="only from this day (2026-11-01)")
    ls.add_argument("--to", dest="date_to", type=_day, default="", help="only up to this day")
    ls.add_argument("--trip", default="", help="only this trip")
    ls.add_argument("--currency", default="", help="only this currency, e.g. KRW")
    ls.add_argument("--category", choices=tuple(CATEGORIES), default="", help="only this category")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default %(default)s; 0 = all)")
    ls.set_defaults(run=run_list)
    show = actions.add_parser("show", parents=parents, help="one expense, its lines and the text read")
    show.add_argument("id", help="the expense id or expenses/ID")
    show.set_defaults(run=run_show)
    correct = actions.add_parser(
        "correct", parents=parents, help="correct fields: FIELD=VALUE ... (merchant, date, total, currency ...)"
    )
    correct.add_argument("id", help="the expense id or expenses/ID")
    correct.add_argument("fields", nargs="+", metavar="FIELD=VALUE", help=f"fields: {', '.join(_CORRECTABLE)}")
    correct.set_defaults(run=run_correct)
    delete = actions.add_parser("delete", parents=parents, help="delete an expense and its photo")
    delete.add_argument("id", help="the expense id or expenses/ID")
    delete.set_defaults(run=run_delete)
    report = actions.add_parser("report", parents=parents, help="a trip's report as CSV, XLSX or PDF")
    report.add_argument("--from", dest="date_from", type=_day, default="", help="first day of the trip")
    report.add_argument("--to", dest="date_to", type=_day, default="", help="last day of the trip")
    report.add_argument("--trip", default="", help="the trip's name (instead of or with the dates)")
    report.add_argument("--currency", default="", help="convert totals into this currency, e.g. KRW")
    report.add_argument("--format", choices=tuple(REPORT_FORMATS), default="pdf", help="file format (default pdf)")
    report.add_argument("-o", "--output", type=Path, help="write here (default: the name the server suggests)")
    report.set_defaults(run=run_report)


def _day(text: str) -> str:
    if not text:
        return ""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day; use e.g. 2026-11-03") from None


def _category(expense: epb.Expense) -> str:
    return epb.ExpenseCategory.Name(expense.category).removeprefix("EXPENSE_CATEGORY_").lower()


def _payment(expense: epb.Expense) -> str:
    return epb.PaymentMethod.Name(expense.payment_method).removeprefix("PAYMENT_METHOD_").lower()


def summary(expense: epb.Expense) -> dict[str, object]:
    """The expense as the JSON ``scan --json`` prints: merchant, date, total, currency and the rest."""
    return {
        "id": expense.expense_id,
        "merchant": expense.merchant,
        "date": expense.date,
        "total": expense.total,
        "currency": expense.currency_code,
        "tax": expense.tax,
        "subtotal": expense.subtotal,
        "payment": _payment(expense),
        "category": _category(expense),
        "line_items": [
            {"description": i.description, "quantity": i.quantity, "amount": i.amount} for i in expense.line_items
        ],
        "confidence": {k: round(v, 2) for k, v in sorted(expense.field_confidence.items())},
        "engine": expense.engine.name,
        "trip": expense.trip,
        "language": expense.language_code,
    }


def _line(expense: epb.Expense) -> str:
    amount = f"{expense.total or '?'} {expense.currency_code}".strip()
    return f"{expense.expense_id}  {expense.date or '????-??-??'}  {amount:>16}  {_category(expense):<9}  {expense.merchant or '?'}"


def _print(console: Console, text: str, style: str | None = None) -> None:
    console.print(Text(text, style=style or ""), highlight=False, soft_wrap=True)


def run_scan(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Scan one receipt."""
    try:
        data = args.image.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {args.image}: {e.strerror or e}") from None
    expense = client.expenses.scan(data, trip=args.trip, note=args.note, validate_only=args.dry_run)
    if args.json:
        print(json.dumps(summary(expense), ensure_ascii=False))
        return EXIT_OK
    _show(console, expense, raw=False)
    if not args.dry_run:
        _print(
            console,
            f"kept as {expense.expense_id}; correct with: tongyeok expenses correct {expense.expense_id} total=...",
            "dim",
        )
    return EXIT_OK


def _show(console: Console, expense: epb.Expense, *, raw: bool) -> None:
    def sure(field: str) -> str:
        value = expense.field_confidence.get(field)
        return "" if value is None else f"  ({value:.0%})"

    rows = [
        ("merchant", expense.merchant, "merchant"),
        ("date", expense.date, "date"),
        ("total", f"{expense.total} {expense.currency_code}".strip(), "total"),
        ("tax", expense.tax, "tax"),
        ("subtotal", expense.subtotal, "subtotal"),
        ("payment", _payment(expense), "payment_method"),
        ("category", _category(expense), "category"),
        ("trip", expense.trip, ""),
        ("engine", f"{expense.engine.name} ({expense.engine.detail})", ""),
    ]
    for label, value, field in rows:
        if value:
            _print(console, f"{label:<9} {value}{sure(field) if field else ''}")
    for item in expense.line_items:
        quantity = f"{item.quantity} x " if item.quantity else ""
        _print(console, f"  {quantity}{item.description}  {item.amount}", "cyan")
    if raw and expense.raw_text:
        _print(console, "--- text read ---", "dim")
        _print(console, expense.raw_text, "dim")


def run_list(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """List expenses."""
    found = client.expenses.list(
        date_from=args.date_from,
        date_to=args.date_to,
        trip=args.trip,
        currency=args.currency.upper(),
        category=args.category,
        limit=args.limit or None,
    )
    shown = 0
    for expense in found:
        shown += 1
        if args.json:
            print_json(expense)
        else:
            _print(console, _line(expense))
    if not shown and not args.json:
        _print(console, "no expenses")
    return EXIT_OK


def run_show(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Show one expense."""
    expense = client.expenses.get(args.id)
    if args.json:
        print_json(expense)
    else:
        _show(console, expense, raw=True)
    return EXIT_OK


def run_correct(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Correct fields of an expense."""
    fields: dict[str, str] = {}
    for item in args.fields:
        name, sep, value = item.partition("=")
        if not sep or name not in _CORRECTABLE:
            raise UsageError(f"{item!r}: use FIELD=VALUE with FIELD one of {', '.join(_CORRECTABLE)}")
        if name == "category" and value not in CATEGORIES:
            raise UsageError(f"category must be one of {', '.join(CATEGORIES)}")
        if name == "payment" and value not in PAYMENTS:
            raise UsageError(f"payment must be one of {', '.join(PAYMENTS)}")
        key = {"currency": "currency_code", "payment": "payment_method"}.get(name, name)
        fields[key] = value.upper() if name == "currency" else value
    expense = client.expenses.correct(args.id, **fields)
    if args.json:
        print(json.dumps(summary(expense), ensure_ascii=False))
    else:
        _show(console, expense, raw=False)
    return EXIT_OK


def run_delete(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Delete an expense."""
    client.expenses.delete(args.id)
    if not args.json:
        _print(console, f"deleted {args.id}")
    return EXIT_OK


def run_report(args: argparse.Namespace, client: InterpreterClient, console: Console) -> int:
    """Export a trip's report."""
    if not args.trip and not (args.date_from and args.date_to):
        raise UsageError("give --from and --to (the trip's days), or --trip")
    exported = client.expenses.export_report(
        format=args.format,
        date_from=args.date_from,
        date_to=args.date_to,
        trip=args.trip,
        currency=args.currency.upper(),
    )
    path = args.output or Path(exported.file_name)
    try:
        path.write_bytes(exported.content)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    report = exported.report
    if args.json:
        print_json(report)
        return EXIT_OK
    totals = ", ".join(f"{m.amount} {m.currency_code}" for m in report.totals) or "nothing"
    converted = (
        f" = {report.converted_total.amount} {report.converted_total.currency_code}"
        if report.HasField("converted_total")
        else ""
    )
    _print(console, f"{len(report.expenses)} expenses {report.date_from} to {report.date_to}: {totals}{converted}")
    _print(console, f"{len(report.meetings)} meetings; {len(report.incomplete_expenses)} expenses not counted")
    print(f"wrote {path} ({exported.media_type})", file=sys.stderr)
    return EXIT_OK
