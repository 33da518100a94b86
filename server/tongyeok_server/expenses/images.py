"""Receipt files in, pictures out: what a caller may send, checked and decoded once.

Accepted: JPEG, PNG, WebP, TIFF, GIF, BMP (Pillow), HEIC/HEIF (phones'
default; ``pillow-heif``, libheif in its wheel) and PDF (the first page,
rendered by ``pypdfium2``, PDFium in its wheel). The type comes from the
file's first bytes, not from what the caller says it is. Phones store the
camera's orientation in EXIF; the picture is turned upright before OCR.

Limits (documented in expenses.proto): ``MAX_RECEIPT_BYTES`` per file and
``MAX_PIXELS`` per picture (a small file can decode to a huge one: a
"decompression bomb").
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from tongyeok_server.errors import invalid_argument
from tongyeok_server.expenses.model import ReceiptImage

MAX_RECEIPT_BYTES = 16 * 1024 * 1024
MAX_PIXELS = 50_000_000
PDF_DPI = 200
ACCEPTED = "JPEG, PNG, HEIC, WebP, TIFF, GIF, BMP or PDF"

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"%PDF-", 0, "application/pdf"),
    (b"GIF8", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif"}


def sniff(data: bytes) -> str:
    """The media type of ``data`` from its first bytes; "" when it is none of the accepted ones."""
    for magic, offset, media_type in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/avif" if data[8:12] == b"avif" else "image/heic"
    return ""


def check(data: bytes) -> ReceiptImage:
    """The caller's bytes as a ``ReceiptImage``, or INVALID_ARGUMENT saying what is wrong."""
    if not data:
        raise invalid_argument("the receipt is empty: send the photo's bytes after the config")
    if len(data) > MAX_RECEIPT_BYTES:
        raise invalid_argument(
            f"the receipt is {len(data) / 1048576:.1f} MiB; at most {MAX_RECEIPT_BYTES // 1048576} MiB "
            "(photograph it again at a lower resolution, or send it as JPEG)"
        )
    media_type = sniff(data)
    if not media_type:
        raise invalid_argument(
            f"the file is not an image this server reads (its first bytes are {data[:8].hex(' ')}); "
            f"send a {ACCEPTED} file"
        )
    return ReceiptImage(data, media_type)


def decode(receipt: ReceiptImage) -> Image.Image:
    """The receipt as an upright RGB picture; INVALID_ARGUMENT when it cannot be decoded."""
    if receipt.media_type == "application/pdf":
        return _pdf_page(receipt.data)
    if receipt.media_type in ("image/heic", "image/avif"):
        _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(receipt.data))
            if image.width * image.height > MAX_PIXELS:
                raise _too_many_pixels(image.width, image.height)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise invalid_argument(
            f"the picture has more than {MAX_PIXELS // 1_000_000} megapixels; send a smaller one"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise invalid_argument(
            f"the {receipt.media_type} file cannot be decoded ({type(error).__name__}: it is damaged or cut short); "
            "send the photo again"
        ) from None
    upright: Image.Image = ImageOps.exif_transpose(image) or image
    return upright.convert("RGB")


def _too_many_pixels(width: int, height: int) -> Exception:
    return invalid_argument(
        f"the picture is {width}x{height} pixels, more than {MAX_PIXELS // 1_000_000} megapixels; send a smaller one"
    )


def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


def _pdf_page(data: bytes) -> Image.Image:
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        raise invalid_argument("the PDF cannot be opened (damaged, or protected by a password); send a photo") from None
    try:
        if len(pdf) == 0:
            raise invalid_argument("the PDF has no pages")
        page = pdf[0]
        width, height = page.get_size()
        scale = PDF_DPI / 72
        if width * height * scale * scale > MAX_PIXELS:
            scale = (MAX_PIXELS / (width * height)) ** 0.5
        image: Image.Image = page.render(scale=scale).to_pil()
        return image.convert("RGB")
    finally:
        pdf.close()


def thumbnail_jpeg(receipt: ReceiptImage, max_side: int = 1400, quality: int = 75) -> bytes:
    """A JPEG of the receipt no larger than ``max_side`` (for the PDF report)."""
    image = decode(receipt)
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
