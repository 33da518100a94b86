"""OpenAI vision with structured output (``--receipt-engine openai``), through the ``openai`` library.

One chat completion per receipt: a system message saying what to read, the
photo as a ``data:`` URL (JPEG, PNG, WebP and GIF as sent; HEIC, TIFF, BMP,
PDF and photos over 2048 pixels re-encoded as a JPEG of at most 2048), and
``response_format`` a strict JSON schema of the fields, so the answer always
parses. Any OpenAI-compatible server with vision and structured output
works through ``--openai-base-url``; the key is ``OPENAI_API_KEY``. The
SDK's own retries (``--openai-max-retries``) cover 429/5xx before an answer.
Confidences are the model's own estimates, not calibrated probabilities.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import grpc

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.expenses import images
from tongyeok_server.expenses.model import Category, LineItem, Payment, ReceiptImage, ReceiptReading
from tongyeok_server.settings import ExpensesSettings, OpenAISettings

log = logging.getLogger(__name__)

MAX_SIDE = 2048
SENT_AS_IS = {"image/jpeg", "image/png", "image/webp", "image/gif"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_FIELDS = ("merchant", "date", "total", "currency", "tax", "subtotal")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [*_FIELDS, "line_items", "payment_method", "category", "language", "confidence"],
    "properties": {
        "merchant": {**_NULLABLE_STRING, "description": "the merchant's name as printed"},
        "date": {**_NULLABLE_STRING, "description": "the receipt's date, YYYY-MM-DD"},
        "total": {**_NULLABLE_STRING, "description": "total paid incl. tax, plain decimal, e.g. 14000 or 13.05"},
        "currency": {**_NULLABLE_STRING, "description": "ISO 4217 code, e.g. KRW, USD, EUR"},
        "tax": {**_NULLABLE_STRING, "description": "tax (VAT, 부가세, sales tax) as printed, plain decimal"},
        "subtotal": {**_NULLABLE_STRING, "description": "amount before tax (subtotal, 공급가액), plain decimal"},
        "line_items": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["description", "quantity", "amount"],
                "properties": {
                    "description": {"type": "string"},
                    "quantity": _NULLABLE_STRING,
                    "amount": _NULLABLE_STRING,
                },
            },
        },
        "payment_method": {"type": "string", "enum": ["card", "cash", "other", "unknown"]},
        "category": {"type": "string", "enum": ["meals", "lodging", "transport", "other"]},
        "language": {"type": "string", "enum": ["ko", "en", "other"]},
        "confidence": {
            "type": "object",
            "additionalProperties": False,
            "required": list(_FIELDS),
            "properties": {name: {"type": "number"} for name in _FIELDS},
        },
    },
}
INSTRUCTIONS = (
    "You read photographed receipts (Korean or English) for a business-trip expense report. "
    "Return the fields exactly as printed; null for anything not printed or unreadable. "
    "The total is what was paid, tax included (합계, 총 결제금액, 받을금액, Total, Amount Due), never the "
    "subtotal (공급가액), the tax (부가세, VAT) or cash tendered. Amounts are plain decimals with a point, "
    "no grouping (40,000원 -> 40000; 1.234,50 € -> 1234.50). Dates as YYYY-MM-DD (2026년 11월 3일 -> "
    "2026-11-03; on dollar receipts 11/03/2026 is November 3). Currency as ISO 4217 (₩ and 원 are KRW). "
    "Confidence per field from 0 to 1."
)


class OpenAiVisionReader:
    """Reads receipts with an OpenAI vision model and a strict JSON schema."""

    name = "openai"

    def __init__(self, model: str, base_url: str = "", timeout_s: float = 30.0, max_retries: int = 2) -> None:
        """The client is made on first use, on the server's loop."""
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._client: Any = None

    @classmethod
    def from_settings(cls, settings: ExpensesSettings, connection: OpenAISettings) -> OpenAiVisionReader:
        """The reader as the flags configure it; ``StartError`` without a key."""
        try:
            import openai  # noqa: F401
        except ImportError:
            raise StartError("--receipt-engine openai needs `pip install 'tongyeok[openai]'`") from None
        if not os.environ.get("OPENAI_API_KEY"):
            raise StartError("--receipt-engine openai needs OPENAI_API_KEY (or OPENAI_API_KEY_FILE)")
        return cls(
            settings.openai_vision_model,
            connection.openai_base_url,
            connection.openai_timeout_s,
            connection.openai_max_retries,
        )

    async def read(self, image: ReceiptImage) -> ReceiptReading:
        """Ask the model for the receipt's fields."""
        import openai

        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url or None, timeout=self.timeout_s, max_retries=self.max_retries
            )
        url = _data_url(image)
        try:
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": INSTRUCTIONS},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Read this receipt."},
                            {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                        ],
                    },
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "receipt", "strict": True, "schema": SCHEMA},
                },
            )
        except openai.APIStatusError as error:
            raise _status_error(error) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE, "the receipt model cannot be reached; retry", detail=str(error)[:300]
            ) from None
        choice = completion.choices[0]
        if getattr(choice.message, "refusal", None):
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the receipt model could not read a receipt on this picture; photograph it flat, filling the frame",
                detail=f"refusal: {choice.message.refusal}"[:300],
            )
        if choice.finish_reason != "stop" or not choice.message.content:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the receipt model's answer was cut short; retry",
                detail=f"finish_reason {choice.finish_reason}",
            )
        try:
            answer = json.loads(choice.message.content)
        except json.JSONDecodeError:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE, "the receipt model answered something else than its schema; retry"
            ) from None
        return reading_from(answer, f"{self.model}")

    def close(self) -> None:
        """Nothing to release: the HTTP pool closes with the process."""


def _status_error(error: Any) -> ServiceError:
    status = int(getattr(error, "status_code", 0))
    detail = f"HTTP {status}: {str(getattr(error, 'message', ''))[:200]}"
    if status in (401, 403, 404):
        return ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"the receipt model refused the server's request (HTTP {status}): its key or model is wrong",
            detail=detail,
        )
    if status in (400, 413, 422):
        return ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT, f"the receipt model cannot read this file (HTTP {status})", detail=detail
        )
    if status == 429:
        return ServiceError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "the receipt model's quota is used up; retry later", detail=detail
        )
    return ServiceError(grpc.StatusCode.UNAVAILABLE, f"the receipt model failed (HTTP {status}); retry", detail=detail)


def _data_url(image: ReceiptImage) -> str:
    data, mime = image.data, image.media_type
    if mime not in SENT_AS_IS or _too_large(image):
        picture = images.decode(image)
        picture.thumbnail((MAX_SIDE, MAX_SIDE))
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=88)
        data, mime = out.getvalue(), "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _too_large(image: ReceiptImage) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(image.data)) as picture:
        return max(picture.size) > MAX_SIDE


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def reading_from(answer: dict[str, Any], model: str = "") -> ReceiptReading:
    """A ``ReceiptReading`` from the model's JSON answer (the schema above)."""
    when = None
    if answer.get("date"):
        try:
            when = date.fromisoformat(str(answer["date"]))
        except ValueError:
            when = None
    confidence = {
        ("currency_code" if k == "currency" else k): round(max(0.0, min(1.0, float(v))), 2)
        for k, v in (answer.get("confidence") or {}).items()
        if answer.get(k) not in (None, "")
    }
    items = tuple(
        LineItem(str(i.get("description", "")), _decimal(i.get("amount")), _decimal(i.get("quantity")))
        for i in answer.get("line_items") or ()
    )
    payment = {"card": Payment.CARD, "cash": Payment.CASH, "other": Payment.OTHER}.get(
        str(answer.get("payment_method")), Payment.UNKNOWN
    )
    category = Category(answer["category"]) if answer.get("category") in {c.value for c in Category} else Category.OTHER
    currency = str(answer.get("currency") or "").upper()[:3]
    return ReceiptReading(
        merchant=str(answer.get("merchant") or ""),
        date=when,
        total=_decimal(answer.get("total")),
        currency=currency,
        tax=_decimal(answer.get("tax")),
        subtotal=_decimal(answer.get("subtotal")),
        line_items=items,
        payment=payment,
        category=category,
        confidence=confidence,
        raw_text="",
        engine="openai",
        engine_detail=model,
        language=str(answer["language"]) if answer.get("language") in ("ko", "en") else "",
    )
