"""A fake Google Document AI (``google.cloud.documentai.v1.DocumentProcessorService/ProcessDocument``).

It speaks the real protocol (the proto-plus serializers of
``google-cloud-documentai``), so the real ``DocumentProcessorServiceAsyncClient``
talks to it, and it keeps the rules that matter: the processor's resource
name (``projects/*/locations/*/processors/*``, NOT_FOUND for another
processor), a ``raw_document`` with content and one of Document AI's MIME
types, at most 20 MB inline. It cannot read receipts: a test registers what
it "sees" in a file (``register(data, fields)``) and it answers the expense
parser's entities for it (``supplier_name``, ``receipt_date``,
``total_amount``, ``total_tax_amount``, ``net_amount``, ``currency``,
``line_item`` with its properties, ``payment_type``), with normalised values
and confidences; a file it does not know gets a document with no text and no
entities, as a blank page does.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import grpc
import grpc.aio
from google.cloud.documentai_v1 import types as documentai
from google.type import date_pb2, money_pb2

from tests.support.aio_fake import AioFake

SERVICE = "google.cloud.documentai.v1.DocumentProcessorService"
MAX_INLINE_BYTES = 20 * 1024 * 1024
MIME_TYPES = {"application/pdf", "image/jpeg", "image/png", "image/tiff", "image/gif", "image/bmp", "image/webp"}
_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/processors/[^/]+(/processorVersions/[^/]+)?$")


@dataclass(frozen=True)
class SeenReceipt:
    """What the fake answers for one file."""

    merchant: str
    day: date
    total: Decimal
    currency: str
    tax: Decimal | None = None
    subtotal: Decimal | None = None
    items: tuple[tuple[str, Decimal], ...] = ()
    payment: str = "Card"
    text: str = ""


@dataclass
class Call:
    """One ProcessDocument call as received."""

    name: str
    mime_type: str
    size: int
    status: grpc.StatusCode = grpc.StatusCode.OK
    metadata: dict[str, str] = field(default_factory=dict)


def _money(amount: Decimal, currency: str) -> money_pb2.Money:
    units = int(amount)
    return money_pb2.Money(currency_code=currency, units=units, nanos=int((amount - units) * 1_000_000_000))


class FakeDocumentAi(AioFake):
    """The fake service; ``processor`` is the one processor that exists."""

    thread_name = "fake-documentai"

    def __init__(self, processor: str = "projects/p/locations/eu/processors/expense1") -> None:
        super().__init__()
        self.processor = processor
        self.calls: list[Call] = []
        self.fail_with: tuple[grpc.StatusCode, str] | None = None
        self._seen: dict[str, SeenReceipt] = {}
        self._lock = threading.Lock()

    def register(self, data: bytes, receipt: SeenReceipt) -> None:
        """Answer ``receipt`` for the file ``data``."""
        with self._lock:
            self._seen[hashlib.sha256(data).hexdigest()] = receipt

    async def serve(self, port: int = 0) -> grpc.aio.Server:
        """Start serving on 127.0.0.1 (plaintext)."""
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 40 * 1024 * 1024)])
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ProcessDocument": grpc.unary_unary_rpc_method_handler(
                    self._process,
                    request_deserializer=documentai.ProcessRequest.deserialize,
                    response_serializer=documentai.ProcessResponse.serialize,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        return await self.listen(server, port, None)

    async def _process(self, request: documentai.ProcessRequest, context: Any) -> documentai.ProcessResponse:
        raw = request.raw_document
        call = Call(request.name, raw.mime_type, len(raw.content), metadata=dict(context.invocation_metadata() or ()))
        with self._lock:
            self.calls.append(call)
        problem = self._problem(request)
        if problem is not None:
            call.status = problem[0]
            await context.abort(*problem)
        with self._lock:
            seen = self._seen.get(hashlib.sha256(raw.content).hexdigest())
        return documentai.ProcessResponse(document=self._document(seen, raw.mime_type))

    def _problem(self, request: documentai.ProcessRequest) -> tuple[grpc.StatusCode, str] | None:
        if self.fail_with is not None:
            return self.fail_with
        if not _NAME.match(request.name):
            return grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource field value in the request: {request.name!r}"
        if request.name.split("/processorVersions/")[0] != self.processor:
            return grpc.StatusCode.NOT_FOUND, f"Processor {request.name} not found."
        raw = request.raw_document
        if "raw_document" not in request or not raw.content:
            return grpc.StatusCode.INVALID_ARGUMENT, "Document content is empty."
        if raw.mime_type not in MIME_TYPES:
            return grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported input file format: {raw.mime_type}."
        if len(raw.content) > MAX_INLINE_BYTES:
            return grpc.StatusCode.INVALID_ARGUMENT, "Document size exceeds the inline limit of 20 MB."
        return None

    @staticmethod
    def _document(seen: SeenReceipt | None, mime_type: str) -> documentai.Document:
        if seen is None:
            return documentai.Document(mime_type=mime_type, text="")
        E = documentai.Document.Entity

        def money_entity(kind: str, amount: Decimal, confidence: float) -> Any:
            return E(
                type_=kind,
                mention_text=f"{amount}",
                confidence=confidence,
                normalized_value=E.NormalizedValue(money_value=_money(amount, seen.currency)),
            )

        entities = [
            E(type_="supplier_name", mention_text=seen.merchant, confidence=0.93),
            E(
                type_="receipt_date",
                mention_text=seen.day.isoformat(),
                confidence=0.97,
                normalized_value=E.NormalizedValue(
                    date_value=date_pb2.Date(year=seen.day.year, month=seen.day.month, day=seen.day.day),
                    text=seen.day.isoformat(),
                ),
            ),
            money_entity("total_amount", seen.total, 0.98),
            E(
                type_="currency",
                mention_text=seen.currency,
                confidence=0.9,
                normalized_value=E.NormalizedValue(text=seen.currency),
            ),
            E(type_="payment_type", mention_text=seen.payment, confidence=0.8),
        ]
        if seen.tax is not None:
            entities.append(money_entity("total_tax_amount", seen.tax, 0.95))
        if seen.subtotal is not None:
            entities.append(money_entity("net_amount", seen.subtotal, 0.9))
        for description, amount in seen.items:
            entities.append(
                E(
                    type_="line_item",
                    mention_text=f"{description} {amount}",
                    confidence=0.85,
                    properties=[
                        E(type_="line_item/description", mention_text=description, confidence=0.85),
                        money_entity("line_item/amount", amount, 0.85),
                    ],
                )
            )
        return documentai.Document(mime_type=mime_type, text=seen.text or seen.merchant, entities=entities)
