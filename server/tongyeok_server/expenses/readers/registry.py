"""Receipt readers by name (``--receipt-engine``); cloud libraries are imported only when chosen."""

from __future__ import annotations

import importlib.util
import shutil
import typing

from tongyeok_server.errors import StartError
from tongyeok_server.expenses.readers.base import ReceiptReader
from tongyeok_server.settings import ExpensesSettings, GoogleSettings, OpenAISettings
from tongyeok_server.settings.engines import ReceiptEngineName

ENGINES: tuple[str, ...] = typing.get_args(ReceiptEngineName)


def create_reader(
    settings: ExpensesSettings, google: GoogleSettings | None = None, openai: OpenAISettings | None = None
) -> ReceiptReader:
    """The reader ``settings.receipt_engine`` names; ``StartError`` with what to fix when it cannot start.

    ``google``/``openai``: the clouds' connections (their defaults when not given).
    """
    name = settings.receipt_engine
    if name in ("embedded", "tesseract", "rapidocr"):
        from tongyeok_server.expenses.ocr.rapidocr_engine import RapidOcrEngine
        from tongyeok_server.expenses.ocr.tesseract_engine import TesseractEngine
        from tongyeok_server.expenses.readers.embedded import EmbeddedReader

        # Engines load on the first scan (RapidOCR's models cost a second and 100 MB); what can be
        # checked cheaply is checked now, so a server that cannot read receipts says so at start.
        rapidocr = importlib.util.find_spec("rapidocr") is not None
        if name == "rapidocr":
            if not rapidocr:
                raise StartError("--receipt-engine rapidocr needs `pip install 'tongyeok[receipts]'`")
            return EmbeddedReader(name, RapidOcrEngine, threads=settings.receipt_threads)
        if shutil.which("tesseract") is None:
            raise StartError(
                f"--receipt-engine {name} needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-kor "
                "tesseract-ocr-eng (make setup does), or choose --receipt-engine documentai or openai"
            )
        languages = settings.receipt_languages
        return EmbeddedReader(
            name,
            lambda: TesseractEngine(languages),
            latin=RapidOcrEngine if name == "embedded" and rapidocr else None,  # none installed: Tesseract reads Latin
            threads=settings.receipt_threads,
        )
    if name == "documentai":
        from tongyeok_server.expenses.readers.documentai import DocumentAiReader

        return DocumentAiReader.from_settings(settings, google or GoogleSettings())
    if name == "openai":
        from tongyeok_server.expenses.readers.openai_vision import OpenAiVisionReader

        return OpenAiVisionReader.from_settings(settings, openai or OpenAISettings())
    raise AssertionError(f"--receipt-engine {name!r} passed settings/ but has no reader")
