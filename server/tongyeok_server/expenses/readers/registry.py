"""Receipt readers by name (``--receipt-engine``); cloud libraries are imported only when chosen."""

from __future__ import annotations

from tongyeok_server.expenses.readers.base import ReceiptReader
from tongyeok_server.settings import ServerSettings

ENGINES = ("embedded", "tesseract", "rapidocr", "documentai", "openai")


def create_reader(settings: ServerSettings) -> ReceiptReader:
    """The reader ``settings.receipt_engine`` names; ``SystemExit`` with what to fix when it cannot start."""
    name = settings.receipt_engine
    if name in ("embedded", "tesseract", "rapidocr"):
        from tongyeok_server.expenses.ocr.tesseract_engine import TesseractEngine
        from tongyeok_server.expenses.readers.embedded import EmbeddedReader

        if name == "rapidocr":
            from tongyeok_server.expenses.ocr.rapidocr_engine import RapidOcrEngine

            return EmbeddedReader(name, RapidOcrEngine(), threads=settings.receipt_threads)
        latin = None
        if name == "embedded":
            try:
                from tongyeok_server.expenses.ocr.rapidocr_engine import RapidOcrEngine

                latin = RapidOcrEngine()
            except SystemExit:
                latin = None  # RapidOCR not installed: Tesseract reads Latin too
        return EmbeddedReader(
            name, TesseractEngine(settings.receipt_languages), latin=latin, threads=settings.receipt_threads
        )
    if name == "documentai":
        from tongyeok_server.expenses.readers.documentai import DocumentAiReader

        return DocumentAiReader.from_settings(settings)
    if name == "openai":
        from tongyeok_server.expenses.readers.openai_vision import OpenAiVisionReader

        return OpenAiVisionReader.from_settings(settings)
    raise SystemExit(f"--receipt-engine {name!r}: use one of {', '.join(ENGINES)}")
