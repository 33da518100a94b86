"""Expenses from receipts: the other half of a business trip (issue 22).

- ``images``: what a caller may send (JPEG, PNG, HEIC, WebP, TIFF, PDF ...), checked and decoded.
- ``ocr/``: OCR engines (Tesseract with Korean and English, RapidOCR for Latin) behind ``OcrEngine``.
- ``extract/``: the field extractor (merchant, date, total, currency, tax, items ...) for Korean and English.
- ``readers/``: ``ReceiptReader``s, async: embedded (OCR + extractor on threads), Document AI, OpenAI vision.
- ``store``: expenses and their photos in the meeting record's database (migration 0004).
- ``report/``: trip reports (by day and category, converted with the operator's rates) as CSV, XLSX, PDF.
- ``messages``: expenses and reports as ``tongyeok.v1`` messages (the gRPC edge is ``api/expenses.py``).
"""
