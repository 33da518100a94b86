"""Google Document AI's expense parser (``--receipt-engine documentai``), through ``google-cloud-documentai``.

``ProcessDocument`` with the receipt's file as sent (Document AI takes
JPEG, PNG, TIFF, GIF, BMP and PDF; HEIC and WebP are converted to JPEG
first), on the server's loop through the library's ``grpc.aio`` transport. The processor's entities map to the fields:
``supplier_name``, ``receipt_date`` (or ``purchase_date``), ``total_amount``,
``total_tax_amount``, ``net_amount``, ``currency``, ``line_item`` (with
``line_item/description``, ``/quantity``, ``/amount``) and ``payment_type``,
each with the entity's confidence; normalised values (``money_value``,
``date_value``) win over the mention's text.

Credentials are Application Default Credentials; ``--google-insecure`` with
``--documentai-endpoint`` talks plaintext to a fake (tests). What Google
says in an error goes to the log; the caller gets the cause in our words.
"""

from __future__ import annotations

import io
import logging
import re
from datetime import date
from decimal import Decimal
from typing import Any

import grpc

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.expenses import images
from tongyeok_server.expenses.extract.amounts import quantize
from tongyeok_server.expenses.extract.fields import category_for
from tongyeok_server.expenses.model import LineItem, Payment, ReceiptImage, ReceiptReading
from tongyeok_server.settings import ExpensesSettings, GoogleSettings

log = logging.getLogger(__name__)

ACCEPTED = {"image/jpeg", "image/png", "image/tiff", "image/gif", "image/bmp", "application/pdf"}
TIMEOUT_S = 60.0
RETRY_BUDGET_S = 5.0
_PROCESSOR = re.compile(r"^projects/[^/]+/locations/([^/]+)/processors/[^/]+(/processorVersions/[^/]+)?$")
_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: (grpc.StatusCode.INVALID_ARGUMENT, "Document AI cannot read this file"),
    grpc.StatusCode.NOT_FOUND: (
        grpc.StatusCode.FAILED_PRECONDITION,
        "the server's Document AI processor does not exist",
    ),
    grpc.StatusCode.PERMISSION_DENIED: (
        grpc.StatusCode.FAILED_PRECONDITION,
        "the server's credentials may not use its Document AI processor",
    ),
    grpc.StatusCode.UNAUTHENTICATED: (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Document AI refused the server's credentials",
    ),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the Document AI quota is used up; retry later",
    ),
    grpc.StatusCode.DEADLINE_EXCEEDED: (grpc.StatusCode.DEADLINE_EXCEEDED, "Document AI took too long; retry"),
}


class DocumentAiReader:
    """Reads receipts with a Document AI expense processor."""

    name = "documentai"

    def __init__(self, processor: str, endpoint: str = "", *, insecure: bool = False) -> None:
        """``processor`` is the processor's (or a processor version's) resource name."""
        match = _PROCESSOR.match(processor)
        if match is None:
            raise StartError(
                "--receipt-engine documentai needs --documentai-processor "
                "projects/PROJECT/locations/LOCATION/processors/ID (the expense parser's name)"
            )
        self.processor = processor
        self.endpoint = endpoint or f"{match.group(1)}-documentai.googleapis.com"
        self.insecure = insecure
        self._client: Any = None

    @classmethod
    def from_settings(cls, settings: ExpensesSettings, connection: GoogleSettings) -> DocumentAiReader:
        """The reader as the flags configure it."""
        try:
            import google.cloud.documentai_v1  # noqa: F401
        except ImportError:
            raise StartError("--receipt-engine documentai needs `pip install 'tongyeok[google]'`") from None
        return cls(settings.documentai_processor, settings.documentai_endpoint, insecure=connection.google_insecure)

    def _connect(self) -> Any:
        from google.cloud import documentai_v1 as documentai
        from google.cloud.documentai_v1.services.document_processor_service.transports import (
            DocumentProcessorServiceGrpcAsyncIOTransport,
        )

        if self.insecure:
            channel = grpc.aio.insecure_channel(self.endpoint)
            transport = DocumentProcessorServiceGrpcAsyncIOTransport(channel=channel)
            return documentai.DocumentProcessorServiceAsyncClient(transport=transport)
        from google.api_core.client_options import ClientOptions

        return documentai.DocumentProcessorServiceAsyncClient(client_options=ClientOptions(api_endpoint=self.endpoint))

    async def read(self, image: ReceiptImage) -> ReceiptReading:
        """Send the receipt to the processor and map its entities."""
        from google.api_core import exceptions
        from google.cloud import documentai_v1 as documentai

        if self._client is None:
            self._client = self._connect()  # on the server's loop, where its channel must live
        content, mime = image.data, image.media_type
        if mime not in ACCEPTED:  # HEIC, WebP: Document AI does not take them
            out = io.BytesIO()
            images.decode(image).save(out, "JPEG", quality=90)
            content, mime = out.getvalue(), "image/jpeg"
        request = documentai.ProcessRequest(
            name=self.processor, raw_document=documentai.RawDocument(content=content, mime_type=mime)
        )
        from google.api_core.retry_async import AsyncRetry, if_exception_type

        # The library's default retries an outage for two minutes; a caller holding a phone waits 5 s at most.
        retry = AsyncRetry(
            predicate=if_exception_type(exceptions.ServiceUnavailable),
            initial=0.25,
            maximum=2.0,
            multiplier=2.0,
            timeout=RETRY_BUDGET_S,
        )
        try:
            response = await self._client.process_document(request=request, timeout=TIMEOUT_S, retry=retry)
        except exceptions.RetryError as error:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "Document AI cannot be reached right now; retry shortly",
                detail=f"Document AI: {error.cause}"[:300],
            ) from None
        except exceptions.GoogleAPICallError as error:
            code = error.grpc_status_code or grpc.StatusCode.UNAVAILABLE
            mapped, message = _STATUS.get(code, (grpc.StatusCode.UNAVAILABLE, "Document AI cannot be reached; retry"))
            raise ServiceError(mapped, message, detail=f"Document AI {code.name}: {error.message}"[:300]) from None
        return reading_from(response.document, self.processor)

    def close(self) -> None:
        """Nothing to release: the channel closes with the server's loop."""


def _money(entity: Any) -> tuple[Decimal | None, str]:
    value = entity.normalized_value
    if value is not None and "money_value" in value:
        m = value.money_value
        return (Decimal(m.units) + Decimal(m.nanos).scaleb(-9)).normalize(), m.currency_code
    text = re.sub(r"[^\d.,-]", "", entity.mention_text).replace(",", "")
    try:
        return (Decimal(text) if text else None), ""
    except ArithmeticError:
        return None, ""


def _date(entity: Any) -> date | None:
    value = entity.normalized_value
    if value is not None and "date_value" in value and value.date_value.year:
        d = value.date_value
        return date(d.year, d.month, d.day)
    try:
        return date.fromisoformat(entity.mention_text.strip())
    except ValueError:
        return None


def reading_from(document: Any, processor: str = "") -> ReceiptReading:
    """A ``ReceiptReading`` from a Document AI ``Document`` of the expense parser."""
    fields: dict[str, Any] = {}
    confidence: dict[str, float] = {}
    currencies: list[str] = []
    items: list[LineItem] = []

    def keep(field: str, value: Any, entity: Any) -> None:
        if value not in (None, "") and field not in fields:
            fields[field] = value
            confidence[field] = round(float(entity.confidence), 2)

    for entity in document.entities:
        kind = entity.type_
        if kind == "supplier_name":
            keep("merchant", entity.normalized_value.text or entity.mention_text.strip(), entity)
        elif kind in ("receipt_date", "purchase_date", "invoice_date"):
            keep("date", _date(entity), entity)
        elif kind in ("total_amount", "total_tax_amount", "net_amount"):
            amount, code = _money(entity)
            field = {"total_amount": "total", "total_tax_amount": "tax", "net_amount": "subtotal"}[kind]
            keep(field, amount, entity)
            if code:
                currencies.append(code)
        elif kind == "currency":
            keep("currency_code", (entity.normalized_value.text or entity.mention_text).strip().upper()[:3], entity)
        elif kind == "payment_type":
            text = (entity.normalized_value.text or entity.mention_text).lower()
            payment = Payment.CASH if "cash" in text or "현금" in text else Payment.CARD
            keep("payment_method", payment, entity)
        elif kind == "line_item":
            props = {p.type_.removeprefix("line_item/"): p for p in entity.properties}
            amount = _money(props["amount"])[0] if "amount" in props else None
            quantity = _money(props["quantity"])[0] if "quantity" in props else None
            description = props["description"].mention_text.strip() if "description" in props else entity.mention_text
            items.append(LineItem(description, amount, quantity))
    if "currency_code" not in fields and currencies:
        fields["currency_code"] = currencies[0]
        confidence["currency_code"] = confidence.get("total", 0.5)
    currency = str(fields.get("currency_code", ""))
    for name in ("total", "tax", "subtotal"):
        if fields.get(name) is not None:
            fields[name] = quantize(fields[name], currency)  # Money's nanos: 37000.000000000 -> 37000
    items = [
        LineItem(i.description, quantize(i.amount, currency) if i.amount is not None else None, i.quantity)
        for i in items
    ]
    merchant = str(fields.get("merchant", ""))
    category, category_conf = category_for(merchant, items)
    confidence["category"] = category_conf
    if items:
        confidence["line_items"] = 0.8
    text = document.text
    return ReceiptReading(
        merchant=merchant,
        date=fields.get("date"),
        total=fields.get("total"),
        currency=currency,
        tax=fields.get("tax"),
        subtotal=fields.get("subtotal"),
        line_items=tuple(items),
        payment=fields.get("payment_method", Payment.UNKNOWN),
        category=category,
        confidence=confidence,
        raw_text=text,
        engine="documentai",
        engine_detail=processor.split("/processors/")[-1] if processor else "expense parser",
        language="ko" if any("\uac00" <= c <= "\ud7a3" for c in text) else ("en" if text else ""),
    )


__all__ = ["DocumentAiReader", "reading_from"]
