"""From the lines an OCR engine read to the fields of an expense (Korean and English receipts)."""

from tongyeok_server.expenses.extract.fields import extract

__all__ = ["extract"]
