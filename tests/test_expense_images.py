"""Receipt files in: what is accepted, turned upright and refused (no OCR here)."""

from __future__ import annotations

import io

import grpc
import pytest
from PIL import Image

from tongyeok_server.errors import ServiceError
from tongyeok_server.expenses import images
from tongyeok_server.expenses.model import ReceiptImage


def picture(width: int = 60, height: int = 90) -> Image.Image:
    image = Image.new("RGB", (width, height), "white")
    image.paste((0, 0, 0), (0, 0, width, 10))  # a dark band at the top, to tell up from down
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("TIFF", "image/tiff"),
        ("PDF", "application/pdf"),
    ],
)
def test_formats_are_sniffed_and_decoded(fmt: str, media_type: str) -> None:
    data = encoded(picture(), fmt)
    checked = images.check(data)
    assert checked.media_type == media_type
    decoded = images.decode(checked)
    assert decoded.mode == "RGB" and decoded.width < decoded.height


def test_heic_from_a_phone() -> None:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(picture()).save(out, quality=80)
    checked = images.check(out.getvalue())
    assert checked.media_type == "image/heic"
    assert images.decode(checked).size == (60, 90)


def test_the_camera_orientation_is_applied() -> None:
    sideways = picture().rotate(90, expand=True)  # stored on its side, as a phone held upright does
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    decoded = images.decode(images.check(encoded(sideways, "JPEG", exif=exif)))
    assert decoded.size == (60, 90)
    top = decoded.getpixel((30, 3))
    assert isinstance(top, tuple) and sum(top) < 100  # the dark band is at the top again


def test_refusals_say_what_to_send() -> None:
    def refused(data: bytes) -> str:
        with pytest.raises(ServiceError) as error:
            images.decode(images.check(data))
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        return error.value.message

    assert "JPEG, PNG, HEIC" in refused(b"GIF7 not quite")
    assert "cannot be decoded" in refused(encoded(picture(), "PNG")[:60])
    huge = encoded(Image.new("1", (12000, 12000)), "PNG")  # a small file of 144 megapixels
    assert len(huge) < images.MAX_RECEIPT_BYTES and "megapixels" in refused(huge)
    with pytest.raises(ServiceError) as big:
        images.check(b"\xff\xd8\xff" + b"\x00" * images.MAX_RECEIPT_BYTES)
    assert "16 MiB" in big.value.message


def test_a_thumbnail_for_the_pdf_report() -> None:
    jpeg = images.thumbnail_jpeg(ReceiptImage(encoded(picture(3000, 4000), "PNG"), "image/png"), max_side=1000)
    assert Image.open(io.BytesIO(jpeg)).size == (750, 1000)
