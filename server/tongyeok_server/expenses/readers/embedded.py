"""The embedded reader: OCR on this machine (Tesseract, RapidOCR) and the field extractor.

OCR blocks for about half a second of CPU per receipt, so each read runs on
a thread of the reader's own pool (``--receipt-threads``, default one per
core): Tesseract works in a child process and RapidOCR in onnxruntime, both
outside the GIL, so threads use the cores. Reads beyond the pool wait in a
queue bounded by ``MAX_WAITING`` per thread; past it a scan is refused with
RESOURCE_EXHAUSTED rather than left to time out.

**A second look.** When the first reading lacks the date or the total, or
is unsure of the total, the picture is read again with its text scaled
larger, and each missing or weak field is taken from the better of the two.
A date still missing is read again line by line: the lines that look like
one (a year, 년, 월) are cropped and read alone, larger (Tesseract's page
reading loses ``년``/``월`` of a small Korean date to digits; a line alone
keeps them).

**Which OCR for which script** (``--receipt-engine``): ``tesseract`` reads
Korean and English in one pass (``kor+eng``); ``rapidocr`` (PP-OCR, Latin
only: its weights have no Hangul) reads Latin receipts; ``embedded`` reads
with Tesseract and, when the receipt turns out to have no Hangul and
RapidOCR is installed and Tesseract was unsure of the total, asks RapidOCR
for a second reading of the Latin text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from PIL import Image

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.expenses import images
from tongyeok_server.expenses.extract import extract
from tongyeok_server.expenses.extract.dates import find_date
from tongyeok_server.expenses.extract.text import normalize
from tongyeok_server.expenses.model import ReceiptImage, ReceiptReading
from tongyeok_server.expenses.ocr.base import LineReader, OcrEngine, OcrResult
from tongyeok_server.expenses.ocr.preprocess import TARGET_LINE_PX

log = logging.getLogger(__name__)

MAX_WAITING = 8
SURE_TOTAL = 0.65
SECOND_LOOK_SCALE = 1.35
_FIELDS = ("merchant", "date", "total", "currency_code", "tax", "subtotal")
_DATE_LIKE = re.compile(r"(?<!\d)(19|20)\d\d|[년월]")
MAX_DATE_LINES = 3
_ATTR = {"currency_code": "currency"}


class LazyEngine:
    """An OCR engine made on first use (loading models costs ~1 s and 100 MB; many servers never scan)."""

    def __init__(self, make: Callable[[], OcrEngine]) -> None:
        self._make = make
        self._engine: OcrEngine | None = None
        self._lock = threading.Lock()

    def get(self) -> OcrEngine:
        """The engine; FAILED_PRECONDITION saying what to install when it cannot be made."""
        with self._lock:
            if self._engine is None:
                try:
                    self._engine = self._make()
                except StartError as error:
                    raise ServiceError(
                        grpc.StatusCode.FAILED_PRECONDITION, f"this server cannot read receipts: {error}"
                    ) from None
            return self._engine


class EmbeddedReader:
    """OCR with ``engine`` (and, for Latin receipts, ``latin`` as a second opinion) plus the extractor."""

    def __init__(
        self,
        name: str,
        engine: Callable[[], OcrEngine],
        latin: Callable[[], OcrEngine] | None = None,
        threads: int = 2,
    ) -> None:
        """``engine`` and ``latin`` make the engines, on the first read that needs them."""
        self.name = name
        self._engine = LazyEngine(engine)
        self._latin = LazyEngine(latin) if latin is not None else None
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="ocr")
        self._lock = threading.Lock()
        self._in_flight = 0

    async def read(self, image: ReceiptImage) -> ReceiptReading:
        """Read ``image`` on the OCR threads (see the module docstring)."""
        with self._lock:
            if self._in_flight >= self._threads * (1 + MAX_WAITING):
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the server is reading {self._in_flight} receipts already; retry in a few seconds",
                )
            self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.read_blocking, image)
        finally:
            with self._lock:
                self._in_flight -= 1

    def warm_up(self) -> None:
        """Load the engines now rather than at the first scan (the bench times reads, not loads)."""
        self._engine.get()
        if self._latin is not None:
            self._latin.get()

    def read_blocking(self, image: ReceiptImage) -> ReceiptReading:
        """The whole read on the calling thread (the bench times this)."""
        picture = images.decode(image)
        engine = self._engine.get()
        first, result = self._read(engine, picture)
        reading = first
        if self._weak(reading):
            reading = merge(reading, self._read(engine, picture, SECOND_LOOK_SCALE)[0])
        if self._latin is not None and reading.language != "ko" and self._weak(reading):
            reading = merge(reading, self._read(self._latin.get(), picture)[0])
        if reading.date is None:
            reading = date_from_lines(reading, engine, result)
        return reading

    @staticmethod
    def _weak(reading: ReceiptReading) -> bool:
        return reading.date is None or reading.total is None or reading.confidence.get("total", 0) < SURE_TOTAL

    @staticmethod
    def _read(engine: OcrEngine, picture: Image.Image, scale: float = 1.0) -> tuple[ReceiptReading, OcrResult]:
        result = engine.read(picture, TARGET_LINE_PX * scale)
        return extract(result.lines, result.engine, result.detail), result

    def close(self) -> None:
        """Stop the OCR threads (reads in progress finish)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def date_from_lines(reading: ReceiptReading, engine: OcrEngine, result: OcrResult) -> ReceiptReading:
    """``reading`` with the date read again from the lines that look like one (a year, 년, 월), one by one."""
    if not isinstance(engine, LineReader) or result.picture is None:
        return reading
    candidates = [line for line in result.lines if _DATE_LIKE.search(line.text)][:MAX_DATE_LINES]
    for line in candidates:
        found = find_date(normalize(engine.read_line(result.picture, line.box)), month_first=reading.currency == "USD")
        if found:
            confidence = {**reading.confidence, "date": round(found[1] * 0.85, 2)}
            return dataclasses.replace(reading, date=found[0], confidence=confidence)
    return reading


def merge(first: ReceiptReading, second: ReceiptReading) -> ReceiptReading:
    """``first`` with each field that ``second`` read more surely taken from ``second``."""
    changes: dict[str, object] = {}
    confidence = dict(first.confidence)
    for name in _FIELDS:
        attr = _ATTR.get(name, name)
        mine, theirs = getattr(first, attr), getattr(second, attr)
        if theirs in (None, "") or (
            second.confidence.get(name, 0) <= first.confidence.get(name, 0)
            and mine
            not in (
                None,
                "",
            )
        ):
            continue
        changes[attr] = theirs
        confidence[name] = second.confidence.get(name, 0)
    if not changes:
        return first
    detail = first.engine_detail if second.engine == first.engine else f"{first.engine_detail}; {second.engine_detail}"
    return dataclasses.replace(first, **changes, confidence=confidence, engine_detail=detail)  # type: ignore[arg-type]
