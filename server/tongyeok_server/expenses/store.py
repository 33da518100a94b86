"""Expenses in the meeting record's database (blocking calls: the servicer runs them on the executor).

The tables are ``store/schema.py``'s ``expenses`` and ``receipt_images``
(migration 0004): the same database, ``--store`` and migrations as the
meeting record. A scan's expense and its photo are inserted in one
transaction, so a failure keeps neither. Every read, change and delete takes
``owner`` (the caller id); another caller's expense is the same as none.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Row, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from tongyeok_server.expenses.model import Category, Expense, LineItem, Payment, ReceiptImage, ReceiptReading
from tongyeok_server.store import schema
from tongyeok_server.store.database import write

_E = schema.expenses
_I = schema.receipt_images
_LIST_COLUMNS = [c for c in _E.c if c.name != "raw_text"]


@dataclass(frozen=True)
class ExpenseFilter:
    """What ListExpenses and reports narrow to; every field optional."""

    date_from: date | None = None
    date_to: date | None = None
    trip: str = ""
    currency: str = ""
    category: str = ""


@dataclass(frozen=True)
class ExpensePosition:
    """Where a page ended: (date or "" for undated, id), in descending order."""

    date: str
    expense_id: str


def new_expense_id(now: datetime) -> str:
    """A globally unique, time-ordered expense id: ``e<UTC time>-<40 random bits>``."""
    return f"e{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(5)}"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _decimal(value: str | None) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def reading_values(reading: ReceiptReading) -> dict[str, Any]:
    """The columns a reading fills."""
    return {
        "merchant": reading.merchant,
        "expense_date": reading.date.isoformat() if reading.date else None,
        "total": _text(reading.total),
        "currency": reading.currency,
        "tax": _text(reading.tax),
        "subtotal": _text(reading.subtotal),
        "payment": reading.payment.value,
        "category": reading.category.value,
        "line_items": json.dumps(
            [
                {"description": i.description, "quantity": _text(i.quantity), "amount": _text(i.amount)}
                for i in reading.line_items
            ],
            ensure_ascii=False,
        ),
        "confidence": json.dumps(reading.confidence, sort_keys=True),
        "raw_text": reading.raw_text,
        "engine": reading.engine,
        "engine_detail": reading.engine_detail,
        "language": reading.language,
    }


def insert(
    engine: Engine,
    expense_id: str,
    owner: str,
    reading: ReceiptReading,
    image: ReceiptImage,
    *,
    trip: str = "",
    note: str = "",
    request_id: str = "",
    now: datetime | None = None,
) -> Expense:
    """Keep a scanned expense and its photo, both or neither; a repeated ``request_id`` returns the first one."""
    when = now or datetime.now(UTC)
    if request_id:
        earlier = by_request(engine, owner, request_id)
        if earlier is not None:
            return earlier
    values = {
        "id": expense_id,
        "caller_id": owner,
        "created_at": when,
        "updated_at": when,
        "request_id": request_id or None,
        "trip": trip,
        "note": note,
        "image_media_type": image.media_type,
        "image_bytes": len(image.data),
        **reading_values(reading),
    }
    try:
        with write(engine) as conn:
            conn.execute(_E.insert(), values)
            conn.execute(_I.insert(), {"expense_id": expense_id, "created_at": when, "data": image.data})
    except IntegrityError:
        # The same request_id raced us (two retries at once): the first one's expense is the answer.
        earlier = by_request(engine, owner, request_id) if request_id else None
        if earlier is None:
            raise
        return earlier
    found = get(engine, expense_id, owner)
    assert found is not None
    return found


def by_request(engine: Engine, owner: str, request_id: str) -> Expense | None:
    """The expense ``owner`` scanned with ``request_id`` (AIP-155), or None."""
    with engine.connect() as conn:
        row = conn.execute(_query().where(and_(_E.c.caller_id == owner, _E.c.request_id == request_id))).first()
    return None if row is None else _expense(row)


def _query(columns: Sequence[Any] = tuple(_E.c)) -> Any:
    kept = select(func.count()).where(_I.c.expense_id == _E.c.id).scalar_subquery().label("image_kept")
    return select(*columns, kept)


def get(engine: Engine, expense_id: str, owner: str) -> Expense | None:
    """One expense of ``owner``, or None."""
    with engine.connect() as conn:
        row = conn.execute(_query().where(and_(_E.c.id == expense_id, _E.c.caller_id == owner))).first()
    return None if row is None else _expense(row)


def _filtered(query: Any, owner: str, flt: ExpenseFilter) -> Any:
    query = query.where(_E.c.caller_id == owner)
    if flt.date_from is not None:
        query = query.where(_E.c.expense_date >= flt.date_from.isoformat())
    if flt.date_to is not None:
        query = query.where(_E.c.expense_date <= flt.date_to.isoformat())
    if flt.trip:
        query = query.where(_E.c.trip == flt.trip)
    if flt.currency:
        query = query.where(_E.c.currency == flt.currency)
    if flt.category:
        query = query.where(_E.c.category == flt.category)
    return query


def list_expenses(
    engine: Engine, owner: str, flt: ExpenseFilter, after: ExpensePosition | None, limit: int
) -> list[Expense]:
    """Up to ``limit`` expenses without their raw text, newest date first (undated last), after ``after``."""
    day = func.coalesce(_E.c.expense_date, "")
    query = _filtered(_query(_LIST_COLUMNS), owner, flt)
    if after is not None:
        query = query.where(or_(day < after.date, and_(day == after.date, _E.c.id < after.expense_id)))
    query = query.order_by(day.desc(), _E.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_expense(row) for row in conn.execute(query).all()]


def for_report(engine: Engine, owner: str, flt: ExpenseFilter) -> list[Expense]:
    """Every expense of a trip, oldest date first (undated last)."""
    query = _filtered(_query(_LIST_COLUMNS), owner, flt)
    query = query.order_by(func.coalesce(_E.c.expense_date, "9999").asc(), _E.c.created_at.asc(), _E.c.id.asc())
    with engine.connect() as conn:
        return [_expense(row) for row in conn.execute(query).all()]


def update_fields(
    engine: Engine, expense_id: str, owner: str, values: dict[str, Any], corrected: Sequence[str]
) -> Expense | None:
    """Set ``values`` (columns), mark ``corrected`` (proto field names) with confidence 1; None if no such expense."""
    with write(engine) as conn:
        row = conn.execute(
            select(_E.c.confidence, _E.c.corrected).where(and_(_E.c.id == expense_id, _E.c.caller_id == owner))
        ).first()
        if row is None:
            return None
        confidence = json.loads(row.confidence)
        already = [f for f in row.corrected.split(",") if f]
        for name in corrected:
            if name not in ("trip", "note"):
                confidence[name] = 1.0
            if name not in already:
                already.append(name)
        conn.execute(
            update(_E)
            .where(_E.c.id == expense_id)
            .values(
                **values,
                confidence=json.dumps(confidence, sort_keys=True),
                corrected=",".join(already),
                updated_at=datetime.now(UTC),
            )
        )
    return get(engine, expense_id, owner)


def delete_expense(engine: Engine, expense_id: str, owner: str) -> bool:
    """Delete an expense and its photo (cascade); False if there is none for ``owner``."""
    with write(engine) as conn:
        return conn.execute(delete(_E).where(and_(_E.c.id == expense_id, _E.c.caller_id == owner))).rowcount > 0


def image(engine: Engine, expense_id: str, owner: str) -> ReceiptImage | None:
    """The photo of an expense of ``owner`` (None: no such expense, or its photo's retention is over)."""
    query = (
        select(_I.c.data, _E.c.image_media_type)
        .join(_E, _E.c.id == _I.c.expense_id)
        .where(and_(_E.c.id == expense_id, _E.c.caller_id == owner))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else ReceiptImage(bytes(row.data), row.image_media_type)


def purge_images(engine: Engine, before: datetime) -> int:
    """Delete the photos kept since before ``before`` (the retention rule); their expenses stay."""
    with write(engine) as conn:
        return int(conn.execute(delete(_I).where(_I.c.created_at < before)).rowcount)


def _expense(row: Row[Any]) -> Expense:
    m = row._mapping
    items = tuple(
        LineItem(i["description"], _decimal(i.get("amount")), _decimal(i.get("quantity")))
        for i in json.loads(m["line_items"])
    )
    reading = ReceiptReading(
        merchant=m["merchant"],
        date=date.fromisoformat(m["expense_date"]) if m["expense_date"] else None,
        total=_decimal(m["total"]),
        currency=m["currency"],
        tax=_decimal(m["tax"]),
        subtotal=_decimal(m["subtotal"]),
        line_items=items,
        payment=Payment(m["payment"]),
        category=Category(m["category"]) if m["category"] else Category.OTHER,
        confidence=json.loads(m["confidence"]),
        raw_text=m.get("raw_text", "") or "",
        engine=m["engine"],
        engine_detail=m["engine_detail"],
        language=m["language"],
    )
    return Expense(
        expense_id=m["id"],
        caller_id=m["caller_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        reading=reading,
        trip=m["trip"],
        note=m["note"],
        corrected=tuple(f for f in m["corrected"].split(",") if f),
        image_media_type=m["image_media_type"],
        image_bytes=int(m["image_bytes"]),
        image_kept=bool(m["image_kept"]),
    )
