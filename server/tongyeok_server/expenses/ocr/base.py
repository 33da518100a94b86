"""The OCR interface: ``OcrEngine.read(picture) -> OcrResult`` (blocking; readers run it on a thread)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass(frozen=True)
class OcrLine:
    """One line of text as read, top to bottom.

    ``height`` is the line's text height in pixels of the picture the engine
    saw (the merchant's name is usually printed larger), ``top`` its position,
    ``confidence`` the engine's mean word confidence (0..1).
    """

    text: str
    confidence: float
    top: int
    height: int
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # left, top, right, bottom in ``OcrResult.picture``


@dataclass(frozen=True)
class OcrResult:
    """Every line an engine read on a receipt."""

    lines: tuple[OcrLine, ...]
    engine: str
    detail: str
    picture: Image.Image | None = None  # the prepared picture the lines' boxes refer to

    @property
    def text(self) -> str:
        """The lines joined: the raw text of the receipt."""
        return "\n".join(line.text for line in self.lines)


class OcrEngine(Protocol):
    """Reads the text on one receipt picture. Blocking; safe to call from several threads at once."""

    name: str

    def read(self, picture: Image.Image, text_px: float) -> OcrResult:
        """Read ``picture`` (upright, RGB or grey), its text scaled to about ``text_px`` pixels high."""
        ...


@runtime_checkable
class LineReader(Protocol):
    """An engine that can read one line again, closer (Tesseract)."""

    def read_line(self, picture: Image.Image, box: tuple[int, int, int, int]) -> str:
        """The text of the line at ``box`` of ``picture`` (an ``OcrResult.picture``), read on its own."""
        ...
