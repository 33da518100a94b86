"""Receipt readers: an image in, a ``ReceiptReading`` out (embedded OCR + extractor, Document AI, OpenAI)."""
