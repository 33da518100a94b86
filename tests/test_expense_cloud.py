"""The production receipt readers over the wire: Document AI and OpenAI vision, real client libraries, strict fakes.

The fakes cannot read: each test registers what the fake "sees" in a file,
and checks what crosses the wire (the processor's name, the file, the
strict JSON schema) and how answers and failures become expenses and
statuses. A whole scan goes through the server once per engine.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import grpc
import pytest

from tests.conftest import running_server
from tests.support.fake_documentai import FakeDocumentAi, SeenReceipt
from tests.support.fake_openai import FakeOpenAI
from tests.support.receipts import make_receipt
from tongyeok_client import InterpreterClient, TongyeokError
from tongyeok_client.proto import expenses_pb2 as epb

PROCESSOR = "projects/p/locations/eu/processors/expense1"


@pytest.fixture(scope="module")
def documentai() -> Iterator[FakeDocumentAi]:
    with FakeDocumentAi(PROCESSOR) as fake:
        yield fake


@pytest.fixture(scope="module")
def vision() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-test-receipts") as fake:
        yield fake


@pytest.fixture(scope="module")
def documentai_client(documentai: FakeDocumentAi) -> Iterator[InterpreterClient]:
    with (
        running_server(
            receipt_engine="documentai",
            documentai_processor=PROCESSOR,
            documentai_endpoint=documentai.address,
            google_insecure=True,
        ) as server,
        InterpreterClient(f"127.0.0.1:{server.port}") as client,
    ):
        yield client


@pytest.fixture(scope="module")
def vision_client(vision: FakeOpenAI) -> Iterator[InterpreterClient]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-test-receipts")
        with (
            running_server(
                receipt_engine="openai", openai_base_url=vision.base_url, openai_vision_model="gpt-vision-test"
            ) as server,
            InterpreterClient(f"127.0.0.1:{server.port}") as client,
        ):
            yield client


def test_documentai_reads_a_receipt(documentai: FakeDocumentAi, documentai_client: InterpreterClient) -> None:
    photo = make_receipt(2).jpeg(seed=2)
    documentai.register(
        photo,
        SeenReceipt(
            "스타벅스 강남점",
            date(2026, 2, 3),
            Decimal(37000),
            "KRW",
            tax=Decimal(3364),
            subtotal=Decimal(33636),
            items=(("카페라떼", Decimal(10000)), ("비빔밥", Decimal(27000))),
            text="스타벅스 강남점\n합계 37,000",
        ),
    )
    expense = documentai_client.expenses.scan(photo)
    assert (expense.merchant, expense.date, expense.total, expense.currency_code) == (
        "스타벅스 강남점",
        "2026-02-03",
        "37000",
        "KRW",
    )
    assert (expense.tax, expense.subtotal) == ("3364", "33636")
    assert [(i.description, i.amount) for i in expense.line_items] == [("카페라떼", "10000"), ("비빔밥", "27000")]
    assert expense.payment_method == epb.PAYMENT_METHOD_CARD and expense.category == epb.EXPENSE_CATEGORY_MEALS
    assert expense.field_confidence["total"] == pytest.approx(0.98)
    assert expense.engine.name == "documentai" and expense.language_code == "ko"
    call = documentai.calls[-1]
    assert (call.name, call.mime_type, call.size) == (PROCESSOR, "image/jpeg", len(photo))
    assert "x-goog-api-client" in call.metadata  # the real client library made the call


def test_documentai_gets_heic_as_jpeg_and_blank_pages_are_unreadable(
    documentai: FakeDocumentAi, documentai_client: InterpreterClient
) -> None:
    import pillow_heif

    heif = pillow_heif.from_pillow(make_receipt(3).paper.convert("RGB"))
    import io

    out = io.BytesIO()
    heif.save(out, quality=80)
    with pytest.raises(TongyeokError) as blank:
        documentai_client.expenses.scan(out.getvalue())
    assert documentai.calls[-1].mime_type == "image/jpeg"  # converted: Document AI takes no HEIC
    assert blank.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "no text" in blank.value.details


def test_documentai_failures_become_statuses(documentai: FakeDocumentAi, documentai_client: InterpreterClient) -> None:
    photo = make_receipt(4).jpeg()
    documentai.fail_with = (
        grpc.StatusCode.PERMISSION_DENIED,
        "Permission 'documentai.processors.processOnline' denied",
    )
    try:
        with pytest.raises(TongyeokError) as denied:
            documentai_client.expenses.scan(photo)
        assert denied.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "credentials" in denied.value.details and "documentai.processors" not in denied.value.details
        documentai.fail_with = (grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable.")
        with pytest.raises(TongyeokError) as down:
            documentai_client.expenses.scan(photo)
        assert down.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        documentai.fail_with = None
    assert len(list(documentai_client.expenses.list())) == 1  # only the first test's expense was kept


ANSWER = {
    "merchant": "Blue Bottle Coffee",
    "date": "2026-11-03",
    "total": "9.79",
    "currency": "USD",
    "tax": "0.79",
    "subtotal": "9.00",
    "line_items": [{"description": "Latte", "quantity": "2", "amount": "9.00"}],
    "payment_method": "card",
    "category": "meals",
    "language": "en",
    "confidence": {"merchant": 0.9, "date": 0.95, "total": 0.97, "currency": 0.9, "tax": 0.8, "subtotal": 0.8},
}


def test_openai_vision_reads_a_receipt_with_a_strict_schema(
    vision: FakeOpenAI, vision_client: InterpreterClient
) -> None:
    photo = make_receipt(7).jpeg(seed=7)
    vision.register_receipt(photo, ANSWER)
    expense = vision_client.expenses.scan(photo)
    assert (expense.merchant, expense.date, expense.total, expense.currency_code) == (
        "Blue Bottle Coffee",
        "2026-11-03",
        "9.79",
        "USD",
    )
    assert [(i.description, i.quantity, i.amount) for i in expense.line_items] == [("Latte", "2", "9.00")]
    assert expense.field_confidence["currency_code"] == pytest.approx(0.9)
    assert expense.engine.name == "openai" and expense.engine.detail == "gpt-vision-test"
    request = vision.requests[-1]
    assert request.headers["authorization"] == "Bearer sk-test-receipts"
    assert request.body["model"] == "gpt-vision-test"
    assert request.body["response_format"]["json_schema"]["strict"] is True
    url = request.body["messages"][1]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == photo  # a JPEG goes as it was sent


def test_openai_refusal_and_errors_become_statuses(vision: FakeOpenAI, vision_client: InterpreterClient) -> None:
    unknown = make_receipt(11).jpeg(seed=11)
    with pytest.raises(TongyeokError) as refused:
        vision_client.expenses.scan(unknown)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and "could not read" in refused.value.details
    vision.fail(429, times=None, path="/v1/chat/completions")
    try:
        with pytest.raises(TongyeokError) as busy:
            vision_client.expenses.scan(unknown)
        assert busy.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        vision.reset()
    before = len(vision.requests)
    with pytest.raises(TongyeokError) as bad:
        vision_client.expenses.scan(b"not an image at all")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(vision.requests) == before  # refused before any request


def test_the_fake_refuses_a_schema_openai_would_refuse(vision: FakeOpenAI) -> None:
    import openai

    client = openai.OpenAI(base_url=vision.base_url, api_key="sk-test-receipts", max_retries=0)
    photo = base64.b64encode(make_receipt(7).jpeg(seed=7)).decode()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{photo}"}}],
                }
            ],
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "r",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            },
        )
    assert "additionalProperties" in str(refused.value)
