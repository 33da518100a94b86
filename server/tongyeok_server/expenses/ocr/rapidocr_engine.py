"""RapidOCR (PP-OCR on onnxruntime, the weights inside the ``rapidocr`` wheel): Latin-script receipts.

Its models read Latin, Chinese and Japanese text but have no Hangul (the
Korean model would be a run-time download, which this server never does),
so it is the reader for Latin receipts only. It finds text boxes, not lines:
a receipt's label and its right-aligned amount come as two boxes, which are
joined into one line when their vertical centres are within half a line of
each other. One onnxruntime thread per read (reads run on several threads).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

from tongyeok_server.errors import StartError
from tongyeok_server.expenses.ocr.base import OcrLine, OcrResult
from tongyeok_server.expenses.ocr.preprocess import TARGET_LINE_PX, prepare


class RapidOcrEngine:
    """Reads Latin receipts with the PP-OCR models of the ``rapidocr`` wheel."""

    name = "rapidocr"

    def __init__(self) -> None:
        """Load the models; ``StartError`` with the fix when the package is not installed."""
        try:
            import rapidocr
            from rapidocr import RapidOCR
        except ImportError:
            raise StartError(
                "the rapidocr receipt engine needs `pip install tongyeok[receipts]` (rapidocr, onnxruntime)"
            ) from None
        params = {
            "Global.log_level": "warning",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        self._engine: Any = RapidOCR(params=params)
        self._lock = threading.Lock()
        self.version = getattr(rapidocr, "__version__", "")

    def read(self, picture: Image.Image, text_px: float = TARGET_LINE_PX) -> OcrResult:
        """Read the lines of ``picture`` (see the module docstring)."""
        prepared = prepare(picture, text_px).convert("RGB")
        result = self._engine(np.asarray(prepared))
        boxes = result.boxes if result.boxes is not None else []
        words = []
        for box, text, score in zip(boxes, result.txts or (), result.scores or (), strict=False):
            ys = [p[1] for p in box]
            xs = [p[0] for p in box]
            words.append((float(min(ys)), float(max(ys)), float(min(xs)), str(text), float(score)))
        return OcrResult(_rows(words), self.name, f"rapidocr {self.version}, PP-OCR (Latin)")


def _rows(words: list[tuple[float, float, float, str, float]]) -> tuple[OcrLine, ...]:
    words.sort(key=lambda w: (w[0] + w[1]) / 2)
    rows: list[list[tuple[float, float, float, str, float]]] = []
    for word in words:
        centre, height = (word[0] + word[1]) / 2, word[1] - word[0]
        if rows:
            last = rows[-1]
            last_centre = sum((w[0] + w[1]) / 2 for w in last) / len(last)
            if abs(centre - last_centre) < height / 2:
                last.append(word)
                continue
        rows.append([word])
    lines = []
    for row in rows:
        row.sort(key=lambda w: w[2])
        heights = sorted(w[1] - w[0] for w in row)
        lines.append(
            OcrLine(
                " ".join(w[3] for w in row),
                sum(w[4] for w in row) / len(row),
                int(min(w[0] for w in row)),
                int(heights[len(heights) // 2]),
            )
        )
    return tuple(lines)
