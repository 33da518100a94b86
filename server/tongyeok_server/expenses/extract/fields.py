"""The field extractor: receipt lines in, ``ReceiptReading`` out.

It reads the way a person reads a receipt:

- the **currency** from symbols, codes and words (``amounts.detect_currency``);
- the **date** from the first line that holds one, month-first only for
  dollar receipts (``dates.find_date``);
- every line's **label** (the words before its amount) matched against the
  known labels (``labels``), allowing an OCR slip;
- the **total** by evidence, not by the first match: the labelled total
  line, the amount paid by card, subtotal + tax, cash tendered - change, and
  the line items' sum each vote for a value, and the value with the most
  weight wins. So a total misread by OCR (``49,000`` for ``40,000``) is
  outvoted by the card line and the tax breakdown that agree with each
  other, and a subtotal or tax line is never taken for the total;
- **tax** and **subtotal** from their labelled lines (a rate such as
  ``10%`` is not an amount);
- the **merchant** as the largest printed line near the top that is not an
  address, phone number, business number, date or receipt banner;
- **line items** between the header and the totals; the **payment** method
  and the **category** from keywords.

Each field's confidence combines the OCR's confidence in its line with how
well the evidence agrees.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tongyeok_server.expenses.extract import labels
from tongyeok_server.expenses.extract.amounts import (
    MINOR_UNITS,
    Amount,
    amounts_in,
    clean_numbers,
    decimal_comma_share,
    detect_currency,
    quantize,
)
from tongyeok_server.expenses.extract.dates import date_spans, find_date
from tongyeok_server.expenses.extract.text import hangul_share, is_hangul, label_matches, letters_only, normalize
from tongyeok_server.expenses.model import Category, LineItem, Payment, ReceiptReading
from tongyeok_server.expenses.ocr.base import OcrLine

_PHONE = re.compile(r"\b0\d{1,2}[- )]\d{3,4}-\d{4}\b|\(\d{3}\) ?\d{3}-\d{4}|\+\d{1,3}[ \d-]{7,}")
_MASKED = re.compile(r"\*{2,}|x{4,}", re.IGNORECASE)
_NOT_AMOUNT_LINE = (
    "승인번호",
    "카드번호",
    "사업자",
    "영수증번호",
    "거래번호",
    "check",
    "server",
    "tel",
    "pos",
    "auth",
    "table",
)


@dataclass
class _Line:
    index: int
    text: str
    label: str
    kind: str  # total, subtotal, tax, tendered, change, card, discount, tip, header, other
    amount: Amount | None
    confidence: float
    height: int


def extract(lines: Sequence[OcrLine], engine: str = "", detail: str = "") -> ReceiptReading:
    """Read the fields of a receipt from its OCR lines (top to bottom)."""
    texts = [clean_numbers(normalize(line.text)) for line in lines]
    raw_text = "\n".join(normalize(line.text) for line in lines)
    currency, currency_conf = detect_currency(raw_text)
    if not currency and any(amounts_in(t, "USD") for t in texts):
        currency, currency_conf = ("EUR", 0.5) if decimal_comma_share(raw_text) > 0.5 else ("USD", 0.4)
    parsed = [_classify(i, text, line, currency) for i, (text, line) in enumerate(zip(texts, lines, strict=True))]
    confidence: dict[str, float] = {}
    if currency:
        confidence["currency_code"] = round(currency_conf, 2)

    when = None
    for line, text in zip(parsed, texts, strict=True):
        found = find_date(text, month_first=currency == "USD")
        if found:
            when = found[0]
            confidence["date"] = round(found[1] * (0.5 + line.confidence / 2), 2)
            break

    total, total_conf = _total(parsed, currency)
    if total is not None:
        confidence["total"] = total_conf
    tax_line = _first(parsed, "tax")
    subtotal_line = _first(parsed, "subtotal")
    tax = quantize(tax_line.amount.value, currency) if tax_line and tax_line.amount else None
    subtotal = quantize(subtotal_line.amount.value, currency) if subtotal_line and subtotal_line.amount else None
    cents = MINOR_UNITS.get(currency, 2) > 0
    if cents and total is not None and tax is not None and subtotal is not None and subtotal + tax != total:
        # One of the two lost its decimal point to OCR ("1512" for 15.12): the other two decide it.
        if tax_line and tax_line.amount and not tax_line.amount.has_decimals and total - subtotal >= 0:
            tax = total - subtotal
        elif subtotal_line and subtotal_line.amount and not subtotal_line.amount.has_decimals and total - tax >= 0:
            subtotal = total - tax
    if tax is not None and tax_line:
        agrees = total is not None and subtotal is not None and subtotal + tax == total
        confidence["tax"] = round((0.95 if agrees else 0.7) * (0.5 + tax_line.confidence / 2), 2)
    if subtotal is not None and subtotal_line:
        agrees = total is not None and tax is not None and subtotal + tax == total
        confidence["subtotal"] = round((0.95 if agrees else 0.7) * (0.5 + subtotal_line.confidence / 2), 2)

    merchant, merchant_conf = _merchant(parsed)
    if merchant:
        confidence["merchant"] = merchant_conf
    items = _items(parsed, currency)
    if items:
        confidence["line_items"] = round(sum(line.confidence for line in parsed if line.kind == "item") / len(items), 2)
    payment = _payment(parsed)
    if payment is not Payment.UNKNOWN:
        confidence["payment_method"] = 0.8
    category, category_conf = category_for(merchant, items)
    confidence["category"] = category_conf
    return ReceiptReading(
        merchant=merchant,
        date=when,
        total=total,
        currency=currency,
        tax=tax,
        subtotal=subtotal,
        line_items=tuple(items),
        payment=payment,
        category=category,
        confidence=confidence,
        raw_text=raw_text,
        engine=engine,
        engine_detail=detail,
        language="ko" if hangul_share(raw_text) > 0.2 else ("en" if raw_text else ""),
    )


def _classify(index: int, text: str, ocr: OcrLine, currency: str) -> _Line:
    dates = date_spans(text)
    found = [
        a
        for a in amounts_in(text, currency)
        if not any(s <= a.start < e for s, e in dates) and text[a.end : a.end + 1] != "%"
    ]
    amount = found[-1] if found else None
    label = text[: amount.start] if amount else text
    plain = letters_only(label)
    kind = "other"
    if any(word in letters_only(text) for word in _NOT_AMOUNT_LINE) or _PHONE.search(text) or _MASKED.search(text):
        kind = "reference"
        if _MASKED.search(text) and label_matches(label, labels.CARD, 0.85):
            kind = "card"  # "VISA **** 1234   13.05"
    elif label_matches(plain, labels.HEADER, 0.85) and amount is None:
        kind = "header"
    else:
        for name, words in (
            ("subtotal", labels.SUBTOTAL),
            ("tax", labels.TAX),
            ("change", labels.CHANGE),
            ("tendered", labels.TENDERED),
            ("discount", labels.DISCOUNT),
            ("tip", labels.TIP),
            ("card", labels.CARD),
            ("total", labels.TOTAL),
        ):
            if amount is not None and plain and label_matches(plain, words):
                kind = name
                break
        else:
            if amount is not None and sum(c.isalpha() for c in label) >= 2:
                kind = "item"
    if kind == "card" and amount is not None and len(found) and amount.text.isdigit() and len(amount.text) == 4:
        amount = None  # the card's last four digits, not an amount
    return _Line(index, text, label.strip(), kind, amount, ocr.confidence, ocr.height)


def _first(lines: list[_Line], kind: str) -> _Line | None:
    return next((line for line in lines if line.kind == kind and line.amount is not None), None)


def _total(lines: list[_Line], currency: str) -> tuple[Decimal | None, float]:
    votes: dict[Decimal, float] = defaultdict(float)

    def vote(value: Decimal | None, weight: float) -> None:
        if value is not None and value > 0:
            votes[quantize(value, currency)] += weight

    # On a receipt whose amounts have cents, a total without them was misread ("Total /,/5").
    amounts = [line.amount for line in lines if line.amount is not None]
    cents = sum(a.has_decimals for a in amounts) > 0.6 * len(amounts) if amounts else False

    def plausible(amount: Amount) -> float:
        return 0.4 if cents and not amount.has_decimals else 1.0

    total_lines = [line for line in lines if line.kind == "total" and line.amount is not None]
    for line in total_lines[:1]:
        assert line.amount is not None
        vote(line.amount.value, 3.0 * (0.6 + 0.4 * line.confidence) * plausible(line.amount))
    for line in [line for line in lines if line.kind == "card" and line.amount is not None][:1]:
        assert line.amount is not None
        vote(line.amount.value, 2.0 * plausible(line.amount))
    sub, tax = _first(lines, "subtotal"), _first(lines, "tax")
    if sub and tax and sub.amount and tax.amount:
        vote(sub.amount.value + tax.amount.value, 2.0)
    tendered, change = _first(lines, "tendered"), _first(lines, "change")
    if tendered and change and tendered.amount and change.amount:
        vote(tendered.amount.value - change.amount.value, 2.0)
    elif tendered and tendered.amount and not change:
        vote(tendered.amount.value, 1.0)
    items = [line.amount.value for line in lines if line.kind == "item" and line.amount is not None]
    if items:
        vote(sum(items, Decimal(0)), 1.0)
    if not votes:
        others = [
            line.amount.value for line in lines if line.amount is not None and line.kind in ("other", "item", "total")
        ]
        if not others:
            return None, 0.0
        return quantize(max(others), currency), 0.3
    best = max(votes.items(), key=lambda kv: (kv[1], kv[0]))
    weight = best[1]
    return best[0], round(min(0.99, 0.3 + 0.12 * weight), 2)


def _merchant(lines: list[_Line]) -> tuple[str, float]:
    candidates = []
    # The name comes before the date and the first amount (an address or a banner may come first).
    ends = ("total", "subtotal", "tax", "card", "tendered", "change", "header")
    end = next((line.index for line in lines if line.kind in ends), len(lines))
    end = min(end, next((line.index for line in lines if find_date(line.text, month_first=False)), end))
    for line in lines[: min(end, 7)]:
        text = line.text.strip(" |:;,.-_=~*'\"`!")
        letters = sum(c.isalpha() for c in text)
        if letters < 2 or line.confidence < 0.45 or letters < len(text.replace(" ", "")) * 0.5:
            continue
        words = re.findall(r"\w+", text.lower())
        hangul = letters_only("".join(w for w in words if any(map(is_hangul, w))))
        if (
            any(word in labels.NOT_MERCHANT for word in words)
            or any(word in hangul for word in labels.NOT_MERCHANT if is_hangul(word[0]))
            or _PHONE.search(text)
        ):
            continue
        if find_date(text, month_first=False) or re.search(r"\d{3}-\d{2}-\d{5}", text):
            continue
        if re.search(r"\d", text) and any(
            w in labels.ADDRESS or (is_hangul(w[-1]) and w[-1] in "로길구동층" and len(w) > 1) for w in words
        ):
            continue  # "817 High Street", "테헤란로 72"
        candidates.append(line)
    if not candidates:
        return "", 0.0
    tallest = max(candidates, key=lambda line: (line.height, -line.index))
    name = re.sub(r"^[^\w(]+|[^\w)!.]+$", "", tallest.text)
    sure = 0.9 if tallest.height > min(line.height for line in lines) * 1.15 else 0.6
    return name, round(sure * (0.5 + tallest.confidence / 2), 2)


def _items(lines: list[_Line], currency: str) -> list[LineItem]:
    end = next((line.index for line in lines if line.kind in ("subtotal", "tax", "total")), len(lines))
    # Items come after the header ("상품명 수량 금액") or, without one, after the date (not the address).
    start = next((line.index + 1 for line in lines if line.kind == "header"), 0)
    if not start:
        start = next((line.index + 1 for line in lines if find_date(line.text, month_first=False)), 0)
    out = []
    for line in lines[start:end]:
        if line.kind != "item" or line.amount is None:
            continue
        description = line.label
        quantity = None
        if m := re.match(r"^(\d{1,2})\s*[xX]?\s+(.+)$", description):  # "2 Breakfast", "2x Latte"
            quantity, description = Decimal(m.group(1)), m.group(2)
        elif m := re.match(r"^(.+?)\s+[xX]?(\d{1,2})$", description):  # "불고기 정식 2"
            description, quantity = m.group(1), Decimal(m.group(2))
        description = description.strip(" .:-|")
        if description:
            out.append(LineItem(description, quantize(line.amount.value, currency), quantity))
    return out


def _payment(lines: list[_Line]) -> Payment:
    if any(line.kind == "card" for line in lines) or any(
        label_matches(letters_only(line.text)[:12], labels.CARD, 0.9) for line in lines
    ):
        return Payment.CARD
    if any(line.kind == "tendered" for line in lines):
        return Payment.CASH
    return Payment.UNKNOWN


def category_for(merchant: str, items: list[LineItem] | tuple[LineItem, ...]) -> tuple[Category, float]:
    """The category of a receipt from keywords in its merchant and items, and how sure."""
    words = {name: 0.0 for name in labels.CATEGORY_WORDS}
    merchant_text = merchant.lower()
    item_text = " ".join(item.description.lower() for item in items)
    for name, keys in labels.CATEGORY_WORDS.items():
        for key in keys:
            pattern = key if any(is_hangul(c) for c in key) else rf"\b{re.escape(key)}\b"
            if re.search(pattern, merchant_text):
                words[name] += 2
            if re.search(pattern, item_text):
                words[name] += 1
    name, score = max(words.items(), key=lambda kv: kv[1])
    if score == 0:
        return Category.OTHER, 0.4
    return Category(name), round(min(0.95, 0.5 + 0.15 * score), 2)
