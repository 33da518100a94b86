"""A report as a file: CSV (the csv module), XLSX (openpyxl), PDF (reportlab, with the receipts' photos).

openpyxl writes real number cells (amounts stay exact decimals in the file
and sum in Excel), reportlab lays out tables and embeds the photos; both are
the maintained, pure-Python standards of their formats. Hangul in the PDF
needs a font that has it: NanumGothic (Debian ``fonts-nanum``, a runtime
package) is embedded when present, else reportlab's built-in Korean CID font.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from tongyeok_server.expenses.model import Category, Expense
from tongyeok_server.expenses.report.build import Report

HEADER = (
    "date",
    "merchant",
    "category",
    "total",
    "currency",
    "tax",
    "subtotal",
    "payment",
    "trip",
    "converted",
    "expense",
)
NANUM = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")


@dataclass(frozen=True)
class RenderedFile:
    """A rendered report."""

    content: bytes
    media_type: str
    extension: str


def _rows(report: Report) -> list[list[object]]:
    rows: list[list[object]] = []
    for e in report.expenses:
        r = e.reading
        rows.append(
            [
                r.date.isoformat() if r.date else "",
                r.merchant,
                r.category.value,
                r.total if r.total is not None else "",
                r.currency,
                r.tax if r.tax is not None else "",
                r.subtotal if r.subtotal is not None else "",
                r.payment.value,
                e.trip,
                report.converted(e) if report.converted(e) is not None else "",
                e.expense_id,
            ]
        )
    return rows


# A text cell starting with one of these is a formula to spreadsheet programs (CSV injection): a receipt's
# printed merchant or a caller's correction must never run as one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value: object) -> object:
    """``value``, with a text that a spreadsheet would take for a formula prefixed by ' (OWASP's advice)."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _title(report: Report) -> str:
    span = f"{report.date_from or '?'} to {report.date_to or '?'}"
    return f"Expense report: {report.trip + ', ' if report.trip else ''}{span}"


def csv_file(report: Report) -> RenderedFile:
    """One row per expense, then a blank row and the totals (UTF-8 with BOM for spreadsheet programs)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows([[_csv_safe(v) for v in row] for row in _rows(report)])
    writer.writerow([])
    for code, amount in report.totals.items():
        writer.writerow(["total", "", "", amount, code])
    if report.currency and report.converted_total is not None:
        writer.writerow(["total", "", "", report.converted_total, report.currency, "", "", "", "", "converted"])
    return RenderedFile(("\ufeff" + out.getvalue()).encode("utf-8"), "text/csv", "csv")


def xlsx_file(report: Report) -> RenderedFile:
    """A workbook: Expenses, By day, Totals, Meetings."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Expenses"
    sheet.append(list(HEADER))
    for row in _rows(report):
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text, never a formula (openpyxl makes "=..." one)
    days = book.create_sheet("By day")
    days.append(["date", "category", "currency", "amount", f"in {report.currency}" if report.currency else ""])
    for day, amounts in report.days.items():
        for (category, code), amount in sorted(amounts.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
            days.append([day.isoformat(), category.value, code, float(amount), ""])
        if day in report.day_converted:
            days.append([day.isoformat(), "all", report.currency, "", float(report.day_converted[day])])
    totals = book.create_sheet("Totals")
    totals.append(["currency", "total", "rate", f"in {report.currency}" if report.currency else ""])
    for code, amount in report.totals.items():
        r = report.rates.get(code)
        totals.append([code, float(amount), float(r) if r is not None else "", ""])
    if report.currency and report.converted_total is not None:
        for category, amount in report.converted_by_category.items():
            totals.append([category.value, "", "", float(amount)])
        totals.append(["all", "", "", float(report.converted_total)])
    meetings = book.create_sheet("Meetings")
    meetings.append(["session", "start (UTC)", "minutes", "languages", "utterances"])
    for m in report.meetings:
        meetings.append(
            [
                m.session_id,
                m.started_at.strftime("%Y-%m-%d %H:%M"),
                round(m.duration_s / 60, 1),
                m.languages,
                m.utterances,
            ]
        )
    for ws in book.worksheets:
        for cell in ws[1]:
            cell.font = Font(bold=True)
    out = io.BytesIO()
    book.save(out)
    return RenderedFile(out.getvalue(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")


def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    if "Report" in pdfmetrics.getRegisteredFontNames():
        return "Report"
    if NANUM.exists():
        pdfmetrics.registerFont(TTFont("Report", str(NANUM)))
        return "Report"
    pdfmetrics.registerFont(UnicodeCIDFont("HYGothic-Medium"))
    return "HYGothic-Medium"


def pdf_file(report: Report, photo: Callable[[Expense], bytes | None]) -> RenderedFile:
    """Summary, by day, meetings, then each receipt's photo with its reading (``photo`` gives a JPEG or None)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = _font()
    styles = getSampleStyleSheet()
    for style in styles.byName.values():
        style.fontName = font
    grid = TableStyle(
        [
            ("FONT", (0, 0), (-1, -1), font, 8),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )

    def table(rows: list[list[object]]) -> Table:
        t = Table([[str(c) for c in row] for row in rows], repeatRows=1)
        t.setStyle(grid)
        return t

    # Paragraphs parse reportlab's markup: text from receipts and callers is escaped.
    story: list[object] = [Paragraph(escape(_title(report)), styles["Title"])]
    summary: list[list[object]] = [["currency", "total", "rate", f"in {report.currency}" if report.currency else ""]]
    for code, amount in report.totals.items():
        r = report.rates.get(code)
        summary.append([code, amount, r if r is not None else "", ""])
    if report.currency and report.converted_total is not None:
        for category, amount in report.converted_by_category.items():
            summary.append([category.value, "", "", amount])
        summary.append(["all", "", "", report.converted_total])
    story += [Paragraph("Totals", styles["Heading2"]), table(summary)]
    if report.incomplete:
        names = ", ".join(e.expense_id for e in report.incomplete)
        story.append(Paragraph(f"Not counted (total or currency not read): {names}", styles["Normal"]))
    by_day: list[list[object]] = [["date", "category", "amount"]]
    for day, amounts in report.days.items():
        for (category, code), amount in sorted(amounts.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
            by_day.append([day.isoformat(), category.value, f"{amount} {code}"])
    story += [Paragraph("By day", styles["Heading2"]), table(by_day)]
    listing: list[list[object]] = [["date", "merchant", "category", "total", "converted"]]
    for row in _rows(report):
        listing.append([row[0], row[1], row[2], f"{row[3]} {row[4]}", row[9]])
    story += [Paragraph("Expenses", styles["Heading2"]), table(listing)]
    meetings: list[list[object]] = [["start (UTC)", "minutes", "languages", "utterances", "session"]]
    for m in report.meetings:
        meetings.append(
            [m.started_at.strftime("%Y-%m-%d %H:%M"), round(m.duration_s / 60), m.languages, m.utterances, m.session_id]
        )
    story += [
        Paragraph("Meetings", styles["Heading2"]),
        table(meetings) if report.meetings else Paragraph("none", styles["Normal"]),
    ]
    for e in report.expenses:
        jpeg = photo(e)
        read = e.reading
        shown = read.total if read.total is not None else "?"
        caption = f"{read.date or '?'}  {read.merchant or '?'}  {shown} {read.currency}  ({e.expense_id})"
        story += [PageBreak(), Paragraph(escape(caption), styles["Heading3"])]
        if jpeg is None:
            story.append(Paragraph("photo no longer kept (retention period over)", styles["Normal"]))
            continue
        image = Image(io.BytesIO(jpeg))
        scale = min(170 * mm / image.imageWidth, 230 * mm / image.imageHeight, 1.0)
        image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
        story += [Spacer(1, 4 * mm), image]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=_title(report), author="Tongyeok").build(story)
    return RenderedFile(out.getvalue(), "application/pdf", "pdf")


CATEGORY_ORDER = tuple(Category)
