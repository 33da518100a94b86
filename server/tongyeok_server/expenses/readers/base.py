"""The reader interface the Expenses service sees: ``await reader.read(image)``.

A reader is async on the server's loop; one whose work blocks (OCR) runs it
on threads of its own behind ``read``. Failures are ``ServiceError``s with
the status a caller should get (INVALID_ARGUMENT for a picture nobody can
read, UNAVAILABLE for a cloud engine that did not answer ...).
"""

from __future__ import annotations

from typing import Protocol

from tongyeok_server.expenses.model import ReceiptImage, ReceiptReading


class ReceiptReader(Protocol):
    """Reads receipts (see the module docstring)."""

    #: Short engine name ("tesseract", "documentai", "openai" ...).
    name: str

    async def read(self, image: ReceiptImage) -> ReceiptReading:
        """The fields of the receipt in ``image`` (already checked by ``images.check``)."""
        ...

    def close(self) -> None:
        """Release threads and connections (server shutdown)."""
        ...
