"""What a receipt says, as the readers give it and the store keeps it (no wire format here).

Amounts are ``Decimal`` in the currency's major unit (``14000`` won,
``13.05`` dollars), never floats; dates are ``datetime.date``; currencies
ISO 4217 codes. ``confidence`` holds, per field name, how sure the reader
is (0..1); a field the reader could not find is None (or empty) and has
no confidence entry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


class Category(enum.StrEnum):
    """What an expense was for (the categories of a trip report)."""

    MEALS = "meals"
    LODGING = "lodging"
    TRANSPORT = "transport"
    OTHER = "other"


class Payment(enum.StrEnum):
    """How the receipt was paid."""

    UNKNOWN = ""
    CARD = "card"
    CASH = "cash"
    OTHER = "other"


#: The fields a caller may correct (UpdateExpense's field mask paths), in the proto's names.
CORRECTABLE = (
    "merchant",
    "date",
    "total",
    "currency_code",
    "tax",
    "subtotal",
    "payment_method",
    "category",
    "trip",
    "note",
    "line_items",
)


@dataclass(frozen=True)
class LineItem:
    """One line of a receipt: what, how many, for how much in all."""

    description: str
    amount: Decimal | None
    quantity: Decimal | None = None


@dataclass(frozen=True)
class ReceiptReading:
    """What a reader found on one receipt."""

    merchant: str = ""
    date: date | None = None
    total: Decimal | None = None
    currency: str = ""
    tax: Decimal | None = None
    subtotal: Decimal | None = None
    line_items: tuple[LineItem, ...] = ()
    payment: Payment = Payment.UNKNOWN
    category: Category = Category.OTHER
    confidence: dict[str, float] = field(default_factory=dict)
    raw_text: str = ""
    engine: str = ""  # e.g. "tesseract"
    engine_detail: str = ""  # e.g. "tesseract 5.3.0, kor+eng"
    language: str = ""  # the script the receipt is in: "ko", "en" ("" unknown)


@dataclass(frozen=True)
class ReceiptImage:
    """The caller's file as received: bytes and what they are."""

    data: bytes
    media_type: str  # image/jpeg, image/png, image/heic, image/webp, image/tiff, application/pdf


@dataclass(frozen=True)
class Expense:
    """A kept expense: the reading (as corrected) and its bookkeeping."""

    expense_id: str
    caller_id: str
    created_at: datetime
    updated_at: datetime
    reading: ReceiptReading
    trip: str = ""
    note: str = ""
    corrected: tuple[str, ...] = ()
    image_media_type: str = ""
    image_bytes: int = 0
    image_kept: bool = False
