"""Receipts the tests and the bench render themselves, and photograph as a phone would.

``make_receipt(seed)`` picks a layout (Korean card slip, Korean café, US
store, UK café, European restaurant, Japanese-yen hotel bill ...), a merchant,
a date in that layout's format, items and prices, and returns the truth
(``Receipt``) with the rendered paper (``Receipt.paper``, a PIL image).
``photograph(paper, seed)`` puts it on a table as a phone sees it: the paper
on a darker background, turned by up to 3 degrees, uneven light, a little
blur and sensor noise, then JPEG at quality 70-88.

Everything is a function of the seed, so the bench's 40 receipts are the
same on every run and machine; fonts are Debian's ``fonts-nanum`` (Hangul)
and ``fonts-dejavu-core`` (Latin).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/nanum"), Path("/usr/share/fonts/truetype/dejavu"))
KOREAN_FONTS = ("NanumGothic.ttf", "NanumBarunGothic.ttf", "NanumGothicCoding.ttf", "NanumSquareR.ttf")
LATIN_FONTS = ("DejaVuSansMono.ttf", "DejaVuSans.ttf", "DejaVuSansCondensed.ttf")
PAPER_WIDTH = 620


@dataclass(frozen=True)
class Item:
    """One line item as printed."""

    description: str
    quantity: int
    amount: Decimal


@dataclass
class Receipt:
    """What a receipt says (the truth the tests check against) and its rendered paper."""

    language: str  # "ko" or "en"
    layout: str
    merchant: str
    date: date
    currency: str
    total: Decimal
    tax: Decimal | None
    subtotal: Decimal | None
    items: list[Item]
    payment: str  # card, cash
    category: str  # meals, lodging, transport, other
    paper: Image.Image = field(repr=False, default_factory=lambda: Image.new("L", (1, 1)))

    def jpeg(self, seed: int | None = None, quality: int = 85) -> bytes:
        """The receipt photographed (``seed`` None: the paper itself as a clean scan)."""
        image = self.paper if seed is None else photograph(self.paper, seed)
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=quality)
        return out.getvalue()


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    for directory in FONT_DIRS:
        path = directory / name
        if path.exists():
            return ImageFont.truetype(str(path), size)
    raise FileNotFoundError(f"font {name} not found: install fonts-nanum and fonts-dejavu-core (make setup)")


class _Paper:
    """Lines laid out on a receipt-wide strip of paper."""

    def __init__(self, font: str, size: int) -> None:
        self.font_name = font
        self.size = size
        self.lines: list[tuple[str, str, str, int, bool]] = []  # left, right, centre, size, bold

    def centre(self, text: str, size: int | None = None) -> None:
        self.lines.append(("", "", text, size or self.size, False))

    def row(self, left: str, right: str = "", size: int | None = None) -> None:
        self.lines.append((left, right, "", size or self.size, False))

    def rule(self) -> None:
        self.lines.append(("-" * 60, "", "", self.size, False))

    def blank(self) -> None:
        self.lines.append(("", "", "", self.size // 2, False))

    def render(self) -> Image.Image:
        margin, spacing = 28, 10
        height = margin * 2 + sum(size + spacing for *_, size, _ in self.lines)
        image = Image.new("L", (PAPER_WIDTH, height), 250)
        draw = ImageDraw.Draw(image)
        y = margin
        for left, right, centre, size, _bold in self.lines:
            font = _font(self.font_name, size)
            if centre:
                width = draw.textlength(centre, font=font)
                draw.text(((PAPER_WIDTH - width) / 2, y), centre, fill=20, font=font)
            if left.startswith("---"):
                draw.line((margin, y + size // 2, PAPER_WIDTH - margin, y + size // 2), fill=60, width=2)
            elif left:
                draw.text((margin, y), left, fill=20, font=font)
            if right:
                width = draw.textlength(right, font=font)
                draw.text((PAPER_WIDTH - margin - width, y), right, fill=20, font=font)
            y += size + spacing
        return image


# --------------------------------------------------------------------------- content

KOREAN_MERCHANTS = (
    ("스타벅스 강남점", "meals"),
    ("본죽 역삼점", "meals"),
    ("이마트24 선릉점", "other"),
    ("롯데호텔 서울", "lodging"),
    ("교보문고 광화문점", "other"),
    ("카카오T 택시", "transport"),
    ("한식당 소담", "meals"),
    ("신라스테이 역삼", "lodging"),
    ("GS25 삼성점", "other"),
    ("코레일 서울역", "transport"),
)
KOREAN_ITEMS = {
    "meals": (("아메리카노", 4500), ("카페라떼", 5000), ("비빔밥", 9000), ("김치찌개", 8000), ("불고기 정식", 12000)),
    "lodging": (("객실료 (디럭스)", 189000), ("조식", 25000), ("주차", 15000)),
    "transport": (("택시 요금", 15800), ("KTX 서울-부산", 59800), ("통행료", 2100)),
    "other": (("생수", 1000), ("볼펜", 1500), ("노트", 3000), ("우산", 8000)),
}
ENGLISH_MERCHANTS = (
    ("Blue Bottle Coffee", "meals"),
    ("Union Square Deli", "meals"),
    ("Hilton Garden Inn", "lodging"),
    ("Yellow Cab Co", "transport"),
    ("Office Depot", "other"),
    ("Marriott Downtown", "lodging"),
    ("Pret A Manger", "meals"),
    ("Heathrow Express", "transport"),
    ("Cafe Central", "meals"),
    ("Hotel Adlon", "lodging"),
    ("Staples", "other"),
    ("The Ivy Kitchen", "meals"),
)
ENGLISH_ITEMS = {
    "meals": (
        ("Latte", "4.50"),
        ("Bagel", "3.25"),
        ("Club Sandwich", "11.90"),
        ("Caesar Salad", "9.80"),
        ("Soup", "6.40"),
    ),
    "lodging": (("Room 1 night", "189.00"), ("Breakfast", "24.00"), ("Parking", "18.00")),
    "transport": (("Fare", "27.50"), ("Airport surcharge", "5.00"), ("Tolls", "3.20")),
    "other": (("Printer paper", "8.99"), ("Pens 12pk", "6.49"), ("USB cable", "12.99")),
}

KRW_FORMATS: tuple[Callable[[date], str], ...] = (
    lambda d: f"{d.year}-{d.month:02d}-{d.day:02d} 14:{d.day + 10:02d}",
    lambda d: f"{d.year}년 {d.month}월 {d.day}일",
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d} 12:{d.day + 5:02d}:33",
    lambda d: f"{d.year}.{d.month:02d}.{d.day:02d} (화) 19:{d.day + 20:02d}",
)
KOREAN_TOTAL_LABELS = ("합계", "총 결제금액", "받을금액", "합계금액")


def _won(amount: int) -> str:
    return f"{amount:,}"


def _korean(rng: random.Random) -> Receipt:
    merchant, category = rng.choice(KOREAN_MERCHANTS)
    when = date(2026, rng.randint(1, 12), rng.randint(1, 28))
    chosen = rng.sample(KOREAN_ITEMS[category], k=min(len(KOREAN_ITEMS[category]), rng.randint(1, 3)))
    items = [Item(name, rng.randint(1, 3), Decimal(price)) for name, price in chosen]
    for i, it in enumerate(items):
        items[i] = Item(it.description, it.quantity, it.amount * it.quantity)
    total = sum((it.amount for it in items), Decimal(0))
    subtotal = (total / Decimal("1.1")).quantize(Decimal(1), ROUND_HALF_UP)
    tax = total - subtotal
    layout = rng.choice(("ko-card", "ko-pos", "ko-simple"))
    paper = _Paper(rng.choice(KOREAN_FONTS), 24)
    paper.centre(merchant, 34)
    paper.centre(f"사업자번호 {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10000, 99999)}", 20)
    paper.centre(f"서울특별시 강남구 테헤란로 {rng.randint(1, 500)}", 20)
    paper.centre(f"TEL 02-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}", 20)
    paper.blank()
    paper.row(KRW_FORMATS[rng.randrange(len(KRW_FORMATS))](when))
    if layout == "ko-pos":
        paper.row(f"POS:{rng.randint(1, 9):02d}  영수증번호 {rng.randint(1000, 9999)}")
    paper.rule()
    paper.row("상품명   수량", "금액")
    paper.rule()
    for it in items:
        paper.row(f"{it.description}  {it.quantity}", _won(int(it.amount)))
    paper.rule()
    if layout != "ko-simple":
        paper.row("공급가액", _won(int(subtotal)))
        paper.row("부가세", _won(int(tax)))
    label = rng.choice(KOREAN_TOTAL_LABELS)
    suffix = rng.choice(("원", "", "₩"))
    total_text = f"₩{_won(int(total))}" if suffix == "₩" else _won(int(total)) + suffix
    paper.row(label, total_text, 28)
    payment = rng.choice(("card", "card", "cash"))
    if payment == "card":
        paper.row("신용카드 (국민카드)", _won(int(total)))
        paper.row(f"카드번호 {rng.randint(1000, 9999)}-****-****-{rng.randint(1000, 9999)}")
        paper.row(f"승인번호 {rng.randint(10000000, 99999999)}")
    else:
        paper.row("현금", _won(int(total)))
        paper.row("거스름돈", "0")
    paper.blank()
    paper.centre("감사합니다", 22)
    return Receipt(
        language="ko",
        layout=layout,
        merchant=merchant,
        date=when,
        currency="KRW",
        total=total,
        tax=None if layout == "ko-simple" else tax,
        subtotal=None if layout == "ko-simple" else subtotal,
        items=items,
        payment=payment,
        category=category,
        paper=paper.render(),
    )


@dataclass(frozen=True)
class _Locale:
    name: str
    currency: str
    symbol: str
    decimal_comma: bool
    date_format: Callable[[date], str]
    tax_label: str
    tax_rate: Decimal


LOCALES = (
    _Locale(
        "us",
        "USD",
        "$",
        False,
        lambda d: f"{d.month:02d}/{d.day:02d}/{d.year} 2:{d.day + 10:02d} PM",
        "Sales Tax",
        Decimal("0.0875"),
    ),
    _Locale("us", "USD", "$", False, lambda d: f"{d.strftime('%b')} {d.day}, {d.year}", "Tax", Decimal("0.08")),
    _Locale(
        "uk",
        "GBP",
        "£",
        False,
        lambda d: f"{d.day:02d}/{d.month:02d}/{d.year} 12:{d.day + 4:02d}",
        "VAT 20%",
        Decimal("0.20"),
    ),
    _Locale(
        "eu",
        "EUR",
        "€",
        True,
        lambda d: f"{d.day:02d}.{d.month:02d}.{d.year} 20:{d.day + 3:02d}",
        "VAT 19%",
        Decimal("0.19"),
    ),
    _Locale("eu", "EUR", "€", True, lambda d: f"{d.day} {d.strftime('%B')} {d.year}", "VAT 10%", Decimal("0.10")),
    _Locale("iso", "USD", "$", False, lambda d: d.isoformat(), "Tax", Decimal("0.06")),
)


def _money(amount: Decimal, locale: _Locale, *, symbol: bool) -> str:
    text = f"{amount:,.2f}"
    if locale.decimal_comma:
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
        return f"{text} {locale.symbol}" if symbol else text
    return f"{locale.symbol}{text}" if symbol else text


def _english(rng: random.Random) -> Receipt:
    merchant, category = rng.choice(ENGLISH_MERCHANTS)
    locale = rng.choice(LOCALES)
    when = date(2026, rng.randint(1, 12), rng.randint(1, 28))
    chosen = rng.sample(ENGLISH_ITEMS[category], k=min(len(ENGLISH_ITEMS[category]), rng.randint(1, 3)))
    items = [Item(name, q, Decimal(price) * q) for (name, price), q in ((c, rng.randint(1, 2)) for c in chosen)]
    net = sum((it.amount for it in items), Decimal(0))
    inclusive = locale.name in ("uk", "eu")  # European prices include VAT; US tax is added
    if inclusive:
        total = net
        subtotal = (total / (1 + locale.tax_rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        tax = total - subtotal
    else:
        subtotal = net
        tax = (net * locale.tax_rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
        total = subtotal + tax
    paper = _Paper(rng.choice(LATIN_FONTS), 24)
    paper.centre(merchant.upper() if rng.random() < 0.5 else merchant, 34)
    paper.centre(f"{rng.randint(10, 999)} {rng.choice(('Market St', 'High Street', 'Main Ave', 'Friedrichstr.'))}", 20)
    paper.centre(f"Tel {rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}", 20)
    paper.blank()
    paper.row(locale.date_format(when))
    paper.row(f"Check #{rng.randint(100, 9999)}   Server: {rng.choice(('Anna', 'Tom', 'Mia'))}")
    paper.rule()
    for it in items:
        paper.row(f"{it.quantity} {it.description}", _money(it.amount, locale, symbol=False))
    paper.rule()
    paper.row("Subtotal", _money(subtotal, locale, symbol=False))
    paper.row(locale.tax_label, _money(tax, locale, symbol=False))
    paper.row(rng.choice(("TOTAL", "Total", "Amount Due", "Total Due")), _money(total, locale, symbol=True), 28)
    payment = rng.choice(("card", "card", "cash"))
    if payment == "card":
        paper.row(
            f"{rng.choice(('VISA', 'Mastercard', 'AMEX'))} **** {rng.randint(1000, 9999)}",
            _money(total, locale, symbol=False),
        )
    else:
        tendered = (total + 5).quantize(Decimal(1))
        paper.row("Cash", _money(tendered, locale, symbol=False))
        paper.row("Change", _money(tendered - total, locale, symbol=False))
    paper.blank()
    paper.centre("Thank you!", 22)
    return Receipt(
        language="en",
        layout=f"en-{locale.name}",
        merchant=merchant,
        date=when,
        currency=locale.currency,
        total=total,
        tax=tax,
        subtotal=subtotal,
        items=items,
        payment=payment,
        category=category,
        paper=paper.render(),
    )


def make_receipt(seed: int, language: str | None = None) -> Receipt:
    """The receipt of ``seed`` (Korean for even seeds, English for odd, unless ``language`` says)."""
    rng = random.Random(seed)
    lang = language or ("ko" if seed % 2 == 0 else "en")
    return _korean(rng) if lang == "ko" else _english(rng)


def photograph(paper: Image.Image, seed: int) -> Image.Image:
    """``paper`` as a phone photographs it on a table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    w, h = paper.size
    angle = float(rng.uniform(-3.0, 3.0))
    pad = 60
    scene = Image.new("L", (w + 2 * pad, h + 2 * pad), int(rng.integers(70, 120)))
    scene.paste(paper, (pad, pad))
    scene = scene.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=int(rng.integers(70, 120)))
    scale = float(rng.uniform(1.3, 1.8))  # phone cameras see the receipt larger than it was drawn
    scene = scene.resize((round(scene.width * scale), round(scene.height * scale)), Image.Resampling.BICUBIC)
    scene = scene.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.6, 1.4))))
    pixels = np.asarray(scene, dtype=np.float64)
    ys = np.linspace(0, 1, pixels.shape[0])[:, None]
    xs = np.linspace(0, 1, pixels.shape[1])[None, :]
    light = 1.0 - 0.18 * (rng.uniform() * ys + rng.uniform() * xs)  # a shadow from one side
    pixels = pixels * light + rng.normal(0, float(rng.uniform(3, 8)), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(rng.integers(70, 89)))
    return Image.open(io.BytesIO(out.getvalue()))
