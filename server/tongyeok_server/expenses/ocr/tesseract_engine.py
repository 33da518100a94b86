"""Tesseract (Debian ``tesseract-ocr`` with the ``kor`` and ``eng`` data) through ``pytesseract``.

One ``tesseract`` process per receipt (pytesseract runs the binary; the
work happens outside Python, so several receipts on threads use several
cores). ``OMP_THREAD_LIMIT=1``: Tesseract's OpenMP threads only fight each
other and the server for the cores; one receipt per core is faster in all.
Page segmentation mode 6 (one uniform block of text) keeps a receipt's label
and its right-aligned amount on one line, which mode 4 sometimes splits.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections import defaultdict

import grpc
import pytesseract
from PIL import Image

from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.expenses.ocr.base import OcrLine, OcrResult
from tongyeok_server.expenses.ocr.preprocess import TARGET_LINE_PX, prepare

TIMEOUT_S = 30.0
LINE_SCALE = 1.5
WORD_GAP = 0.35
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def available_languages() -> set[str]:
    """The traineddata installed (``tesseract --list-langs``); empty when Tesseract is not installed."""
    try:
        return set(pytesseract.get_languages(config=""))
    except (pytesseract.TesseractNotFoundError, subprocess.SubprocessError, OSError):
        return set()


class TesseractEngine:
    """Reads receipts with Tesseract in ``languages`` (e.g. ``kor+eng``)."""

    name = "tesseract"

    def __init__(self, languages: str = "kor+eng") -> None:
        """Check that Tesseract and its language data are installed; ``StartError`` with the fix if not."""
        installed = available_languages()
        if not installed:
            raise StartError(
                "the tesseract receipt engine needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-kor "
                "tesseract-ocr-eng (make setup does)"
            )
        missing = [lang for lang in languages.split("+") if lang not in installed]
        if missing:
            raise StartError(
                f"Tesseract has no data for {', '.join(missing)}: apt-get install "
                + " ".join(f"tesseract-ocr-{m}" for m in missing)
            )
        self.languages = languages
        self.version = str(pytesseract.get_tesseract_version())

    def read(self, picture: Image.Image, text_px: float = TARGET_LINE_PX) -> OcrResult:
        """Read the lines of ``picture`` (see the module docstring)."""
        prepared = prepare(picture, text_px)
        try:
            data = pytesseract.image_to_data(
                prepared,
                lang=self.languages,
                config="--psm 6 -c preserve_interword_spaces=0",
                output_type=pytesseract.Output.DICT,
                timeout=TIMEOUT_S,
            )
        except RuntimeError as error:  # pytesseract's timeout
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "reading the receipt took too long; send a smaller photo"
            ) from error
        except pytesseract.TesseractError as error:
            raise ServiceError(
                grpc.StatusCode.INTERNAL, "the OCR engine failed on this picture", detail=str(error)[:300]
            ) from None
        return OcrResult(_lines(data), self.name, f"tesseract {self.version}, {self.languages}", prepared)

    def read_line(self, picture: Image.Image, box: tuple[int, int, int, int]) -> str:
        """One line read on its own, larger, as a single line (page segmentation mode 7).

        A Korean date printed small (``2026년 12월 5일``) loses its 년 and 월 to digits in the
        page's reading (``202644 12852``) and keeps them read alone, 1.5 times larger, with the
        Korean model only.
        """
        pad = max(4, (box[3] - box[1]) // 3)
        crop = picture.crop((0, max(0, box[1] - pad), picture.width, min(picture.height, box[3] + pad)))
        crop = crop.resize((round(crop.width * LINE_SCALE), round(crop.height * LINE_SCALE)), Image.Resampling.LANCZOS)
        language = "kor" if "kor" in self.languages.split("+") else self.languages
        try:
            return str(pytesseract.image_to_string(crop, lang=language, config="--psm 7", timeout=TIMEOUT_S))
        except (RuntimeError, pytesseract.TesseractError):
            return ""


def _lines(data: dict[str, list[object]]) -> tuple[OcrLine, ...]:
    words: dict[tuple[int, int, int], list[tuple[int, str, float, int, int, int]]] = defaultdict(list)
    for i, raw in enumerate(data["text"]):
        text = str(raw).strip()
        conf = float(str(data["conf"][i]))
        if not text or conf < 0:
            continue
        key = (int(str(data["block_num"][i])), int(str(data["par_num"][i])), int(str(data["line_num"][i])))
        words[key].append(
            (
                int(str(data["left"][i])),
                text,
                conf / 100,
                int(str(data["top"][i])),
                int(str(data["height"][i])),
                int(str(data["width"][i])),
            )
        )
    lines = []
    for entries in words.values():
        entries.sort()
        heights = sorted(e[4] for e in entries)
        height = heights[len(heights) // 2]
        text = entries[0][1]
        for previous, entry in itertools.pairwise(entries):
            # Tesseract's Korean model often makes each syllable a word; a gap narrower than
            # a third of the text height is inside a word, whatever it says.
            gap = entry[0] - (previous[0] + previous[5])
            text += ("" if gap < height * WORD_GAP and _joinable(previous[1], entry[1]) else " ") + entry[1]
        confidence = sum(e[2] for e in entries) / len(entries)
        top = min(e[3] for e in entries)
        box = (entries[0][0], top, max(e[0] + e[5] for e in entries), max(e[3] + e[4] for e in entries))
        lines.append(OcrLine(text, confidence, top, height, box))
    lines.sort(key=lambda line: line.top)
    return tuple(lines)


def _is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3" or "\u3131" <= char <= "\u318e"


def _joinable(left: str, right: str) -> bool:
    """Two pieces that may be one word: Hangul syllables next to each other (Latin words keep their spaces)."""
    return _is_hangul(left[-1]) and _is_hangul(right[0])
